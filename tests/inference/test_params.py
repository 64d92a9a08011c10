"""Fit configuration (TOML presets, overrides, errors) and the parameter vector layout."""

from __future__ import annotations

import numpy as np
import pytensor
import pytest

from bayesoof.inference.params import (
    FitConfigError,
    ParameterSpace,
    available_presets,
    load_fit_config,
)
from bayesoof.physics import zernike

BEAM = 0.009 / 100.0  # rad, λ/D of a 100 m dish at 9 mm
RADIUS = 50.0  # m, that dish's radius (x0, y0 are configured in units of it)


# ------------------------------------------------------------------ presets
def test_presets_are_shipped_as_package_resources():
    assert {"default", "pyoof"} <= set(available_presets())
    cfg = load_fit_config()
    assert cfg["fit"]["order"] == 5 and cfg["source"] == "defaults"
    assert load_fit_config("pyoof")["source"] == "preset pyoof"


def test_default_free_and_fixed_set():
    sp = ParameterSpace.from_config(load_fit_config(), 3, BEAM, radius=RADIUS)
    free = set(sp.free_names)
    assert "K(0,0)" not in free  # piston unobservable
    assert {"K(1,-1)", "K(1,1)", "K(5,5)", "c_dB"} <= free
    # issue 9: the illumination centre, pointing tied to the tilts and (session 4) the taper
    # order q are default nuisances (map 0 is the reference without d_z: its pointing is
    # the tilts'); this assertion changed from "q not free" with the new default
    assert {"x0", "y0", "q", "pointing_u[1]", "pointing_v[2]"} <= free
    assert not {"pointing_u[0]", "pointing_v[0]"} & free
    assert {f"amp[{i}]" for i in range(3)} | {f"offset[{i}]" for i in range(3)} <= free
    assert sp.values[sp.illum_index["c_dB"]] == -14.5
    assert sp.values[sp.illum_index["q"]] == 1.4


def test_pyoof_preset_expresses_config_params_semantics():
    """pyoof's [i_amp, c_dB, q, x0, y0, K(0,0), K(1,±1)]: free/fixed as in its yml."""
    cfg = load_fit_config("pyoof")
    sp = ParameterSpace.from_config(cfg, 3, BEAM, radius=RADIUS)
    free = set(sp.free_names)
    assert {"c_dB", "q", "K(1,-1)", "K(1,1)"} <= free
    assert not {"x0", "y0", "K(0,0)"} & free
    assert "amp[0]" in free  # i_amp maps onto the per-map amplitudes
    assert cfg["zernike"]["init"] == 0.1  # pyoof starts new coefficients at 0.1 waves
    assert sp.lower[sp.illum_index["x0"]] == -0.01


def test_centre_offsets_follow_one_rule():
    """x0, y0: configured in units of R, held in m; fit bounds = prior support = ±0.2 R.

    Exact equality: both are the registry's numbers times R, computed once each.
    """
    from bayesoof.inference.priors import block_prior, load_priors

    sp = ParameterSpace.from_config(load_fit_config(), 3, BEAM, radius=RADIUS)
    pri = load_priors()
    for name in ("x0", "y0"):
        i = sp.illum_index[name]
        assert (sp.lower[i], sp.upper[i]) == (-0.2 * RADIUS, 0.2 * RADIUS)
        assert sp.units[i] == "m" and sp.free[i]  # free by default since issue 9
        spec = block_prior(sp.block(name), pri, {"radius": RADIUS})
        assert spec == {"dist": "uniform", "lower": sp.lower[i], "upper": sp.upper[i]}
    on_small_dish = ParameterSpace.from_config(load_fit_config(), 3, BEAM, radius=6.0)
    assert on_small_dish.upper[on_small_dish.illum_index["x0"]] == 0.2 * 6.0
    with pytest.raises(FitConfigError, match=r"'illumination.x0' starts at 0.5 R, outside"):
        load_fit_config({"illumination": {"x0": {"free": True, "value": 0.5}}})


def test_user_file_overrides_entries(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        "[fit]\norder = 3\n"
        '[zernike]\nfixed = { "K(0,0)" = 0.0, "K(1,-1)" = 0.0, "K(1,1)" = 0.0 }\n'
        "[illumination.q]\nfree = true\n"
    )
    cfg = load_fit_config(path)
    assert cfg["fit"]["order"] == 3 and cfg["source"] == str(path)
    sp = ParameterSpace.from_config(cfg, 2, BEAM, radius=RADIUS)
    assert len(sp.nl) == zernike.n_coeffs(3)
    assert "q" in sp.free_names and "K(1,1)" not in sp.free_names
    # keyword overrides win over the file
    assert load_fit_config(path, order=2)["fit"]["order"] == 2


