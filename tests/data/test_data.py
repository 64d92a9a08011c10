"""Beam-map containers: lattice detection, validation messages, unit conversion."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from bayesoof.data.containers import BeamMap, BeamMaps, DataError, regular_grid

STEP = 1.5e-5  # rad, about half a beam width at 9 mm on a 100 m dish


def _lattice(nu=21, nv=17, u0=-1.2e-4, v0=-9e-5, du=STEP, dv=1.2 * STEP):
    """Flat samples of an nu x nv lattice, u varying fastest (pyoof's order)."""
    gu, gv = np.meshgrid(u0 + du * np.arange(nu), v0 + dv * np.arange(nv), indexing="xy")
    return gu.ravel(), gv.ravel()


def _check(grid, uu, vv, nu=21, nv=17, du=STEP, dv=1.2 * STEP, tol=1e-9):
    """The lattice found reproduces every sample to ``tol`` (relative to the step)."""
    assert grid is not None
    assert (grid.nu, grid.nv) == (nu, nv)
    assert grid.du == pytest.approx(du, rel=1e-6) and grid.dv == pytest.approx(dv, rel=1e-6)
    np.testing.assert_allclose(grid.u[grid.iu], uu, rtol=0, atol=tol * du)
    np.testing.assert_allclose(grid.v[grid.iv], vv, rtol=0, atol=tol * dv)


# ------------------------------------------------------------------ regular_grid
def test_lattice_is_detected():
    uu, vv = _lattice()
    _check(regular_grid(uu, vv), uu, vv)


def test_lattice_with_float32_jitter_is_detected():
    """Columns stored as float32 (pyoof writes 'E'): ~1e-7 relative jitter on each value.

    The refitted lattice reproduces the float32 values to their own rounding (1e-7 of
    ~8 steps of magnitude -> 1e-5 of a step; bound 1e-4 of a step).
    """
    uu, vv = _lattice()
    u32, v32 = uu.astype(np.float32).astype(float), vv.astype(np.float32).astype(float)
    assert not np.array_equal(u32, uu)  # the jitter is really there
    grid = regular_grid(u32, v32)
    _check(grid, u32, v32, tol=1e-4)
    # the refit removes the jitter: the lattice is the float64 one to 1e-5 of a step
    np.testing.assert_allclose(grid.u[grid.iu], uu, rtol=0, atol=1e-5 * STEP)


def test_permuted_and_partially_filled_lattice_is_detected():
    uu, vv = _lattice()
    rng = np.random.default_rng(2)
    keep = rng.permutation(uu.size)[: int(0.6 * uu.size)]  # shuffled, 40 % missing
    uu, vv = uu[keep], vv[keep]
    grid = regular_grid(uu, vv)
    assert grid is not None
    np.testing.assert_allclose(grid.u[grid.iu], uu, rtol=0, atol=1e-9 * STEP)
    np.testing.assert_allclose(grid.v[grid.iv], vv, rtol=0, atol=1e-9 * STEP)
    assert grid.nu * grid.nv >= uu.size


def test_scattered_points_are_rejected():
    rng = np.random.default_rng(5)
    uu, vv = rng.uniform(-1e-4, 1e-4, (2, 400))
    assert regular_grid(uu, vv) is None
    # on-the-fly rows: regular in v, jittered (10 % of a step) along u
    gu, gv = _lattice()
    assert regular_grid(gu + rng.normal(0, 0.1 * STEP, gu.size), gv) is None


def test_single_row_and_single_point():
    grid = regular_grid(np.linspace(0, 1e-4, 11), np.zeros(11))
    assert grid is not None and (grid.nu, grid.nv) == (11, 1)
    one = regular_grid(np.array([2e-5]), np.array([-1e-5]))
    assert one is not None and (one.nu, one.nv) == (1, 1) and one.u[0] == 2e-5


# ------------------------------------------------------------------ validation
def _maps(d_z=(-0.02, 0.0, 0.02), wavelength=0.009, source="obs_042.fits", **changes):
    uu, vv = _lattice(5, 5)
    maps = [BeamMap(uu, vv, np.ones(uu.size), dz, name=f"m{k}") for k, dz in enumerate(d_z)]
    for k, m in changes.items():
        maps[int(k[1:])] = m
    return BeamMaps(tuple(maps), wavelength, {"source": source})


def test_valid_maps_pass():
    _maps().validate()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(d_z=(0.0, 0.02, 0.02)), ["same d_z = 0.02 m"]),
        (dict(d_z=(-0.02, 0.02)), ["no in-focus map", "d_z = 0"]),
        (dict(wavelength=0.0), ["wavelength", "positive"]),
        (dict(wavelength=-0.009), ["wavelength", "positive"]),
        (dict(wavelength=float("nan")), ["wavelength"]),
        (dict(m1=BeamMap(np.array([]), np.array([]), np.array([]), 0.0, name="ZERO")),
         ["map ZERO", "no samples"]),
        (dict(m1=BeamMap([0.0, 1e-5], [0.0, 0.0], [1.0, np.nan], 0.0, name="ZERO")),
         ["map ZERO", "'beam'", "non-finite"]),
        (dict(m0=BeamMap([np.inf, 1e-5], [0.0, 0.0], [1.0, 2.0], -0.02, name="MINUS")),
         ["map MINUS", "'u'", "non-finite"]),
        (dict(m2=BeamMap([0.0, 1e-5], [0.0], [1.0, 2.0], 0.02, name="PLUS")),
         ["map PLUS", "'v'", "same length"]),
        (dict(m2=BeamMap([0.0, 1e-5], [0.0, 0.0], [1.0, 2.0], 0.02, [1.0, 0.0], "PLUS")),
         ["map PLUS", "'sigma'", "> 0"]),
        (dict(m1=BeamMap([0.0], [0.0], [1.0], np.nan, name="ZERO")), ["d_z", "finite"]),
    ],
)
def test_validate_names_source_and_field(kwargs, words):
    with pytest.raises(DataError) as info:
        _maps(**kwargs).validate()
    msg = str(info.value)
    assert msg.startswith("obs_042.fits: "), msg
    for w in words:
        assert w in msg, (w, msg)


