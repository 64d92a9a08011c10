"""Small version of bench/misspec_study.py: default fits of data with real-observation effects.

The full study (≥ 50 datasets per setting, coverage and phase-error ratios) is the bench
script; here two datasets per setting on 25 × 25 maps check that the default fit flags the
misfit, switches its misfit likelihood on and says so, and that this makes the K errors
more honest than the noise-only covariance (a smaller rms of (K̂ - K)/sd); that the
default drift, taper-order and leg nuisances absorb those effects, also on pyoof-like
point-sampled apertures (coarse).
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from bayesoof.testing import bench_script


def _study():
    return bench_script("misspec_study")


def _default(out, setting) -> list:
    """The rows of the default fit on ``setting``'s datasets."""
    return [r for r in out if r["setting"] == setting and r["method"] == "default"]


@pytest.fixture(scope="module")
def rows():
    study = _study()
    args = types.SimpleNamespace(n_grid=25, snr=300.0, seed=11, order=None, candidates=[])
    out = []
    for setting in ("baseline", "drift", "taper", "legs", "coarse"):
        for i in range(2):
            out += study.one(setting, i, args)
    # 'all' with the legs fixed at the preset's (the default before session 5): with them
    # free (the default now) the free leg width and shade absorb the effects of 'all' on
    # these maps (not flagged; phase ratio 0.65, see test_leg_geometry_is_fitted_by_default),
    # so the data would no longer test the misfit remedy the two tests below are about
    fixed_legs = types.SimpleNamespace(**vars(args), config={"legs": {"free": False}})
    for i in range(2):
        out += study.one("all", i, fixed_legs)
    return study, out


def test_baseline_is_adequate_and_all_effects_are_flagged(rows):
    """(The 'all' fits hold the legs fixed since session 5: see the fixture.)"""
    _, out = rows
    base, every = _default(out, "baseline"), _default(out, "all")
    assert [r["misfit"] for r in base] == [False, False]
    assert [r["misfit"] for r in every] == [True, True]


def test_misfit_likelihood_makes_the_errors_more_honest(rows):
    study, out = rows
    table = {(r["setting"], r["method"]): r for r in study.summarise(out)}
    # on adequate data no misfit covariance is switched on: the default is the noise-only
    # fit with the aperture model error marginalised (model_error.py), whose K sd are
    # 5-15 % wider (measured median 1.08 on the study's 41 x 41 maps)
    base = _default(out, "baseline")
    assert not any(r["misfit"] for r in base)
    assert all(1.0 < r["model_error_sd_ratio"] < 1.3 for r in base)
    plain, default = table["all", "noise_only"], table["all", "default"]
    # with every effect on, the noise-only sd are several times too small (z_rms measured
    # 6 on the 31 × 31 smoke run); the default's must be closer to calibrated
    assert plain["z_rms"] > 2.0
    assert default["z_rms"] < plain["z_rms"] / 1.5
    assert default["coverage90"] > plain["coverage90"]
    assert np.isfinite(default["phase_err_rad"])


def test_drift_is_absorbed_by_the_default_drift_nuisance(rows):
    """The drift setting (gain ±3 %, baseline ±0.5 % of the peak along the scan): the
    default fit's baseline-drift nuisance absorbs it: the phase error within 1.5× that of
    the same data without the drift (the study's target).  Measured on these two datasets:
    1.04× and 0.99× with the default, 3.6× and 2.0× with the drift nuisance off (both then
    flagged); with it on, dataset 1 is still flagged (the unmodelled ±3 % gain ramp), so
    the flag is not asserted."""
    _, out = rows
    base = {r["dataset"]: r for r in _default(out, "baseline")}
    drift = _default(out, "drift")
    assert len(drift) == 2
    for r in drift:
        assert r["phase_err"] < 1.5 * base[r["dataset"]]["phase_err"], (r, base)