def test_dict_config_and_pointing():
    cfg = load_fit_config({
        "pointing": {"free": True, "limit": 1.5},
        "zernike": {"fixed": {"K(0,0)": 0.0, "K(1,-1)": 0.0, "K(1,1)": 0.0}},
    })
    sp = ParameterSpace.from_config(cfg, 3, BEAM, radius=RADIUS)
    names = sp.free_names
    assert "pointing_u[0]" in names and "pointing_v[2]" in names
    assert np.allclose(sp.upper[sp.pointing_slice], 1.5 * BEAM)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"fit": {"order": 0}}, r"'fit.order' must be an integer >= 1"),
        ({"fit": {"ordr": 3}}, r"unknown entry 'fit.ordr'"),
        ({"fit": {"order": "five"}}, r"'fit.order' must be int"),
        ({"fit": {"illumination": "cosine"}}, r"'fit.illumination'.*cosine"),
        ({"fit": {"residual": "l1"}}, r"'fit.residual' = 'l1'"),
        ({"noise": {"source": "guess"}}, r"'noise.source' = 'guess'"),
        ({"illumination": {"c_dB": {"value": -30.0}}},
         r"'illumination.c_dB' starts at -30.0 dB, outside its bounds \[-25.0, -1.0\]"),
        ({"illumination": {"q": {"lower": 2.0, "upper": 1.0}}}, r"'illumination.q' needs lower"),
        ({"illumination": {"z0": {"free": True}}}, r"unknown entry .illumination.z0."),
        ({"zernike": {"init": 7.0}}, r"'zernike.init' = 7.0 lies outside the bounds"),
        ({"zernike": {"fixed": {"K(2,1)": 0.0, "K(0,0)": 0.0}}}, r"'K\(2,1\)' is not of the form"),
        ({"zernike": {"fixed": {"K(1,1)": 0.0}}}, r"must hold K\(0,0\)"),
        ({"amplitude": {"free": "yes"}}, r"'amplitude.free' must be bool"),
    ],
)
def test_bad_configs_name_the_field(config, match):
    with pytest.raises(FitConfigError, match=match):
        cfg = load_fit_config(config)
        ParameterSpace.from_config(cfg, 3, BEAM, radius=RADIUS)


