"""The aperture model error marginalised in the quick fit (model_error.py).

The algebra against a hand computation (the penalised least-squares problem solved as an
augmented system), its calibration on a linear-Gaussian problem where the truth is known
(the conditional covariance undercovers, the marginal one holds 90 %), the Jacobian the fit
takes from its objective against finite differences of the same objective, and the
bookkeeping of a real fit (what is reported, what is kept, how to switch it off).  Its
effect on the misspecification study is bench/misspec_study.py (bench/RESULTS.md).
"""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

from bayesoof.inference import misfit_adjust
from bayesoof.inference.config import FitConfigError, load_fit_config
from bayesoof.inference.model_error import APERTURE_ERROR, marginalise, n_terms, prior_sd

Z90 = 1.6448536269514722


def _problem(rng, n=200, p=4, J=6):
    jac = rng.normal(size=(n, p)) * np.array([1.0, 30.0, 0.1, 5.0])  # mixed units
    jac_a = rng.normal(size=(n, J)) + 0.5 * jac[:, :1]  # correlated with θ's first column
    r = rng.normal(size=n)
    return jac, jac_a, r


def test_marginalise_is_the_penalised_least_squares_solution():
    """Step and covariance against the augmented system [A; √P] x = [-r; 0] solved directly."""
    rng = np.random.default_rng(0)
    jac, jac_a, r = _problem(rng)
    p, J = jac.shape[1], jac_a.shape[1]
    sd_a = np.linspace(0.05, 0.2, J)
    step, a_hat, cov = marginalise(jac, jac_a, r, sd_a)
    A = np.hstack([jac, jac_a])
    root = np.r_[np.zeros(p), 1.0 / sd_a]
    aug = np.vstack([A, np.diag(root)[p:]])
    x = np.linalg.lstsq(aug, np.r_[-r, np.zeros(J)], rcond=None)[0]
    H_inv = np.linalg.inv(aug.T @ aug)
    # both are double-precision solves of a well-conditioned system (cond ~1e3 after the
    # column scaling): 1e-9 relative is far below any difference that matters, far above
    # rounding
    np.testing.assert_allclose(step, x[:p], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a_hat, x[p:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov, H_inv[:p, :p], rtol=1e-9)
    # the marginalisation widens most the θ the error leaks into (column 0; variance ratio
    # 2.04 here, the others 1.004-1.04), and narrows none
    ratio = np.diag(cov) / np.diag(np.linalg.inv(jac.T @ jac))
    assert ratio[0] > 1.5 and np.all(ratio[1:] < ratio[0]) and np.all(ratio >= 1.0)


def test_marginalise_with_a_sandwich_meat():
    """Σ = H⁻¹ (M + P) H⁻¹: with M = AᵀA it is H⁻¹; a doubled meat doubles its data part."""
    rng = np.random.default_rng(1)
    jac, jac_a, r = _problem(rng)
    A = np.hstack([jac, jac_a])
    plain = marginalise(jac, jac_a, r, 0.1)[2]
    same = marginalise(jac, jac_a, r, 0.1, meat=A.T @ A)[2]
    np.testing.assert_allclose(same, plain, rtol=1e-9)
    wide = marginalise(jac, jac_a, r, 0.1, meat=2 * A.T @ A)[2]
    assert np.all(np.diag(wide) > np.diag(plain) * 1.2)


def test_marginal_intervals_hold_the_truth_on_a_linear_model_error():
    """y = Xθ + G a + noise, a ~ N(0, rms²/J): 90 % intervals of θ from the marginal
    covariance hold θ in 90 % of 400 replicates (binomial se 0.015: ±0.045 is 3 se); the
    conditional ones (a ignored) hold it far less often (the test can fail)."""
    rng = np.random.default_rng(2)
    n, p, J, rms = 150, 3, 10, 1.0
    X = rng.normal(size=(n, p))
    G = rng.normal(size=(n, J)) + X @ rng.normal(size=(p, J))  # the error leaks into θ
    theta = np.array([0.5, -1.0, 2.0])
    inside_m = inside_c = 0
    for _ in range(400):
        a = rng.normal(0.0, rms / np.sqrt(J), J)
        y = X @ theta + G @ a + rng.normal(size=n)
        est = np.linalg.lstsq(X, y, rcond=None)[0]  # the fit at a = 0
        r = y - X @ est  # residuals; ∂r/∂θ = -X, ∂r/∂a = -G
        step, _, cov = marginalise(-X, -G, r, rms / np.sqrt(J))
        z_m = (est + step - theta) / np.sqrt(np.diag(cov))
        z_c = (est - theta) / np.sqrt(np.diag(np.linalg.inv(X.T @ X)))
        inside_m += np.sum(np.abs(z_m) <= Z90)
        inside_c += np.sum(np.abs(z_c) <= Z90)
    cover_m, cover_c = inside_m / 1200, inside_c / 1200
    assert abs(cover_m - 0.90) < 0.045, cover_m
    assert cover_c < 0.80, cover_c


def test_config_validation():
    with pytest.raises(FitConfigError, match="model_error.order"):
        load_fit_config({"model_error": {"order": 0}})
    with pytest.raises(FitConfigError, match="model_error.rms"):
        load_fit_config({"model_error": {"rms": -0.1}})
    cfg = load_fit_config(None)["model_error"]
    assert cfg["aperture"] is True and n_terms(cfg["order"]) == 44


def test_prior_gives_every_mode_the_same_share_of_the_error():
    """sd_b ρ_b = rms/√J for every mode (ρ_b its rms over the disc, here measured on a
    fine polar grid), so the expected mean square of Σ a_b U_b over the disc is rms²."""
    from bayesoof.physics import zernike

    sd = prior_sd(4, 0.05)
    r, t = np.meshgrid(np.linspace(0, 1, 801)[1:], np.linspace(0, 2 * np.pi, 721)[:-1])
    w = r / r.sum()  # area weights on the polar grid
    rho = [np.sqrt(np.sum(w * zernike.zernike(n, l, r, t) ** 2))
           for n, l in zernike.nl_list(4)[1:]]
    # (the polar grid integrates these polynomials to ~1e-3: the tolerance)
    np.testing.assert_allclose(sd * np.array(rho), 0.05 / np.sqrt(14), rtol=3e-3)


@pytest.fixture(scope="module")
def small_fit():
    from bayesoof.inference.fit import fit
    from bayesoof.simulate import random_coefficients, simulate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = simulate("effelsberg", random_coefficients(2, 0.05, seed=5), n_grid=15,
                        extent=6.0, snr=300.0, seed=5)
        on = fit(data, "effelsberg", order=2)
        off = fit(data, "effelsberg", order=2, config={"model_error": {"aperture": False}})
    return data, on, off


def test_fit_reports_the_marginalised_estimate(small_fit):
    _, on, off = small_fit
    ex = on.exact_model_last
    assert ex is not None and on.model_error is not None
    assert on.space.has(APERTURE_ERROR) and not on.space.free_of(APERTURE_ERROR).any()
    # switched off: no block, no record, and the best fit is the same one
    assert off.exact_model_last is None and off.model_error is None
    assert not off.space.has(APERTURE_ERROR)
    k = [i for i, name in enumerate(ex.space.free_names) if name.startswith("K(")]
    # (the same solve but for the objective's extra, fixed input: the same optimum to a
    # small fraction of an sd -- the solver's tolerance, not the error model)
    np.testing.assert_allclose(ex.space.values[ex.space.free_index][k],
                               off.last.space.values[off.last.space.free_index][k],
                               rtol=0, atol=0.05 * off.last.sd[k].min())
    ratio = on.last.sd[k] / ex.sd[k]
    assert np.all(ratio >= 1.0) and np.all(ratio < 2.0)
    assert on.model_error["K_sd_ratio_range"] == pytest.approx([ratio.min(), ratio.max()],
                                                               rel=0.02)
    # the reported solution is the joint one, evaluated exactly: its model beam gives its
    # residuals, the error estimate is in params, and the data fit no worse than the best
    # fit without it (the error only adds freedom; its prior costs nothing in χ²)
    a_hat = on.params[APERTURE_ERROR]
    assert np.any(a_hat != 0) and not np.any(ex.space.params_dict()[APERTURE_ERROR])
    np.testing.assert_allclose(on.residuals, (on.forward.observed - on.model_beam) / on.sigma,
                               rtol=1e-9, atol=1e-9)
    assert on.chi2 <= ex.chi2
    s = on.summary()
    assert s["uncertainty"]["model_error"]["terms"] == 44
    assert s["coefficients"][1]["sd"] == pytest.approx(on.last.full_sd()[1])


def test_objective_jacobian_along_the_error_matches_finite_differences(small_fit):
    """∂r/∂a that the fit takes from its objective (the block's fixed directions) against
    central differences of the same objective's residuals (step 1e-5: truncation ~1e-10
    of a column whose entries are ~1-100, rounding ~1e-11/1e-5; 1e-6 relative)."""
    from bayesoof.inference.fit import _objective

    data, on, _ = small_fit
    ex = on.exact_model_last
    obj = _objective(on.forward, ex.space, "likelihood")
    obs, sig = on.forward.observed, np.asarray(on.sigma, float)
    sl = ex.space.slice_of(APERTURE_ERROR)
    idx = np.arange(ex.space.n_full)[sl][[0, 5, 30]]
    _, jac = obj.jacobian(ex.space.values, idx, obs, sig)
    h = 1e-5
    for col, i in enumerate(idx):
        up, down = ex.space.values.copy(), ex.space.values.copy()
        up[i] += h
        down[i] -= h
        fd = (obj.residuals(up, obs, sig) - obj.residuals(down, obs, sig)) / (2 * h)
        np.testing.assert_allclose(jac[:, col], fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())
        assert np.abs(fd).max() > 1.0  # the error moves the residuals: the check can fail


def test_held_error_is_a_part_of_its_own_and_its_columns_are_reused(small_fit):
    """The objective keeps the error in its held input part (a Jacobian without its columns
    computes none of its tangents); a Jacobian asked in a mixed order gives the same
    columns as the parts asked alone (to 1e-12 relative: the same arithmetic, batched
    differently); and the two Jacobians the model-error step takes from elsewhere are the
    objective's: the best fit's own ∂r/∂θ at its solution (the step's start) and the
    record's ∂r/∂a (reused by the misfit covariances)."""
    from bayesoof.inference.fit import _objective

    _, on, _ = small_fit
    ex = on.exact_model_last
    obj = _objective(on.forward, ex.space, "likelihood")
    obs, sig = on.forward.observed, np.asarray(on.sigma, float)
    a_idx = np.arange(ex.space.n_full)[ex.space.slice_of(APERTURE_ERROR)]
    np.testing.assert_array_equal(obj.indices[2], a_idx)
    assert not np.intersect1d(obj.indices[0], a_idx).size

    free = ex.space.free_index
    mixed = np.r_[a_idx[:3], free[:4], a_idx[3:6], free[4:]]
    _, jm = obj.jacobian(ex.space.values, mixed, obs, sig)
    _, jt = obj.jacobian(ex.space.values, free, obs, sig)
    _, ja = obj.jacobian(ex.space.values, a_idx[:6], obs, sig)
    scale = np.abs(jm).max()
    np.testing.assert_allclose(jm[:, np.r_[3:7, 10:mixed.size]], jt, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(jm[:, np.r_[0:3, 7:10]], ja, rtol=0, atol=1e-12 * scale)

    np.testing.assert_allclose(ex.jacobian, jt, rtol=0, atol=1e-12 * np.abs(jt).max())
    _, j_last = obj.jacobian(on.last.space.values, a_idx, obs, sig)
    np.testing.assert_allclose(on.last.jacobian_error, j_last, rtol=0,
                               atol=1e-12 * np.abs(j_last).max())


def test_posterior_draws_take_the_shift_and_the_covariance():
    """misfit_adjust moves the K draws by the fit's joint step and carries them onto the
    marginal covariance when only the model error (no misfit) is on (the model samples
    the best fit's model, a = 0)."""
    rng = np.random.default_rng(3)
    J = 4
    cov = np.diag([1.0, 2.0, 3.0, 4.0]) * 1e-4
    free = np.array([False, True, True, True])
    marg = types.SimpleNamespace(values=np.array([0.0, 0.011, -0.02, 0.03]), free=free,
                                 nl=[None] * J)
    exact = types.SimpleNamespace(space=types.SimpleNamespace(
        values=np.array([0.0, 0.010, -0.02, 0.028])))
    fit = types.SimpleNamespace(
        last=types.SimpleNamespace(space=marg, K_cov=lambda: cov), plain_last=None,
        exact_model_last=exact, uncertainty={"model": "normal", "switched_on": False},
        misfit_model=None, model_error={"model": "aperture", "rms": 0.05})
    free_j = np.array([1, 2, 3])
    K = rng.normal(size=(2, 500, 3)) * 0.003 + np.array([0.010, -0.02, 0.028])
    out, rec = misfit_adjust.adjust_posterior_K(K, [0, 1], fit, free_j)
    flat, before = out.reshape(-1, 3), K.reshape(-1, 3)
    np.testing.assert_allclose(flat.mean(0) - before.mean(0), [0.001, 0.0, 0.002],
                               atol=1e-12)
    np.testing.assert_allclose(np.cov(flat, rowvar=False), cov[1:, 1:], rtol=1e-9,
                               atol=1e-14)
    assert rec["target"] == "model error" and rec["shift_max_sd"] == pytest.approx(0.1)
    assert "aperture model error" in misfit_adjust.sentence(rec, fit)
