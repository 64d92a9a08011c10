"""Telescope presets, blockage (against pyoof's rules), coverage area, OPD and TOML errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayesoof.data.containers import BeamMap, BeamMaps
from bayesoof.physics.aperture import ApertureGrid
from bayesoof.physics.forward import ForwardModel
from bayesoof.physics.telescope import (
    Blockage,
    Optics,
    Telescope,
    TelescopeError,
    available_telescopes,
    get_telescope,
    load_telescope,
)

PRESETS = ("effelsberg", "manual", "sardinia", "alma", "jcmt")

# (radius, F_p, F_eff) from shared/PHYSICS.md (manual: pyoof's opd_manual(30 m, 387 m))
FIGURES = {
    "effelsberg": (50.0, 30.0, 387.39435),
    "manual": (50.0, 30.0, 387.0),
    "sardinia": (32.004, 21.0236, 149.76),
    "alma": (6.0, 4.8, 96.0),
    "jcmt": (7.5, 5.4, 180.0),
}


# ------------------------------------------------------------------ presets
def test_available_telescopes_lists_presets():
    names = available_telescopes()
    assert set(PRESETS) <= set(names), names
    assert names == sorted(names)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_with_documented_figures(name):
    tel = get_telescope(name)
    R, fp, feff = FIGURES[name]
    assert tel.name == name
    assert tel.radius == R
    assert tel.optics.kind == "cassegrain"
    assert tel.optics.focal_length == fp
    assert tel.optics.effective_focal_length == feff
    assert 0 < tel.blockage.sub_reflector_radius < R
    assert get_telescope(name.upper()) == tel  # names are case-insensitive
    assert get_telescope(tel) is tel


def test_unknown_preset_names_the_choices():
    with pytest.raises(TelescopeError, match="unknown telescope 'arecibo'.*effelsberg"):
        get_telescope("arecibo")


# ------------------------------------------------------------------ blockage vs pyoof
def _line(p1, p2, t):
    """Ordinate at abscissa t of the line through p1 and p2."""
    return p1[1] + (p2[1] - p1[1]) / (p2[0] - p1[0]) * (t - p1[0])


def pyoof_blockage(x, y, pr=50.0, sr=3.25, L=20.0, a=1.0, alpha_deg=20.0, shade=True):
    """pyoof's block_effelsberg / block_manual, rewritten from their published rules.

    Open (1) where sr < r < pr, except the legs |x| < sr + L & |y| < a and |y| < sr + L &
    |x| < a, and (with ``shade``) each leg's shade: the triangle from (A, ±a) to (C, ±D)
    with A = sr + L, d = (-a + sqrt(a² - (a² - pr²) csc²α)) / csc²α, C = d / tanα,
    D = a + d ((C, D) lies on the rim), and the whole dish beyond x = C (and likewise
    for the other three legs, by symmetry).
    """
    r2 = x**2 + y**2
    block = ((r2 < pr**2) & (r2 > sr**2)).astype(float)
    block[(np.abs(x) < sr + L) & (np.abs(y) < a)] = 0
    block[(np.abs(y) < sr + L) & (np.abs(x) < a)] = 0
    if shade:
        alpha = np.deg2rad(alpha_deg)
        csc2 = np.sin(alpha) ** -2
        d = (-a + np.sqrt(a**2 - (a**2 - pr**2) * csc2)) / csc2
        A, C, D = sr + L, d / np.tan(alpha), a + d
        for s, t in ((x, y), (-x, y), (y, x), (-y, x)):  # along, across each leg
            half = _line((A, a), (C, D), s)
            block[(s > A) & (s < C) & (np.abs(t) < half)] = 0
            block[(s >= C)] = 0  # beyond C only the rim bounds the shade
    return block


def _away_from_edges(mask, step=3):
    """Grid points whose whole (2 step + 1)² neighbourhood has the same mask value."""
    m = mask.astype(bool)
    same = np.ones_like(m)
    for dx in range(-step, step + 1):
        for dy in range(-step, step + 1):
            same &= np.roll(np.roll(m, dx, 0), dy, 1) == m
    return same


@pytest.mark.parametrize("name", ["effelsberg", "manual"])
def test_blockage_matches_pyoof_rules(name):
    """Point-wise agreement on a 1201² grid (8.4 cm) except within 3 cells of an edge.

    Edges are where the two codes legitimately differ (strict vs non-strict inequality,
    and bayesoof's anti-aliasing works with distances); away from them the masks must
    agree exactly, and the comparison covers > 95 % of the grid.
    """
    tel = get_telescope(name)
    g = np.linspace(-50.5, 50.5, 1201)
    X, Y = np.meshgrid(g, g, indexing="ij")
    if name == "effelsberg":
        ref = pyoof_blockage(X, Y)
    else:  # block_manual(pr=50 m, sr=3.25 m, a=1 m, L=pr-sr)
        ref = pyoof_blockage(X, Y, L=50.0 - 3.25, shade=False)
    got = tel.block(X, Y)
    keep = _away_from_edges(ref)
    assert keep.mean() > 0.95
    bad = keep & (got != ref)
    assert not bad.any(), (
        f"{name}: {bad.sum()} points differ, e.g. x={X[bad][0]:.3f} m, y={Y[bad][0]:.3f} m: "
        f"bayesoof {got[bad][0]}, pyoof {ref[bad][0]}"
    )
    # Edge probes 1 cm either side of every edge (the grid above cannot resolve a
    # 5 cm error in a leg width): legs, sub-reflector, rim and the shade's slanted side.
    d = 0.01
    sr, R = 3.25, 50.0
    L = 20.0 if name == "effelsberg" else R - sr
    s_leg = np.array([5.0, 10.0, 15.0])
    probes = [(s_leg, np.full(3, 1 - d), 0.0), (s_leg, np.full(3, 1 + d), 1.0)]
    c45 = np.cos(np.pi / 4)
    for r, want in ((sr - d, 0.0), (sr + d, 1.0), (R - d, 1.0), (R + d, 0.0)):
        probes.append((np.array([r * c45]), np.array([r * c45]), want))
    if name == "effelsberg":
        alpha = np.deg2rad(20.0)
        csc2 = np.sin(alpha) ** -2
        dd = (-1 + np.sqrt(1 - (1 - R**2) * csc2)) / csc2
        half = _line((sr + L, 1.0), (dd / np.tan(alpha), 1 + dd), 35.0)
        probes += [(np.array([35.0]), np.array([half - d]), 0.0),
                   (np.array([35.0]), np.array([half + d]), 1.0)]
    for s, t, want in probes:
        for px, py in ((s, t), (-s, -t), (-t, s), (t, -s)):  # the four legs
            assert np.all(pyoof_blockage(px, py, L=L, shade=name == "effelsberg") == want)
            np.testing.assert_array_equal(tel.block(px, py), want, err_msg=f"{px}, {py}")


def _strip(c, a):
    """Area of |y| < a inside the disc of radius c (both halves of the strip)."""
    return 2 * (a * np.sqrt(c * c - a * a) / 2 + c * c * np.arcsin(a / c) / 2)


def test_manual_open_area_converges():
    """Supersampled pixel coverage integrates the open area of 'manual' accurately.

    Exact area: π(R² - sr²) minus 4 legs, each the strip |y| < a between the circles of
    radius sr and R (its ends are arcs).  Measured at 96 pixels x 8² sub-pixels:
    8e-6 relative; bound 3e-5.  The simple formula π(R² - sr²) - 4·2a·L ignores the
    arcs at the leg ends (5.2e-5 of the area), so it agrees to 1e-4.  Without the
    anti-aliasing (supersample 1) the error is 1.3e-4: the bound tells the two apart.
    """
    tel = get_telescope("manual")
    R, sr, a = 50.0, 3.25, 1.0
    exact = np.pi * (R**2 - sr**2) - 4 * (_strip(R, a) - _strip(sr, a))
    simple = np.pi * (R**2 - sr**2) - 4 * 2 * a * (R - sr)
    grid = ApertureGrid.across(R, 96)
    cov = grid.coverage(tel)
    assert cov.min() >= 0 and cov.max() <= 1
    area = cov.sum() * grid.dx**2
    assert abs(area - exact) / exact < 3e-5, (area, exact)
    assert abs(area - simple) / simple < 1e-4, (area, simple)
    coarse = ApertureGrid.across(R, 96, supersample=1)
    assert abs(coarse.coverage(tel).sum() * coarse.dx**2 - exact) / exact > 3e-5
    # refinement converges: 192 pixels is within 3e-6 (measured 9e-7)
    fine = ApertureGrid.across(R, 192)
    assert abs(fine.coverage(tel).sum() * fine.dx**2 - exact) / exact < 3e-6


@pytest.mark.parametrize("name", ["effelsberg", "sardinia", "manual", "alma", "jcmt"])
@pytest.mark.parametrize("n, supersample", [(96, 8), (61, 3), (48, 1)])
def test_coverage_splits_only_edge_pixels_with_the_same_result(name, n, supersample):
    """The coverage splits only the pixels within reach of an edge; the others are 0 or 1.

    Reference: every pixel split into its sub-pixels, written here independently from the
    signed distance.  The values agree to rounding (1e-15: the same sums, by construction
    bit for bit; measured 0), and pixels were indeed skipped (the edge set is small).
    """
    tel = get_telescope(name)
    grid = ApertureGrid.across(tel.radius, n, supersample=supersample)
    s, h = supersample, grid.dx / supersample
    sub = ((np.arange(s) + 0.5) / s - 0.5) * grid.dx
    X, Y = grid.coords()
    ref = np.zeros_like(X)
    for ox in sub:
        for oy in sub:
            ref += np.clip(0.5 + tel.open_distance(X + ox, Y + oy) / h, 0.0, 1.0)
    ref /= s**2
    np.testing.assert_allclose(grid.coverage(tel), ref, rtol=0, atol=1e-15)
    partial = np.count_nonzero((ref > 0) & (ref < 1))
    assert 0 < partial < 0.5 * ref.size  # an edge set to skip around, not the whole grid


# ------------------------------------------------------------------ OPD
def test_opd_cassegrain_hand_values():
    """δ = d_z [(1 - a²)/(1 + a²) + (1 - b²)/(1 + b²)], a = r/(2F_p), b = r/(2F_eff).

    F_p = 30 m, F_eff = 60 m at r = 30 m: a = 1/2 -> 3/5, b = 1/4 -> 15/17.
    """
    opt = Optics("cassegrain", 30.0, 60.0)
    dz = 0.022
    want = dz * (3 / 5 + 15 / 17)
    # r = 30 m along x, along y and along a 3-4-5 diagonal: δ depends on r only
    got = opt.opd(np.array([30.0, 0.0, 18.0, -18.0]), np.array([0.0, 30.0, 24.0, -24.0]), dz)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert opt.opd(np.array(0.0), np.array(0.0), dz) == pytest.approx(2 * dz, rel=1e-15)
    # a = 1 (r = 2 F_p = 60 m): the primary term vanishes; b = 1/2 -> 3/5
    assert opt.opd(np.array(60.0), np.array(0.0), -dz) == pytest.approx(-dz * 3 / 5, rel=1e-14)


def test_opd_prime_focus_hand_values():
    opt = Optics("prime", 30.0)
    dz = 0.01
    np.testing.assert_allclose(opt.opd(np.array([0.0, 30.0, 60.0]), np.zeros(3), dz),
                               [dz, dz * 3 / 5, 0.0], rtol=1e-14, atol=1e-18)


def test_effelsberg_opd_is_pyoof_opd():
    """pyoof's opd_effelsberg: F_p = 30 m, F_eff = 387.39435 m."""
    tel = get_telescope("effelsberg")
    x, y = np.array([0.0, 12.0, -35.0]), np.array([0.0, -5.0, 20.0])
    r = np.hypot(x, y)
    a, b = r / 60.0, r / (2 * 387.39435)
    want = 0.022 * ((1 - a**2) / (1 + a**2) + (1 - b**2) / (1 + b**2))
    np.testing.assert_allclose(tel.opd(x, y, 0.022), want, rtol=1e-14)


# ------------------------------------------------------------------ user TOML, callables
GOOD_TOML = """\
name = "mydish"
description = "a test dish"
radius = 12.5

[blockage]
sub_reflector_radius = 0.8
leg_half_width = 0.1
leg_length = 5.0
leg_angles = [30.0, 150.0, 270.0]

[optics]
kind = "gregorian"
focal_length = 5.0
effective_focal_length = 80.0
"""


def test_user_toml_file_loads(tmp_path):
    path = tmp_path / "mydish.toml"
    path.write_text(GOOD_TOML)
    tel = load_telescope(path)
    assert get_telescope(str(path)) == tel
    assert (tel.name, tel.radius, tel.description) == ("mydish", 12.5, "a test dish")
    assert tel.blockage == Blockage(0.8, 0.1, 5.0, (30.0, 150.0, 270.0), 0.0)
    assert tel.optics == Optics("cassegrain", 5.0, 80.0)  # gregorian = same defocus path
    # three legs at 30, 150, 270 deg: a point on the 30-deg leg is blocked, on 90 deg not
    r = 3.0
    on = tel.block(np.array([r * np.cos(np.pi / 6)]), np.array([r * np.sin(np.pi / 6)]))
    off = tel.block(np.array([0.0]), np.array([r]))
    assert (on[0], off[0]) == (0.0, 1.0)


def test_custom_callables_are_used():
    """blockage_func / opd_func replace the declarative geometry everywhere they enter."""

    def half_dish(x, y):
        return ((np.hypot(x, y) < 10.0) & (x > 0)).astype(float)

    def tilt_opd(x, y, d_z):
        return d_z * (1.0 + x / 10.0)

    tel = Telescope("custom", 10.0, blockage_func=half_dish, opd_func=tilt_opd)
    x, y = np.array([5.0, -5.0]), np.array([0.0, 0.0])
    np.testing.assert_array_equal(tel.block(x, y), [1.0, 0.0])
    np.testing.assert_array_equal(tel.opd(x, y, 0.01), [0.015, 0.005])
    assert tel.open_distance(x, y) is None  # point-sampled coverage for callables
    g = np.array([-1e-5, 0.0, 1e-5])
    maps = BeamMaps((BeamMap(g, g, np.zeros(3), 0.0), BeamMap(g, g, np.zeros(3), 0.02)), 0.003)
    grid = ApertureGrid.across(10.0, 20, supersample=4)
    fm = ForwardModel(maps, tel, 1, method="direct", sampling=grid)
    X, Y = grid.coords()
    # coverage: the mean of the callable over 4 x 4 sub-pixel centres
    sub = (np.arange(4) + 0.5) / 4 * grid.dx - grid.dx / 2
    want = np.mean([half_dish(X + a, Y + b) for a in sub for b in sub], axis=0)
    np.testing.assert_allclose(fm.block, want, atol=1e-15)
    assert fm.block[X < -grid.dx].max() == 0.0
    # defocus phase (rad) of the second map: 2π/λ · opd_func
    np.testing.assert_allclose(fm.defocus_phase[1], 2 * np.pi / 0.003 * tilt_opd(X, Y, 0.02))
    assert tel.to_dict()["custom_blockage"] == "half_dish"


def test_residual_table_and_illumination_declaration(tmp_path):
    """A table residual path (linear in r) and a declared illumination load and are used."""
    path = tmp_path / "shaped.toml"
    path.write_text(
        "radius = 10.0\n[optics]\nfocal_length = 4.0\neffective_focal_length = 40.0\n"
        "[optics.residual]\nkind = 'table'\ndz_powers = [1, 2]\nr = [0.0, 5.0, 10.0]\n"
        "values = [[0.0, 0.0], [0.01, 1.0], [0.03, -2.0]]\n"
        "[illumination]\nmodel = 'gaussian'\ntaper = -12.0\ntaper_bounds = [-20.0, -6.0]\n"
    )
    tel = load_telescope(path)
    assert (tel.illumination.model, tel.illumination.taper) == ("gaussian", -12.0)
    assert tel.illumination.taper_bounds == (-20.0, -6.0)
    r, dz = np.array([2.5, 7.5]), 0.02
    # linear interpolation of each profile: T_1 = (0.005, 0.02), T_2 = (0.5, -0.5)
    want = dz * tel.optics.on_axis_profile(r) + dz * np.array([0.005, 0.02]) + dz**2 * np.array(
        [0.5, -0.5])
    np.testing.assert_allclose(tel.opd(r, 0 * r, dz), want, rtol=0, atol=1e-15)
    terms = tel.opd_terms(r, 0 * r)
    np.testing.assert_allclose(dz * terms[1] + dz**2 * terms[2], want, rtol=0, atol=1e-15)
    d = tel.to_dict()  # metadata is plain JSON
    import json

    assert json.loads(json.dumps(d))["optics"]["residual"]["values"][1] == [0.01, 1.0]


def test_sardinia_preset_declares_srt_geometry():
    tel = get_telescope("sardinia")
    # session 5: the log-polynomial taper (edge taper c_dB) replaced pyoof-srt's Gaussian,
    # measured on the GRASP SRT far fields (bench/RESULTS.md, "GRASP SRT")
    assert tel.illumination.model == "log_polynomial"
    assert tel.illumination.taper_bounds == (-25.0, -5.0)
    b = tel.blockage
    assert (b.sub_reflector_radius, b.leg_half_width) == (3.953, 0.25)
    assert b.sub_reflector_radius + b.leg_length == pytest.approx(17.5, abs=1e-12)
    assert b.leg_angles == (45.0, 135.0, 225.0, 315.0)
    assert tel.optics.residual is not None and tel.optics.residual.dz_powers == (3, 2, 1)


# ------------------------------------------------------------------ malformed input
def _write(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


OPTICS = "[optics]\nfocal_length = 5.0\neffective_focal_length = 80.0\n"
RES = "radius = 10\n" + OPTICS + "[optics.residual]\n"


@pytest.mark.parametrize(
    "text, fields",
    [
        ("radius = 10\n[optics\n", ["not valid TOML"]),
        (OPTICS, ["top level", "'radius'"]),
        ('radius = "big"\n' + OPTICS, ["'radius'", "'big'"]),
        ("radius = -1\n" + OPTICS, ["'radius'", "> 0"]),
        ("radius = 10\n[optics]\nfocal_length = 5.0\n", ["[optics]", "'effective_focal_length'"]),
        ("radius = 10\n[optics]\neffective_focal_length = 5.0\n", ["[optics]", "'focal_length'"]),
        ('radius = 10\n[optics]\nkind = "offset"\nfocal_length = 5.0\n', ["[optics]", "offset"]),
        ("radius = 10\n[optics]\nfocal_length = -5.0\neffective_focal_length = 8.0\n",
         ["[optics]", "focal lengths"]),
        ("radius = 10\n[blockage]\nsub_reflector_radius = 12\n" + OPTICS,
         ["[blockage]", "sub_reflector_radius"]),
        ('radius = 10\n[blockage]\nleg_half_width = "wide"\n' + OPTICS,
         ["[blockage]", "'leg_half_width'"]),
        ('radius = 10\n[blockage]\nleg_angles = "x"\n' + OPTICS, ["[blockage]", "'leg_angles'"]),
        ("radius = 10\n[blockage]\nleg_length = -2\n" + OPTICS, ["[blockage]", "'leg_length'"]),
        ("radius = 10\n[blockage]\nshade_half_angle = 95\n" + OPTICS,
         ["[blockage]", "shade_half_angle"]),
        ("radius = 10\nblockage = 3\n" + OPTICS, ["'blockage'", "table"]),
        (RES + "kind = 'spline'\n", ["[optics.residual]", "spline"]),
        (RES + "kind = 'table'\ndz_powers = [1]\nr = [0.0, 5.0]\nvalues = [[0.0], [1e-3]]\n",
         ["[optics.residual]", "'r'", "cover the dish"]),
        (RES + "kind = 'table'\ndz_powers = [1]\nr = [0.0, 10.0]\nvalues = [[0.0]]\n",
         ["[optics.residual]", "'values'", "2 rows of 1"]),
        (RES + "kind = 'polynomial'\ndz_powers = [0]\nr_powers = [2]\ncoefficients = [[1.0]]\n",
         ["[optics.residual]", "'dz_powers'", ">= 1"]),
        (RES + "kind = 'polynomial'\ndz_powers = [1]\nr_powers = [2]\n",
         ["[optics.residual]", "missing 'coefficients'"]),
        (RES + "kind = 'polynomial'\ndz_powers = [1]\nr_powers = [2]\ncoefficients = [[1.0]]\n"
         "r = [0.0]\n", ["[optics.residual]", "not ['r']"]),
        ("radius = 10\n[illumination]\nmodel = 'tophat'\n" + OPTICS,
         ["[illumination]", "tophat"]),
        ("radius = 10\n[illumination]\nmodel = 'gaussian'\ntaper_bounds = [-8, -25]\n" + OPTICS,
         ["[illumination]", "'taper_bounds'"]),
        ("radius = 10\n[illumination]\nmodel = 'gaussian'\ntaper = -30\n"
         "taper_bounds = [-25, -8]\n" + OPTICS, ["[illumination]", "'taper'", "outside"]),
    ],
)
def test_malformed_toml_names_file_and_field(tmp_path, text, fields):
    path = _write(tmp_path, text)
    with pytest.raises(TelescopeError) as info:
        get_telescope(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for f in fields:
        assert f in msg, (f, msg)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_telescope(tmp_path / "nope.toml")


def test_presets_are_frozen():
    tel = get_telescope("alma")
    with pytest.raises(dataclasses.FrozenInstanceError):
        tel.radius = 7.0


@pytest.mark.parametrize(
    ("text", "section", "key"),
    [
        ("radius = 5.0\nraduis = 6.0\n[optics]\nfocal_length = 2.0\neffective_focal_length = 9.0\n",
         "top level", "raduis"),
        ("radius = 5.0\n[blockage]\nleg_halfwidth = 0.1\n[optics]\nfocal_length = 2.0\n"
         "effective_focal_length = 9.0\n", "blockage", "leg_halfwidth"),
        ("radius = 5.0\n[optics]\nfocal_length = 2.0\neffective_focal_lenght = 9.0\n",
         "optics", "effective_focal_lenght"),
        ("radius = 5.0\n[optics]\nfocal_length = 2.0\neffective_focal_length = 9.0\n"
         "[optics.residual]\nkind = 'table'\ndz_power = [1]\n", r"optics\.residual", "dz_power"),
        ("radius = 5.0\n[optics]\nfocal_length = 2.0\neffective_focal_length = 9.0\n"
         "[illumination]\nmodel = 'gaussian'\ntaper_bound = [-20, -8]\n", "illumination",
         "taper_bound"),
    ],
)
def test_misspelt_key_is_an_error(tmp_path, text, section, key):
    # a typo must not silently fall back to a default geometry
    path = tmp_path / "typo.toml"
    path.write_text(text)
    with pytest.raises(TelescopeError, match=rf"typo\.toml: \[{section}\].*{key}"):
        load_telescope(path)
