"""Full posteriors: recovery with the default sampling, NUTS vs emcee, products, outputs.

The simulated cases are in sample_cases.py.
"""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pytest
from sample_cases import AMP, OFFSET, quick_fit, simulated, truths

from bayesoof.inference.fit import fit
from bayesoof.inference.sample import sample
from bayesoof.inference.samplers import default_nuts, get_sampler
from bayesoof.simulate import random_coefficients, simulate


@pytest.fixture(scope="module")
def order3():
    """Order 3, 31 × 31 maps: quick fit, then the default sampling (sampler 'nuts', its
    default warm-up and draws, 4 chains): the defaults must converge and recover."""
    truth, data = simulated(3, seed=1)
    fr = quick_fit(data, 3)
    post = sample(data, telescope="effelsberg", order=3, fit_result=fr, seed=11)
    return truth, data, fr, post


# ------------------------------------------------------------------ recovery
def test_recovery_order3_truth_in_94_hdi(order3):
    """Default sampling: every Zernike coefficient's truth inside its 94% HDI; R-hat ≤ 1.01,
    ESS ≥ 400.

    A seeded claim: for a calibrated posterior each of the 9 free K misses its 94% HDI
    with probability 6%, so a failure names the coefficients to look at (coverage itself
    is tested below and in bench/coverage_study.py).  The 7 nuisance parameters (c_dB,
    amplitudes, offsets) are checked against their 99% HDI (with this seed the in-focus
    amplitude's truth lies 2.1 sd off, just outside its 94% HDI: expected once in a while
    among 16 parameters).  The leg geometry, free in the quick fit, is sampled (the
    default since session 7): with it held at the quick fit's values (the old default)
    c_dB, correlated with the leg width, was too narrow and its truth -14.5 fell outside
    its 99% HDI [-14.387, -12.696] (fresh-clone CI at c0cc7d0).  Sampled, the truth still
    sat at the HDI's edge ([-14.492, -12.56], an xfail until session 17): the model holds
    q (Laplace sd 0.106, 4.6 sd from its bound), and c_dB, on the q-c_dB ridge, was
    sampled conditional on it (over 50 datasets of bench/misspec_posterior.py 'baseline'
    the posterior's c_dB held its truth in 72 % of its 90 % intervals, rms z 1.55).  The
    draws are now carried over the held q (bayesoof.inference.held_marginal): c_dB sd
    0.38 -> 0.67, 99% HDI [-15.40, -11.91], mean 1.5 sd from the truth.
    """
    truth, data, fr, post = order3
    assert not {"leg_half_width", "shade_half_angle"} & set(post.model.bayesoof.held)
    # this case exercises the held q's marginalisation (held, and drawn in the posterior)
    assert "q" in post.model.bayesoof.held and "q" in post.primary_posterior()
    assert post.held_marginal["held_sd"]["q"][0] > 0.02
    spec = get_sampler(default_nuts())
    assert post.sampler == spec.name == default_nuts()
    assert (post.settings["draws"], post.settings["tune"]) == (spec.default_draws,
                                                                spec.default_tune)
    d = post.diagnostics
    assert post.converged, post.problems
    assert d["r_hat_max"] <= 1.01 and d["ess_bulk_min"] >= 400 and d["divergences"] == 0
    assert not post.modes["multimodal"]
    misses = []
    for name, tv in truths(post, truth).items():
        prob = 0.94 if name == "K" else 0.99
        hdi = az.hdi(post.primary_posterior()[[name]], hdi_prob=prob)[name]
        lo = np.atleast_1d(hdi.sel(hdi="lower").values)
        hi = np.atleast_1d(hdi.sel(hdi="higher").values)
        labels = (list(post.model.coords["zernike"]) if name == "K"
                  else list(post.model.coords["map"]) if name in ("amp", "offset") else [name])
        for lab, t, a, b in zip(labels, np.atleast_1d(tv), lo, hi, strict=True):
            if not a <= t <= b:
                misses.append(f"{name} {lab}: truth {t:.5g} outside {prob:.0%} HDI "
                              f"[{a:.5g}, {b:.5g}]")
    assert not misses, "; ".join(misses)


def test_posterior_products(order3):
    """Maps, rms draws, predictive beams and residuals have the promised form.

    Standardised residuals of the posterior-mean model: 961 samples per map of unit
    variance noise, so the rms is 1 within ±3 × 1/sqrt(2 · 961) = ±0.07 (we allow 0.1).
    """
    truth, data, fr, post = order3
    p = post.products
    n = p["x"].size
    for k in ("phase_mean", "phase_sd", "phase_lo", "phase_hi", "surface_mean", "surface_sd"):
        assert p[k].shape == (n, n)
    inside = np.isfinite(p["phase_mean"])
    assert np.all(p["phase_lo"][inside] <= p["phase_mean"][inside] + 1e-12)
    assert np.all(p["phase_hi"][inside] >= p["phase_mean"][inside] - 1e-12)
    np.testing.assert_allclose(p["surface_sd"], p["phase_sd"] * 0.009 / (4 * np.pi) * 1e6)
    S = post.K_draws().shape[0]
    for k in ("phase_rms", "phase_rms_weighted", "surface_rms", "ruze", "ruze_weighted"):
        assert p["rms"][k].shape == (S,)
    assert set(p["rms_summary"]["surface_rms"]) == {"mean", "sd", "hdi_3%", "hdi_97%"}
    beam = post.idata.posterior_predictive["beam"]
    assert beam.shape[-1] == data.maps[0].size * 3
    for name, r in p["residuals_per_map"].items():
        assert abs(r["rms"] - 1.0) < 0.1, (name, r)