def test_malformed_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[fit\norder = 3\n")
    with pytest.raises(FitConfigError, match=r"broken.toml: not valid TOML"):
        load_fit_config(path)


def test_missing_file_or_preset():
    with pytest.raises(FitConfigError, match=r"no such file, and not a preset"):
        load_fit_config("no-such-preset")


def test_all_fixed_is_an_error():
    fixed = {name: 0.0 for name in zernike.coeff_names(2)}
    cfg = load_fit_config({
        "fit": {"order": 2},
        "zernike": {"fixed": fixed},
        "illumination": {n: {"free": False} for n in ("c_dB", "q", "x0", "y0")},
        "amplitude": {"free": False},
        "offset": {"free": False},
        "pointing": {"free": False},  # default nuisances since issue 9
    })
    with pytest.raises(FitConfigError, match=r"every parameter is fixed; nothing to fit"):
        ParameterSpace.from_config(cfg, 3, BEAM, radius=RADIUS)


def test_pointing_with_free_tilts_fixes_the_reference_map():
    """Tilts and a pointing common to all maps are exactly degenerate (a tilt shifts every
    beam alike).  With both free (issue 9: pointing tied to the tilts) the in-focus map's
    pointing is fixed at 0 - the tilts carry it - and the other maps' are free, relative to
    it.  (Until issue 9 this configuration was an error.)"""
    cfg = load_fit_config({"pointing": {"free": True}})
    sp = ParameterSpace.from_config(cfg, 3, BEAM, d_z=[-0.02, 0.0, 0.02],
                                    radius=RADIUS)
    names = sp.free_names
    assert {"K(1,-1)", "K(1,1)"} <= set(names)
    assert "pointing_u[1]" not in names and "pointing_v[1]" not in names
    assert {"pointing_u[0]", "pointing_v[0]", "pointing_u[2]", "pointing_v[2]"} <= set(names)
    # the reference is the map with the smallest |d_z|, wherever it is
    sp = ParameterSpace.from_config(cfg, 3, BEAM, d_z=[0.0, -0.02, 0.02],
                                    radius=RADIUS)
    assert "pointing_u[0]" not in sp.free_names and "pointing_u[1]" in sp.free_names
    # with the tilts fixed every map's pointing is free (the earlier mode, unchanged)
    fixed = load_fit_config({"pointing": {"free": True}, "zernike": {"fixed": {
        "K(0,0)": 0.0, "K(1,-1)": 0.0, "K(1,1)": 0.0}}})
    sp = ParameterSpace.from_config(fixed, 3, BEAM, d_z=[-0.02, 0.0, 0.02],
                                    radius=RADIUS)
    assert "pointing_u[1]" in sp.free_names and "K(1,1)" not in sp.free_names


def test_start_outside_bounds_names_the_parameter():
    sp = ParameterSpace.from_config(load_fit_config(), 3, BEAM, radius=RADIUS)
    sp.values[zernike.nl_to_j(2, 0)] = 9.0
    with pytest.raises(FitConfigError, match=r"K\(2,0\) starts at 9 wave, outside its bounds"):
        sp.check_start()


# ------------------------------------------------------------------ layout
def test_at_order_fixes_higher_terms_at_zero():
    sp = ParameterSpace.from_config(load_fit_config({"zernike": {"init": 0.1}}), 3, BEAM,
                                    radius=RADIUS)
    low = sp.at_order(2)
    for j, (n, _) in enumerate(sp.nl):
        if n > 2:
            assert not low.free[j] and low.values[j] == 0.0
        elif j:
            assert low.free[j] and low.values[j] == 0.1
    assert sp.free.sum() > low.free.sum()  # the original is untouched


def test_unpack_matches_split_of_full_vector():
    """unpack (tensor) and split (NumPy) give the same values; fixed entries are constants."""
    cfg = load_fit_config({
        "pointing": {"free": True},
        "zernike": {"fixed": {"K(0,0)": 0.0, "K(1,-1)": 0.0, "K(1,1)": 0.0}},
    })
    sp = ParameterSpace.from_config(cfg, 3, BEAM, radius=RADIUS)
    rng = np.random.default_rng(0)
    sp.values[:] = rng.normal(size=sp.n_full)
    theta = rng.normal(size=sp.free.sum())
    full = sp.full(theta)
    ref = sp.split(full)
    t = pytensor.tensor.vector("theta")
    parts = sp.unpack(t)
    f = pytensor.function(
        [t], [parts["K"], parts["amp"], parts["offset"], parts["pointing"],
              *parts["illum"].values()]
    )
    K, amp, off, pnt, *ill = f(theta)
    np.testing.assert_array_equal(K, ref["K"])
    np.testing.assert_array_equal(amp, ref["amp"])
    np.testing.assert_array_equal(off, ref["offset"])
    np.testing.assert_array_equal(pnt, ref["pointing"])
    np.testing.assert_array_equal(ill, list(ref["illum"].values()))
    assert pnt.shape == (3, 2)
    # fixed entries come from values, free ones from theta
    assert K[0] == sp.values[0] and K[3] == theta[list(sp.free_names).index("K(2,-2)")]


def test_params_dict_design_form():
    sp = ParameterSpace.from_config(load_fit_config({"fit": {"illumination": "gaussian"}}), 2,
                                    BEAM, radius=RADIUS)
    p = sp.params_dict()
    assert set(p) == {"K", "c_dB", "x0", "y0", "amp", "offset", "pointing"}
    # pointing is a default nuisance since issue 9 (before: None)
    assert p["pointing"].shape == (2, 2) and p["K"].shape == (21,) and p["amp"].shape == (2,)


def test_a_loaded_configuration_can_be_handed_back():
    # the campaign's --order auto loads the configuration once and passes it to every fit:
    # the provenance keys ("source", "illumination_from") must not read as unknown settings,
    # and where the illumination came from must survive the round trip
    cfg = load_fit_config(order=3)
    assert cfg["illumination_from"] == "default"
    again = load_fit_config(cfg)
    assert again["fit"]["order"] == 3
    assert again["illumination_from"] == "default"
    chosen = load_fit_config(illumination="gaussian")
    assert load_fit_config(chosen)["illumination_from"] == "config"