def test_no_maps():
    with pytest.raises(DataError, match="<arrays>: no beam maps"):
        BeamMaps((), 0.009).validate()


# ------------------------------------------------------------------ units at the edge
def test_from_arrays_converts_quantities():
    uu, vv = _lattice(5, 5)
    arcsec = (1 * u.rad).to_value(u.arcsec)
    maps = BeamMaps.from_arrays(
        u=[uu * arcsec * u.arcsec, uu],
        v=[vv * u.rad, vv * 1e3 * u.mrad],
        beam=[np.ones(uu.size), np.ones(uu.size)],
        d_z=[0.0, 22.0] * u.mm,
        wavelength=33.3102731 * u.GHz,  # a frequency: converted with the spectral equivalency
        sigma=[None, np.full(uu.size, 0.1)],
        names=["ZERO", "PLUS"],
    )
    np.testing.assert_allclose(maps.maps[0].u, uu, rtol=1e-14)
    np.testing.assert_allclose(maps.maps[1].v, vv, rtol=1e-14)
    np.testing.assert_allclose(maps.d_z, [0.0, 0.022], rtol=1e-14)
    assert maps.wavelength == pytest.approx(299_792_458.0 / 33.3102731e9, rel=1e-14)
    assert maps.maps[0].sigma is None and maps.maps[1].sigma[0] == 0.1
    assert [m.name for m in maps.maps] == ["ZERO", "PLUS"]
    assert maps.maps[0].grid() is not None


def test_from_arrays_plain_floats_and_wrong_units():
    uu, vv = _lattice(3, 3)
    maps = BeamMaps.from_arrays([uu], [vv], [np.ones(9)], [0.0], 0.009)
    assert maps.wavelength == 0.009 and maps.d_z.tolist() == [0.0]
    with pytest.raises(u.UnitConversionError, match="d_z"):
        BeamMaps.from_arrays([uu], [vv], [np.ones(9)], [0.0] * u.s, 0.009)
    with pytest.raises(u.UnitConversionError, match="u: expected"):
        BeamMaps.from_arrays([uu * u.m], [vv], [np.ones(9)], [0.0], 0.009)
    with pytest.raises(DataError, match="no in-focus map"):
        BeamMaps.from_arrays([uu], [vv], [np.ones(9)], [0.01], 0.009)