def test_save_run_directory(order3, tmp_path):
    truth, data, fr, post = order3
    run = fr.save(tmp_path)
    post.save(run)
    idata = az.from_netcdf(run / "posterior.nc")
    assert {"posterior", "sample_stats", "observed_data", "constant_data",
            "posterior_predictive"} <= set(idata.groups())
    assert list(idata.posterior["K"].coords["n"].values) == [n for n in post.info.coords["n"]]
    assert "d_z" in idata.posterior.coords
    assert idata.constant_data.attrs["telescope"] == "effelsberg"
    summ = json.loads((run / "summary.json").read_text())
    assert "coefficients" in summ  # the quick fit's sections are kept
    par = summ["posterior"]["parameters"]
    for lab in post.model.coords["zernike"]:
        assert {"mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk", "ess_tail"} <= set(par[lab])
    assert summ["posterior"]["converged"] is True
    assert (run / "posterior_products.nc").is_file()
    with pytest.raises(FileExistsError):
        post.save(run)


# ------------------------------------------------------------------ NUTS vs emcee
@pytest.mark.filterwarnings("ignore::bayesoof.inference.posterior.PosteriorWarning")
def test_emcee_agrees_with_nuts(order3):
    """Same log-density, two samplers: means and sds agree within 4 Monte Carlo errors.

    emcee: 2·d+2 walkers from the Laplace approximation, 300 burn-in + 1500 steps.  Since
    the quick fit frees the taper order q (which the posterior holds here, its sd being
    0.088), ArviZ's ESS of this run is only ~80-100 per parameter (it was assumed ≳ 500
    before), so a fixed 0.2 sd no longer exceeded 3 standard errors: the run measured
    |Δmean| 0.25 sd on K(1,-1) and K(3,-1), while 4000 steps after 1000 of burn-in agreed
    with NUTS to 0.06 sd (both against a fixed 1500-draw NUTS run).  So the tolerance is
    computed from the runs' own ESS: |Δmean|/sd ≤ 4·sqrt(1/ESS_emcee + 1/ESS_nuts) and
    |sd ratio - 1| ≤ 4·sqrt(1/(2·ESS_emcee) + 1/(2·ESS_nuts)) (standard errors of a mean
    and of an sd), per parameter; emcee's ESS must be ≥ 50 for every parameter, so the
    tolerance stays below ~0.6 sd and ~0.4 (a wrong density shifts them by more).
    """
    truth, data, fr, nuts = order3
    ens = sample(data, telescope="effelsberg", order=3, fit_result=fr, sampler="emcee",
                 draws=1500, tune=300, seed=5, products=False)
    assert ens.sampler == "emcee"
    worst = []
    a, b = nuts.primary_posterior(), ens.primary_posterior()
    for name in ("K", "c_dB", "amp", "offset"):
        ess_a = np.atleast_1d(az.ess(a[[name]])[name].values).ravel()
        ess_b = np.atleast_1d(az.ess(b[[name]])[name].values).ravel()
        assert ess_b.min() >= 50, (name, ess_b)
        x = a[name].values.reshape(-1, *a[name].shape[2:])
        y = b[name].values.reshape(-1, *b[name].shape[2:])
        sd = x.std(0)
        dm = np.atleast_1d(np.abs(x.mean(0) - y.mean(0)) / sd)
        ds = np.atleast_1d(np.abs(y.std(0) / sd - 1))
        tol_m = 4 * np.sqrt(1 / ess_b + 1 / ess_a)
        tol_s = 4 * np.sqrt(1 / (2 * ess_b) + 1 / (2 * ess_a))
        worst += [(name, i, m, s, tm, ts) for i, (m, s, tm, ts)
                  in enumerate(zip(dm, ds, tol_m, tol_s, strict=True)) if m > tm or s > ts]
    assert not worst, ("NUTS and emcee disagree (param, index, |Δmean|/sd, |sd ratio - 1|, "
                       f"their tolerances): {worst}")


# ------------------------------------------------------------------ slow studies
@pytest.mark.slow
def test_recovery_order5_default_sampling():
    """Order 5 (20 free K), 41 × 41 maps, the default aperture sampling (98 pixels), the
    default sampling (sampler 'nuts', its default warm-up and draws, 4 chains).

    Converged (R-hat ≤ 1.01, ESS ≥ 400, no divergence) and the truths recovered: at most
    3 of the 20 K outside their 94% HDI (Binomial(20, 0.06): P(≥ 4) = 3%) and none outside
    its 99.5% HDI (P(all inside) = 90% for a calibrated posterior); the failure message
    names them.
    """
    truth = random_coefficients(5, scale=0.05, seed=3)
    data = simulate("effelsberg", truth, n_grid=41, snr=200.0, seed=1003, amp=AMP,
                    offset=OFFSET)
    fr = fit(data, telescope="effelsberg", order=5)
    post = sample(data, telescope="effelsberg", order=5, fit_result=fr, seed=2,
                  products=False)
    assert post.converged, post.problems
    K = post.primary_posterior()[["K"]]
    labels = list(post.model.coords["zernike"])
    t = truth[post.info.free_j]
    out = {}
    for prob in (0.94, 0.995):
        h = az.hdi(K, hdi_prob=prob)["K"]
        lo, hi = h.sel(hdi="lower").values, h.sel(hdi="higher").values
        out[prob] = [f"{lab}: {v:.4f} not in [{a:.4f}, {b:.4f}]"
                     for lab, v, a, b in zip(labels, t, lo, hi, strict=True) if not a <= v <= b]
    assert len(out[0.94]) <= 3 and not out[0.995], out
