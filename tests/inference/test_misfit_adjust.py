"""Posterior K carried onto the quick fit's misfit covariance (misfit_adjust.py).

The algebra against its definition on Gaussian draws, the bookkeeping on a fake fit, and
one real posterior (order 1, 9 × 9 maps, emcee for seconds; ~55 s of compiling, so slow;
the default run does the same through the CLI in tests/cli/test_cli.py) with the misfit
covariance forced on (``remedy = "always"``), so the adjustment is exercised end to end.  Whether it
makes intervals honest under real misfit is the slow test at the end (an 'all'-effects
dataset of bench/misspec_study.py, default fit and posterior).
"""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

from bayesoof.inference import misfit_adjust


def _random_cov(p, rng, scale=1.0):
    a = rng.normal(size=(p, p))
    return scale * (a @ a.T + p * np.eye(p))


def test_adjustment_matrix_maps_the_draw_covariance_onto_the_target():
    rng = np.random.default_rng(0)
    cov_p, cov_h = _random_cov(5, rng), _random_cov(5, rng, 3.0)
    M = misfit_adjust.adjustment_matrix(cov_p, cov_h)
    # M cov_p M^T = cov_h to rounding (condition numbers ~10: 1e-10 relative is ample)
    np.testing.assert_allclose(M @ cov_p @ M.T, cov_h, rtol=1e-10, atol=1e-10 * cov_h.max())
    # the same covariance: no change
    np.testing.assert_allclose(misfit_adjust.adjustment_matrix(cov_p, cov_p), np.eye(5),
                               atol=1e-10)


def test_adjusted_draws_keep_the_mean_and_take_the_target_covariance():
    rng = np.random.default_rng(1)
    cov_p, cov_h = _random_cov(4, rng), _random_cov(4, rng, 10.0)
    draws = rng.multivariate_normal(np.arange(4.0), cov_p, size=(2, 500))
    centre = draws.reshape(-1, 4).mean(axis=0)
    emp = np.cov(draws.reshape(-1, 4), rowvar=False)
    out = misfit_adjust.adjust(draws, centre, misfit_adjust.adjustment_matrix(emp, cov_h))
    flat = out.reshape(-1, 4)
    np.testing.assert_allclose(flat.mean(axis=0), centre, atol=1e-9 * np.abs(centre).max())
    # exact (the empirical covariance is the one inverted)
    np.testing.assert_allclose(np.cov(flat, rowvar=False), cov_h, rtol=1e-9)


def _fake_fit(cov_full, free, plain=True):
    """A FitResult stand-in: the last order's K covariance and free mask, plain_last."""
    J = free.size
    last = types.SimpleNamespace(space=types.SimpleNamespace(free=free, nl=[None] * J),
                                 K_cov=lambda: cov_full)
    return types.SimpleNamespace(last=last, plain_last=object() if plain else None,
                                 uncertainty={"model": "hac", "reason": "test"},
                                 misfit_model=None)


def test_adjust_posterior_K_bookkeeping():
    rng = np.random.default_rng(2)
    J = 6
    free_fit = np.array([False, True, True, False, True, True])  # K 0 and 3 fixed in the fit
    cov_full = np.zeros((J, J))
    idx = np.flatnonzero(free_fit)
    cov_full[np.ix_(idx, idx)] = _random_cov(idx.size, rng, 4.0)
    free_j = np.array([1, 2, 3, 4, 5])  # the posterior frees K 3 too (fixed in the fit)
    K = rng.normal(size=(3, 400, free_j.size))
    K[2] += 50.0  # a stray chain, not primary: must not enter the mean or covariance
    out, rec = misfit_adjust.adjust_posterior_K(K, [0, 1], _fake_fit(cov_full, free_fit),
                                                free_j)
    keep = free_fit[free_j]
    flat = out[:2].reshape(-1, free_j.size)
    np.testing.assert_allclose(np.cov(flat[:, keep], rowvar=False),
                               cov_full[np.ix_(idx, idx)], rtol=1e-9)
    # the coefficient fixed in the fit is left as drawn, in every chain
    np.testing.assert_array_equal(out[..., ~keep], K[..., ~keep])
    assert rec["coefficients"] == keep.sum() and rec["target"] == "hac"
    # too few primary draws for Σ_P (5 per coefficient + 5): every chain's are used ...
    few = K[:, :10].copy()  # primary chain 0: 10 draws < 25; all three: 30
    fit = _fake_fit(cov_full, free_fit)
    out_few, _ = misfit_adjust.adjust_posterior_K(few, [0], fit, free_j)
    np.testing.assert_allclose(np.cov(out_few.reshape(-1, free_j.size)[:, keep], rowvar=False),
                               cov_full[np.ix_(idx, idx)], rtol=1e-9)
    # ... and with too few in all (3 x 2 < 25) there is no adjustment
    assert misfit_adjust.adjust_posterior_K(K[:, :2], [0], fit, free_j) is None
    # no misfit covariance in the fit (plain_last None): nothing to do
    assert misfit_adjust.adjust_posterior_K(K, [0, 1], _fake_fit(cov_full, free_fit, False),
                                            free_j) is None