# ------------------------------------------------------------------ real-file quirks
def test_coordinates_rounded_to_1e6_rad_keep_the_lattice():
    """A 3.27e-5 rad lattice written with 6 decimals (jitter up to 3 % of the step, as in a
    real SRT file) is a lattice whose grid lines are the rounded values themselves:
    every sample keeps its exact position (snap 0), and the lines are not uniform."""
    step = 3.27e-5
    uu, vv = _lattice(nu=31, nv=29, u0=-15 * step + 1.3e-7, v0=-14 * step, du=step, dv=step)
    ur, vr = np.round(uu, 6), np.round(vv, 6)
    dev = np.abs(ur - uu).max() / step
    assert 0.01 < dev <= 0.016  # the jitter is really there (rounding: <= 0.5e-6 / step)
    grid = regular_grid(ur, vr)
    assert grid is not None and (grid.nu, grid.nv) == (31, 29)
    assert not grid.uniform and grid.snap == 0.0
    np.testing.assert_array_equal(grid.u[grid.iu], ur)  # exact observed positions
    np.testing.assert_array_equal(grid.v[grid.iv], vr)
    # float32 storage of the rounded values: still exact positions of the float32 values
    u32, v32 = ur.astype(np.float32).astype(float), vr.astype(np.float32).astype(float)
    g32 = regular_grid(u32, v32)
    assert g32 is not None and g32.snap == 0.0
    np.testing.assert_array_equal(g32.u[g32.iu], u32)


def test_rounded_lattice_with_per_sample_jitter_snaps_within_the_rounding():
    """Samples of one grid line that disagree (but are rounded to 1e-6) snap to the fitted
    lattice; the move is at most the rounding quantum.  A jitter beyond the rounding
    (10 % of a step) is not a lattice."""
    step = 3.27e-5
    uu, vv = _lattice(nu=25, nv=25, u0=-12 * step, v0=-12 * step, du=step, dv=step)
    rng = np.random.default_rng(3)
    uj = np.round(uu + rng.uniform(-0.1e-6, 0.1e-6, uu.size), 6)  # per-sample, then rounded
    grid = regular_grid(uj, np.round(vv, 6))
    assert grid is not None
    assert 0 < grid.snap <= 1e-6 * (1 + 1e-6)
    assert np.max(np.abs(grid.u[grid.iu] - uj)) == pytest.approx(grid.snap, rel=0, abs=1e-18)
    assert regular_grid(np.round(uu + rng.normal(0, 0.1 * step, uu.size), 6), vv) is None


def test_rounded_lattice_direct_transform_is_exact():
    """The lattice transform on rounded coordinates = the scattered transform at the exact
    positions (to rounding, 1e-10 of the peak as in test_forward.py)."""
    import pytensor
    import pytensor.tensor as pt

    from bayesoof.physics.aperture import ApertureGrid
    from bayesoof.physics.transforms import DirectGrid, DirectScatter

    lam, R = 0.0135, 32.0
    step = 3.27e-5
    uu, vv = _lattice(nu=15, nv=13, u0=-7 * step, v0=-6 * step, du=step, dv=step)
    ur, vr = np.round(uu, 6), np.round(vv, 6)
    grid = regular_grid(ur, vr)
    ap = ApertureGrid.across(R, 40)
    X, Y = ap.coords()
    rng = np.random.default_rng(0)
    er = (np.hypot(X, Y) < R) * (1 + 0.1 * rng.normal(size=X.shape))
    ei = (np.hypot(X, Y) < R) * 0.1 * rng.normal(size=X.shape)
    a, b = pt.dmatrix(), pt.dmatrix()
    out = []
    for t in (DirectGrid(ap.x, lam, grid), DirectScatter(ap.x, lam, ur, vr)):
        fr, fi = t(a, b)
        out.append(pytensor.function([a, b], fr**2 + fi**2)(er, ei))
    np.testing.assert_allclose(out[0], out[1], rtol=0, atol=1e-10 * out[1].max())


def test_dead_samples_from_arrays():
    """Exact zeros in a map with a baseline of 40 (noise 10), and NaN, are masked with one
    warning naming the map and the count; a clean map is untouched."""
    from bayesoof.data.containers import DeadSampleWarning, mask_dead_samples

    uu, vv = _lattice(9, 9)
    rng = np.random.default_rng(4)
    beams = [40 + 10 * rng.normal(size=uu.size) for _ in range(3)]
    beams[0][[3, 50]] = 0.0
    beams[2][7] = np.nan
    maps = BeamMaps(tuple(BeamMap(uu, vv, b, dz, name=n) for b, dz, n in
                          zip(beams, (-0.02, 0.0, 0.02), ("minus", "zero", "plus"), strict=True)),
                    0.009, {"source": "obs.fits"})
    with pytest.warns(DeadSampleWarning) as rec:
        out = mask_dead_samples(maps)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "obs.fits" in msg and "map minus: 2 of 81 (2 exact zeros)" in msg, msg
    assert "map plus: 1 of 81 (1 NaN/inf)" in msg and "zero" not in msg.split("):")[-1][:6]
    assert [m.size for m in out.maps] == [79, 81, 80]
    assert out.maps[1] is maps.maps[1]
    out.validate()
