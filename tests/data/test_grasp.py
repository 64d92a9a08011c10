"""TICRA GRASP .grd reader: a synthetic file written here, malformed files, the shared SRT files."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from bayesoof import testing as T
from bayesoof.data.containers import SPEED_OF_LIGHT, DataError
from bayesoof.data.grasp import read_grasp, read_grd
from bayesoof.testing import shared_dir

GRASP_DIR = shared_dir() / "data" / "grasp_srt"
SRT_FILES = ("ffmap_-out.grd", "ffmap_in.grd", "ffmap_+out.grd")


_write_grd, _field = T.write_grd, T.grd_field


def test_synthetic_grd_layout(tmp_path):
    """u varies fastest; the limits are the first and last grid points; power = |E_co|²."""
    f = _field()
    path = _write_grd(tmp_path / "a.grd", f)
    g = read_grd(path)
    assert g["shape"] == (4, 5)
    assert g["frequency"] == pytest.approx(26e9, rel=1e-12)
    np.testing.assert_allclose(g["u"][:5], np.linspace(-1e-3, 1e-3, 5), rtol=0, atol=1e-18)
    np.testing.assert_allclose(g["v"][::5], np.linspace(-2e-3, 2e-3, 4), rtol=0, atol=1e-18)
    # 1e-10 relative: the file holds 11 significant digits
    np.testing.assert_allclose(g["e_co"], f[:, :, 0].ravel(), rtol=1e-10)
    np.testing.assert_allclose(g["e_cx"], f[:, :, 1].ravel(), rtol=1e-10)
    # a centre offset (IX, IY) shifts the grid by whole steps
    g2 = read_grd(_write_grd(tmp_path / "b.grd", f, centre=(1, -2)))
    np.testing.assert_allclose(g2["u"] - g["u"], 0.5e-3, rtol=1e-12)
    np.testing.assert_allclose(g2["v"] - g["v"], -2 * 4e-3 / 3, rtol=1e-12)


def test_read_grasp_builds_beam_maps(tmp_path):
    fields = [_field(seed=s) for s in range(3)]
    paths = [_write_grd(tmp_path / f"m{k}.grd", fld) for k, fld in enumerate(fields)]
    maps = read_grasp(paths, [-11.53, 0.0, 11.53] * u.mm, sigma_fraction=1e-4)
    assert maps.n_maps == 3 and list(maps.d_z) == pytest.approx([-0.01153, 0.0, 0.01153])
    assert maps.wavelength == pytest.approx(SPEED_OF_LIGHT / 26e9, rel=1e-12)
    for m, fld in zip(maps.maps, fields, strict=True):
        power = np.abs(fld[:, :, 0].ravel()) ** 2
        np.testing.assert_allclose(m.beam, power, rtol=1e-9)
        np.testing.assert_allclose(m.sigma, 1e-4 * power.max(), rtol=1e-9)  # 11 digits
        assert m.grid() is not None  # the lattice fast path
    assert [m.name for m in maps.maps] == ["m0", "m1", "m2"]
    assert maps.meta["format"] == "grasp"
    plain = read_grasp(paths, [-0.01153, 0.0, 0.01153])  # plain floats are metres
    assert plain.maps[0].sigma is None and plain.d_z[2] == 0.01153


@pytest.mark.parametrize(
    "kwargs, lines, words",
    [
        ({}, {"drop_end": True}, ["no '++++'"]),
        (dict(head=("2", "1 3 2 1")), {}, ["KTYPE = 2"]),
        (dict(head=("1", "2 3 2 1")), {}, ["NSET = 2"]),
        (dict(head=("1", "1 3 2 4")), {}, ["IGRID = 4"]),
        (dict(head=("1", "1 3 x 1")), {}, ["NSET ICOMP NCOMP IGRID", "4 integers"]),
        (dict(nxny=(5, 5)), {}, ["20 data rows", "NX*NY = 25"]),
        (dict(klimit=1), {}, ["KLIMIT = 1"]),
        (dict(freq="twenty GHz"), {}, ["FREQUENCY"]),
        ({}, {"bad_row": True}, ["not numeric"]),
    ],
)
def test_malformed_grd_one_line_error(tmp_path, kwargs, lines, words):
    path = _write_grd(tmp_path / "bad.grd", _field(), **kwargs)
    text = path.read_text().splitlines()
    if lines.get("drop_end"):
        text = [s for s in text if s != "++++"]
    if lines.get("bad_row"):
        text[-3] = "0.1 0.2 abc 0.4"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError) as info:
        read_grd(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_read_grasp_argument_errors(tmp_path):
    p = _write_grd(tmp_path / "a.grd", _field())
    with pytest.raises(DataError, match="2 files but 1 d_z"):
        read_grasp([p, p], [0.0])
    with pytest.raises(FileNotFoundError, match="nope.grd"):
        read_grasp([tmp_path / "nope.grd"], [0.0])
    q = _write_grd(tmp_path / "b.grd", _field(), freq="30 GHz")
    with pytest.raises(DataError, match="frequency 30 GHz differs"):
        read_grasp([p, q], [0.0, 0.01])
    with pytest.raises(DataError, match="no in-focus map"):
        read_grasp([p], [0.01])


@pytest.mark.skipif(not GRASP_DIR.is_dir(), reason="shared GRASP SRT files absent")
def test_shared_srt_files():
    """The README's figures: 101 x 101 grids to ±1.407433e-3, 26 GHz, peaks 2.65e7 (minus)
    and 4.34e7 (plus); cross-polar 25-33 dB below co-polar."""
    maps = read_grasp([GRASP_DIR / f for f in SRT_FILES], [-0.01153, 0.0, 0.01153])
    assert maps.wavelength == pytest.approx(0.0115305, abs=1e-7)
    for m in maps.maps:
        g = m.grid()
        assert g is not None and (g.nu, g.nv) == (101, 101) and g.uniform
        assert np.max(np.abs(m.u)) == pytest.approx(1.407433e-3, rel=1e-9)
    peaks = [m.beam.max() for m in maps.maps]
    assert peaks[0] == pytest.approx(2.65e7, rel=0.01) and peaks[2] == pytest.approx(4.34e7,
                                                                                        rel=0.01)
    assert peaks[1] > 4 * peaks[2]
    g = read_grd(GRASP_DIR / "ffmap_in.grd")
    ratio = 10 * np.log10(np.max(np.abs(g["e_cx"]) ** 2) / np.max(np.abs(g["e_co"]) ** 2))
    assert -34 < ratio < -24, ratio


#: The quick fit of the three SRT files with the sardinia preset and its geometry held
#: (``python bench/grasp_srt.py --sign + --legs fixed --pointing fixed --save FILE``, session
#: 5): order-5 K (waves), the log-polynomial taper, the effective d_z (m; the +out file at
#: +11.53 mm commanded), and the residual rms it reached (% of each map's peak).
#: bench/RESULTS.md, "GRASP SRT" (with the defaults, legs and pointing free: 0.81 / 0.08 /
#: 0.59 %).
SRT_FIT_K = np.array([
    0, 2.46721923e-06, 0.00938873121, -1.79860695e-07, 0.00576860525,
    0.0235190449, -2.45814829e-07, 3.58068187e-07, 0.00820027336, 0.013345148,
    1.49858923e-07, -1.81655562e-07, -0.0521210826, 0.0137436037, -0.0195471691,
    7.11771986e-07, -2.15621003e-07, -4.87149536e-07, 0.00652057876, 0.00835830641,
    -0.0235156773,
])
SRT_FIT_TAPER = {"c_dB": -13.87778527, "b2": -5.127844863, "b3": 2.571148784,
                 "x0": -0.3943113611, "y0": 1.622147361e-05}
SRT_FIT_DZ = [-0.01107974252, 0, 0.01212394274]
SRT_FIT_RMS = [0.8363, 0.108, 0.5869]


@pytest.mark.skipif(not GRASP_DIR.is_dir(), reason="shared GRASP SRT files absent")
def test_sardinia_preset_reproduces_the_grasp_fields():
    """The user's path on the GRASP files: reader, sardinia preset (classical + SRT residual
    path, log-polynomial taper, legs) and the forward graph, at the quick fit's parameters,
    leave the residual the fit reached: rms <= 1.01 x SRT_FIT_RMS per map (0.84 / 0.11 /
    0.59 % of the peaks; the issue's goal of 0.3 % is not met).

    Not a fit (a fit takes minutes): the stored optimum is evaluated and the linear part
    (amplitude, offset, baseline drift over the sample order, as the fit's) solved per map
    by least squares, so the residual cannot exceed the fit's except through the model;
    tolerance 1 %: the stored values are rounded to 10 digits and the pixels are the fit's
    (chosen for the commanded d_z), so anything beyond rounding is a change of the model
    (the old preset's Gaussian taper, at its own optimum, leaves 1.54 / 1.08 / 1.14 %).
    """
    from bayesoof.physics.forward import ForwardModel

    paths = [GRASP_DIR / f for f in SRT_FILES]
    commanded = read_grasp(paths, [-0.01153, 0.0, 0.01153])
    sampling = ForwardModel(commanded, "sardinia", 5, "log_polynomial").sampling
    maps = read_grasp(paths, SRT_FIT_DZ)
    fm = ForwardModel(maps, "sardinia", 5, "log_polynomial", sampling=sampling)
    # FAST_COMPILE: one evaluation, so the C compilation (8 s CPU) would not pay (2 s)
    power = T.compile_power(fm, mode="FAST_COMPILE", with_pointing=False)(SRT_FIT_K,
                                                                         SRT_FIT_TAPER)
    for m, sl, goal in zip(maps.maps, fm.map_slices, SRT_FIT_RMS, strict=True):
        t = np.linspace(-0.5, 0.5, m.beam.size)
        design = np.column_stack([power[sl], np.ones_like(t), t])
        coef, *_ = np.linalg.lstsq(design, m.beam, rcond=None)
        rms = 100 * np.sqrt(np.mean((m.beam - design @ coef) ** 2)) / m.beam.max()
        assert rms <= 1.01 * goal, (m.name, rms, goal)


@pytest.mark.slow
@pytest.mark.skipif(not GRASP_DIR.is_dir(), reason="shared GRASP SRT files absent")
def test_quick_fit_of_the_grasp_fields():
    """The whole user path: ``bayesoof.fit`` of the three files with the sardinia preset and
    the default configuration (legs, pointing, focus offsets, drift free; the misfit remedy
    off, as the nominal σ makes every GRASP fit a misfit).  Minutes of CPU: --run-slow.

    Tolerances: the residual rms <= 1.02 x SRT_FIT_RMS (the fit with legs and pointing held;
    measured with them free 0.806 / 0.080 / 0.586 %); the fitted edge taper within 1 dB and
    the focus offsets of the defocused maps within 1 mm of the measured -14.1 dB and
    +0.21 / +0.33 mm (with the old Gaussian taper they ran to +4.5 mm and c_dB to its bound).
    """
    import warnings

    import bayesoof

    maps = read_grasp([GRASP_DIR / f for f in SRT_FILES], [-0.01153, 0.0, 0.01153],
                      sigma_fraction=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bounds, adequacy: reported by the result
        res = bayesoof.fit(maps, "sardinia", order=5, config={"misfit": {"remedy": "never"}})
    resid = res.split_maps(res.forward.observed - res.model_beam)
    for m, r, goal in zip(maps.maps, resid, SRT_FIT_RMS, strict=True):
        rms = 100 * np.sqrt(np.mean(r**2)) / m.beam.max()
        assert rms <= 1.02 * goal, (m.name, rms, goal)
    assert abs(res.params["c_dB"] - (-14.1)) < 1.0, res.params["c_dB"]
    offsets = res.space.values[res.space.slice_of("focus_offset")]
    np.testing.assert_allclose(offsets, [0.00021, 0.0, 0.00033], atol=0.001)


def _grasp_study():
    """bench/grasp_study.py as a module (its ``transfer_test`` and ``Fit``)."""
    return T.bench_script("grasp_study")


@pytest.mark.skipif(not GRASP_DIR.is_dir(), reason="shared GRASP SRT files absent")
def test_grasp_defocused_fields_are_not_the_in_focus_field_defocused():
    """The OOF assumption's floor on the GRASP files (bench/RESULTS.md "Session 7").

    The in-focus file's aperture field, recovered by the regularised inverse DFT and
    defocused by the sardinia path (d_z fitted), predicts the defocused maps to 0.706 /
    0.804 % of their peaks (measured); the same inversion on a field that obeys the
    assumption (the NumPy fitter's model at a log-polynomial taper with aberrations)
    transfers to 0.003 %.  The GRASP aperture field changes with d_z beyond the path (with
    one free-form field for all three maps the floor is 0.28 %: ``--freeform``).
    """
    gs = _grasp_study()
    case = "in-focus field + path"
    fields, u, v, lam = gs._files_fields()
    files = gs.transfer_test(fields, u, v, lam, cases=[case])
    # the misfit is a property of the files: 0.706 / 0.804 % measured; > 0.6 % keeps it at
    # twice the 0.3 % target while allowing small changes of the inversion's settings
    for name in (gs.FILES[0], gs.FILES[2]):
        assert files[(name, case)][0] > 0.6
    f = gs.Fit({"illum": "logpoly", "poly_m": 3, "n": 64, "ss": 2})
    p = f.p0.copy()
    p[f.ix["c1_0"]], p[f.ix["c2_0"]], p[f.ix["c3_0"]] = 0.96, -5.13, 2.57  # the files' fit
    p[f.ix["x0_0"]] = -0.39
    p[f.ix["K(2, 2)"]], p[f.ix["K(3, 1)"]] = 0.05, -0.03  # aberrations, waves
    control = gs.transfer_test([m[1] for m in f.maps(p)], u, v, lam, cases=[case])
    for name, dz in ((gs.FILES[0], -11.53), (gs.FILES[2], 11.53)):
        rms, dz_fit = control[(name, case)]
        # the inversion's own error: 0.003-0.004 % at the files' fit; 0.02 % is 5x that and
        # still 30x below the files' misfit
        assert rms < 0.02
        assert abs(dz_fit - dz) < 0.05  # mm: the commanded d_z comes back