def test_taper_order_is_fitted_by_default(rows):
    """The taper setting (q = 1.8, illumination centre at (0.3, -0.2) m): the default fit
    frees q (session 4) and finds it within 4 Laplace sd; its phase error is within 1.25×
    that of the same data with q = 1.4.  Measured on these two datasets: q = 1.779 ± 0.057,
    1.820 ± 0.053, phase ratios 0.99 and 1.03; with q fixed at its start (the previous
    default) 1.48 and 1.05 (dataset 0 fails), and q = 1.4 is 7 sd from the truth."""
    _, out = rows
    base = {r["dataset"]: r for r in _default(out, "baseline")}
    taper = _default(out, "taper")
    assert len(taper) == 2
    for r in taper:
        assert r["q_sd"] is not None and abs(r["q"] - r["q_true"]) < 4 * r["q_sd"], r
        assert r["phase_err"] < 1.25 * base[r["dataset"]]["phase_err"], (r, base)


def test_leg_geometry_is_fitted_by_default(rows):
    """The legs setting (leg shade half-angle 12 deg, the preset's 20 deg): the default fit
    frees the leg half-width and shade angle (session 5) and finds the angle within 4
    Laplace sd of 12 deg and the half-width within 4 sd of the preset's 1 m; its phase error
    is within 1.5x that of the same data with the preset's shade (the study's target).
    Measured on these two datasets: shade 12.14 +- 0.37 and 11.74 +- 0.25 deg, half-width
    1.042 +- 0.060 and 1.008 +- 0.047 m, phase ratios 0.58 and 0.56; with the legs fixed at
    the preset's (the previous default) the ratios are 1.91 and 2.52 (both fail) and the
    legs have no sd (not fitted)."""
    _, out = rows
    base = {r["dataset"]: r for r in _default(out, "baseline")}
    legs = _default(out, "legs")
    assert len(legs) == 2
    for r in legs:
        for name in ("shade_half_angle", "leg_half_width"):
            assert r[f"{name}_sd"] is not None, r
            assert abs(r[name] - r[f"{name}_true"]) < 4 * r[f"{name}_sd"], (name, r)
        assert r["phase_err"] < 1.5 * base[r["dataset"]]["phase_err"], (r, base)


def test_coarse_aperture_leg_width_settles_inside_its_bounds(rows):
    """The coarse setting (pyoof-like: a 60-pixel point-sampled aperture, samples on its
    FFT grid): the staircase legs act wider than the preset's 1 m half-width, so the free
    width must be able to settle inside its bounds (a parameter at a bound has no
    meaningful Laplace sd, and what it cannot absorb biases q and K).  Asserted: the width
    is more than 3 of its sd below the upper bound (2.0 x 1 m since session 6), and the
    phase error within 1.5x that of the same data without the effect (the study's target).
    Measured on these two datasets (25 x 25 maps): width 1.652 +- 0.048 and 1.628 +- 0.044
    m, q 1.368 and 1.421 +- 0.059 (truth 1.4), phase ratios 0.89 and 1.09; with the
    previous bound 1.5 x the width sat on it (1.500) in both, q 1.284 and 1.335 (2.0 and
    1.1 sd low), ratios 1.09 and 1.17: the first assertion fails."""
    _, out = rows
    base = {r["dataset"]: r for r in _default(out, "baseline")}
    coarse = _default(out, "coarse")
    assert len(coarse) == 2
    for r in coarse:
        upper = 2.0 * r["leg_half_width_true"]  # [legs] width_range upper x the preset's
        assert r["leg_half_width_sd"] is not None, r
        assert upper - r["leg_half_width"] > 3 * r["leg_half_width_sd"], r
        assert r["phase_err"] < 1.5 * base[r["dataset"]]["phase_err"], (r, base)


def test_per_coefficient_z_adds_up_to_the_table(rows):
    """The per-K breakdown (``--per-k``) holds every free K of every dataset: its squared
    rms z, weighted by the datasets, sums to the table's z_rms² × n for each setting, and
    the labels are those of the free K (no piston)."""
    study, out = rows
    table = {r["setting"]: r for r in study.summarise(out) if r["method"] == "default"}
    per_k = study.per_coefficient(out)
    assert set(per_k) == set(table)
    for setting, coeffs in per_k.items():
        assert "0,0" not in coeffs
        n = sum(c[2] for c in coeffs.values())
        assert n == sum(r["n"] for r in _default(out, setting))
        z2 = sum(c[0] ** 2 * c[2] for c in coeffs.values())
        assert z2 / n == pytest.approx(table[setting]["z_rms"] ** 2, rel=1e-9)