def test_which_likelihoods_have_their_K_draws_carried_onto_the_fit():
    """Noise-only likelihood: always (adjust_posterior_K then decides from the fit); the
    quick fit's misfit likelihood: only with the aperture model error marginalised (its
    draws lack the error's widening and step); Student-t: never (the user's remedy)."""
    from bayesoof.inference.posterior import k_adjustable

    with_error = types.SimpleNamespace(model_error={"rms": 0.05})
    without = types.SimpleNamespace(model_error=None)
    assert k_adjustable("normal", with_error) and k_adjustable("normal", without)
    assert k_adjustable("normal", None)
    assert k_adjustable("misfit", with_error)
    assert not k_adjustable("misfit", without)
    assert not k_adjustable("student_t", with_error)



def test_verdict_judges_the_sampled_K_when_nothing_is_held(monkeypatch):
    """Nothing held, K adjusted: the K the convergence verdict judges are the chains as
    sampled (regression: when nothing was held, the adjustment replaced K in the very
    dict the verdict read, so a stop at R-hat 1.00x was reported as R-hat 1.0101 on an
    adjusted K in bench/misspec_posterior.py).

    Sampled: two coefficients sharing a unit-variance common part, chain offsets of
    ±0.05 in their small difference (R-hat ≈ 1.001); the stand-in adjustment singles out
    that difference (chain offsets of ±1 on sd 1: R-hat ≫ 1.01)."""
    import arviz as az

    from bayesoof.inference.diagnostics import diagnose
    from bayesoof.inference.posterior import carry_draws

    rng = np.random.default_rng(3)
    common = rng.normal(size=(4, 1000))
    small = 0.05 * (rng.normal(size=(4, 1000)) + np.array([0.0, 1.0, 0.0, -1.0])[:, None])
    K = np.stack([common + small, common - small], axis=-1)
    sigma = np.ones((4, 1000))

    def adjust(K_draws, primary, fit, free_j):
        diff, mean = (K_draws[..., 0] - K_draws[..., 1]) / 2, K_draws.mean(axis=-1)
        return np.stack([diff / 0.05, mean], axis=-1), {"coefficients": 2}

    monkeypatch.setattr(misfit_adjust, "adjust_posterior_K", adjust)
    info = types.SimpleNamespace(held={}, likelihood="normal", fit=None, free_j=[0, 1])
    given = {"K": K, "sigma": sigma}
    posterior, as_sampled, held, adjustment = carry_draws(
        given, info, [0, 1, 2, 3], {}, ["K", "sigma"])
    assert adjustment == {"coefficients": 2} and held is None
    assert given["K"] is K and posterior["K_noise_only"] is K  # the draws kept as sampled
    assert set(as_sampled) == {"K"} and as_sampled["K"] is K  # sigma was not replaced
    idata = az.from_dict(posterior={"K": posterior["K"]}, dims={"K": ["zernike"]},
                         coords={"zernike": ["K(1,-1)", "K(1,1)"]})
    judged = diagnose(idata, var_names=["K"], replace=as_sampled)
    assert judged["converged"] and judged["r_hat_max"] < 1.01, judged["problems"]
    assert diagnose(idata, var_names=["K"])["r_hat_max"] > 1.1  # the adjusted K's own

SMALL = dict(order=1, sampler="emcee", draws=20, tune=10, seed=3, progressbar=False)


@pytest.fixture(scope="module")
def tiny_data():
    from bayesoof.simulate import random_coefficients, simulate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate("effelsberg", random_coefficients(1, 0.05, seed=2), n_grid=9,
                        extent=5.0, snr=200.0, seed=2)


@pytest.mark.slow
def test_posterior_K_takes_the_fits_misfit_covariance(tiny_data):
    """(Slow: ~55 s of compiling; the default run has the CLI version,
    tests/cli/test_cli.py::test_sample_emcee_on_the_example.)"""
    from bayesoof.inference.sample import sample

    forced = {"config": {"misfit": {"remedy": "always"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = sample(tiny_data, telescope="effelsberg", fit_kwargs=forced, **SMALL)
    fit = post.fit
    assert fit.plain_last is not None  # the HAC covariance is on
    assert post.adjustment is not None and post.settings["misfit_adjust"] is True
    fj = post.info.free_j
    draws = post.K_draws()[:, fj]
    keep = fit.last.space.free[fj]
    target = fit.last.K_cov()[np.ix_(fj, fj)][np.ix_(keep, keep)]
    np.testing.assert_allclose(np.cov(draws[:, keep], rowvar=False), target, rtol=1e-8)
    # the noise-only draws are kept: the same mean but for the aperture model error's
    # joint step (model_error.py), their own (other) covariance
    noise_only = post.info.full_K(post._stack("K_noise_only"))[:, fj]
    shift = np.zeros(fj.size)
    if fit.exact_model_last is not None:
        shift = fit.last.space.values[fj] - fit.exact_model_last.space.values[fj]
    np.testing.assert_allclose(noise_only.mean(axis=0)[keep] + shift[keep],
                               draws.mean(axis=0)[keep],
                               atol=1e-12 + 1e-9 * np.abs(draws).max())
    assert not np.allclose(np.cov(noise_only[:, keep], rowvar=False), target, rtol=0.05)
    summary = post.summary()
    assert summary["misfit_adjustment"]["coefficients"] == int(keep.sum())
    assert "open-faced sandwich" in post.products["adequacy"].remedy
    assert "misfit_adjustment" in post.idata.posterior.attrs


@pytest.mark.slow
def test_misfit_likelihood_posterior_takes_the_model_error(tiny_data):
    """A GLS quick fit (its misfit likelihood maximised) with the model error marginalised:
    the posterior samples the same misfit likelihood and its K draws are carried onto the
    fit's marginal covariance, shifted by the model error's joint step; the verdict names
    both.  (Slow: ~60 s of compiling.)"""
    from bayesoof.inference.sample import sample

    gls = {"config": {"misfit": {"remedy": "always", "covariance": "gls"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = sample(tiny_data, telescope="effelsberg", fit_kwargs=gls, **SMALL)
    fit = post.fit
    assert post.info.likelihood == "misfit" and fit.model_error is not None
    assert post.adjustment is not None
    fj = post.info.free_j
    keep = fit.last.space.free[fj]
    draws = post.K_draws()[:, fj]
    target = fit.last.K_cov()[np.ix_(fj, fj)][np.ix_(keep, keep)]
    np.testing.assert_allclose(np.cov(draws[:, keep], rowvar=False), target, rtol=1e-8)
    shift = fit.last.space.values[fj] - fit.exact_model_last.space.values[fj]
    noise_only = post.info.full_K(post._stack("K_noise_only"))[:, fj]
    np.testing.assert_allclose(noise_only.mean(axis=0)[keep] + shift[keep],
                               draws.mean(axis=0)[keep],
                               atol=1e-12 + 1e-9 * np.abs(draws).max())
    remedy = post.products["adequacy"].remedy
    assert fit.misfit_model.sentence() in remedy and "model error" in remedy


@pytest.mark.slow
def test_adjusted_posterior_covers_like_the_quick_fit_under_misfit():
    """'all' dataset 0 of bench/misspec_study.py (seed 11, 25 × 25, legs fixed as in
    test_misspec.py, so the misfit is flagged): measured, the noise-only posterior's 90 %
    intervals held 9 of 20 K, the adjusted ones 16 (the quick fit's HAC intervals 16).
    Asserted: the adjusted hold at least 4 more than the noise-only (binomial sd of a
    count of 20 at p = 0.9 is 1.3), and their sd are the HAC's."""
    from bayesoof.inference.fit import fit
    from bayesoof.inference.sample import sample
    from bayesoof.testing import bench_script

    study = bench_script("misspec_study")
    args = types.SimpleNamespace(n_grid=25, snr=300.0, seed=11, order=None)
    data, truth = study.make_data("all", 0, args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(data, "effelsberg", config={"legs": {"free": False}})
        post = sample(data, fit_result=res, seed=0)
    assert not res.adequacy.adequate and post.converged, post.problems
    fj = post.info.free_j
    K_true = np.zeros(len(res.last.space.nl))
    K_true[: truth["K"].size] = truth["K"][: K_true.size]
    adjusted = post.K_draws()[:, fj]
    noise_only = post.info.full_K(post._stack("K_noise_only"))[:, fj]

    def inside(draws):
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        return int(np.sum((K_true[fj] >= lo) & (K_true[fj] <= hi)))

    assert inside(adjusted) >= inside(noise_only) + 4
    np.testing.assert_allclose(adjusted.std(axis=0, ddof=1),
                               np.sqrt(np.diag(res.last.K_cov()))[fj], rtol=1e-6)
