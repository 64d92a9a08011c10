"""Misfit likelihoods (likelihood.py): exact identities, hyper-parameters, one definition."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

from bayesoof.inference.likelihood import Discrepancy, NoisePerMap, StudentT


def _two_maps(n=900, seed=0):
    """Two 30 × 30 lattices (beam widths 0.1 apart: 3 samples per λ/D) and a beam signal."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(n))
    ax = (np.arange(side) - (side - 1) / 2) * 0.1
    uu, vv = (a.ravel() for a in np.meshgrid(ax, ax))
    signal = 300.0 * np.exp(-(uu**2 + vv**2) / (2 * 0.6**2))
    slices = [slice(0, uu.size), slice(uu.size, 2 * uu.size)]
    return slices, [(uu, vv), (uu, vv)], np.concatenate([signal, 0.5 * signal]), rng


def _dense_cov(disc, i):
    phi = disc.basis[i]
    return disc.s[i] ** 2 * np.eye(phi.shape[0]) + disc.tau[i] ** 2 * phi @ phi.T


def test_discrepancy_whitening_is_exact():
    slices, pos, signal, rng = _two_maps()
    disc = Discrepancy(slices, pos, signal, beam_width=1.0, correlation=0.5, envelope_power=0.5)
    disc.s, disc.tau = np.array([1.1, 0.9]), np.array([0.02, 0.05])
    disc._setup()
    r = rng.standard_normal(signal.size)
    jac = rng.standard_normal((signal.size, 4))
    w, mj = disc.whiten(r), disc.whiten_jacobian(r, jac)
    quad = sum(r[sl] @ np.linalg.solve(_dense_cov(disc, i), r[sl]) for i, sl in enumerate(slices))
    info = sum(jac[sl].T @ np.linalg.solve(_dense_cov(disc, i), jac[sl])
               for i, sl in enumerate(slices))
    # identities of the Woodbury profile: equal to rounding (relative 1e-9)
    assert np.sum(w * w) == pytest.approx(quad, rel=1e-9)
    np.testing.assert_allclose(mj.T @ mj, info, rtol=1e-8, atol=1e-10 * np.abs(info).max())
    middle = sum(jac[sl].T @ _dense_cov(disc, i) @ jac[sl] for i, sl in enumerate(slices))
    np.testing.assert_allclose(disc.residual_covariance_jacobian(jac), middle, rtol=1e-9)
    # the PyTensor log-likelihood of the PyMC model is the same function (-½ Σ w²)
    x = pt.vector("r")
    f = pytensor.function([x], disc.logp_tensor(x))
    assert float(f(r)) == pytest.approx(-0.5 * quad, rel=1e-9)


def test_discrepancy_learns_its_hyper_parameters():
    slices, pos, signal, rng = _two_maps()
    disc = Discrepancy(slices, pos, signal, beam_width=1.0, correlation=0.5, envelope_power=0.5)
    true_s, true_tau = np.array([1.0, 1.3]), np.array([0.03, 0.01])
    r = np.concatenate([
        true_s[i] * rng.standard_normal(sl.stop - sl.start)
        + true_tau[i] * disc.basis[i] @ rng.standard_normal(disc.basis[i].shape[1])
        for i, sl in enumerate(slices)
    ])
    disc.fit_hyper(r)
    # 900 samples per map: s to ~2.4 % (1 sd); τ from ~30 basis coefficients with most of
    # the signal, ~15-20 %: tolerances at ~3 sd
    np.testing.assert_allclose(disc.s, true_s, rtol=0.08)
    np.testing.assert_allclose(disc.tau, true_tau, rtol=0.5)
    # white residuals: the discrepancy found is negligible (its contribution to the
    # variance at the signal peak below 10 % of the noise)
    disc.fit_hyper(rng.standard_normal(signal.size))
    peak_var = np.array([np.max(np.sum(b * b, axis=1)) for b in disc.basis])
    assert np.all(disc.tau**2 * peak_var < 0.1 * disc.s**2)


def test_student_t_whitening_and_laplace():
    slices = [slice(0, 500), slice(500, 1000)]
    rng = np.random.default_rng(3)
    true_s = np.array([1.5, 0.7])
    r = np.concatenate([true_s[i] * rng.standard_t(4, 500) for i in range(2)])
    st = StudentT(slices, nu=4.0)
    st.fit_hyper(r)
    np.testing.assert_allclose(st.s, true_s, rtol=0.15)  # 500 t_4 samples: scale to ~5 %
    w = st.whiten(r)
    logpdf = sum(stats.t.logpdf(r[sl], 4, scale=st.s[i]).sum() for i, sl in enumerate(slices))
    const = sum((sl.stop - sl.start) * stats.t.logpdf(0.0, 4, scale=st.s[i])
                for i, sl in enumerate(slices))
    assert -0.5 * np.sum(w * w) == pytest.approx(logpdf - const, rel=1e-10)
    # analytic Jacobian of the whitening against central differences
    jac = rng.standard_normal((1000, 3))
    d = 1e-6
    for k in range(3):
        fd = (st.whiten(r + d * jac[:, k]) - st.whiten(r - d * jac[:, k])) / (2 * d)
        np.testing.assert_allclose(st.whiten_jacobian(r, jac)[:, k], fd, rtol=1e-5, atol=1e-7)
    # expected Fisher information of the t scale family: (ν+1)/((ν+3) s²) per sample
    lj = st.laplace_jacobian(r, np.ones((1000, 1)))
    assert float(lj[:500, 0] @ lj[:500, 0]) == pytest.approx(500 * 5 / 7 / st.s[0] ** 2)
    x = pt.vector("r")
    assert float(pytensor.function([x], st.logp_tensor(x))(r)) == pytest.approx(
        -0.5 * np.sum(w * w), rel=1e-10)


def test_noise_per_map():
    slices = [slice(0, 400), slice(400, 1000)]
    r = np.concatenate([np.full(400, 2.0), np.full(600, -0.5)])
    m = NoisePerMap(slices)
    m.fit_hyper(r)
    np.testing.assert_allclose(m.s, [2.0, 0.5])
    np.testing.assert_allclose(m.whiten(r), np.concatenate([np.ones(400), -np.ones(600)]))
    x = pt.vector("r")
    assert float(pytensor.function([x], m.logp_tensor(x))(r)) == pytest.approx(-500.0)


def test_hac_score_covariance_matches_its_definition():
    from bayesoof.inference.likelihood import hac_score_covariance

    slices, pos, _, rng = _two_maps(n=400)
    n = 800
    jac, r = rng.standard_normal((n, 3)), rng.standard_normal(n)
    L = 0.25  # 2.5 lattice steps
    got = hac_score_covariance(jac, r, slices, pos, L)
    want = np.zeros((3, 3))
    for sl, (u, v) in zip(slices, pos, strict=True):
        g = jac[sl] * r[sl, None]
        du = np.abs(u[:, None] - u[None, :]) / L
        dv = np.abs(v[:, None] - v[None, :]) / L
        w = np.clip(1 - du, 0, None) * np.clip(1 - dv, 0, None)
        want += g.T @ w @ g
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert np.all(np.linalg.eigvalsh(got) > 0)


def _hac_definition(jac, r, slices, pos, L):
    """The HAC meat by its definition: dense Bartlett weights over all pairs of a map."""
    want = np.zeros((jac.shape[1], jac.shape[1]))
    for sl, (u, v) in zip(slices, pos, strict=True):
        g = jac[sl] * r[sl, None]
        du = np.abs(u[:, None] - u[None, :]) / L
        dv = np.abs(v[:, None] - v[None, :]) / L
        want += g.T @ (np.clip(1 - du, 0, None) * np.clip(1 - dv, 0, None)) @ g
    return want


def test_hac_separable_and_pair_paths_match_the_definition():
    from bayesoof.inference import likelihood
    from bayesoof.inference.likelihood import hac_score_covariance

    rng = np.random.default_rng(3)
    # a lattice with holes and a repeated position (table path), and scattered samples
    ax = np.arange(25) * 0.1
    u, v = (a.ravel() for a in np.meshgrid(ax, ax))
    keep = rng.random(u.size) > 0.2
    lu, lv = np.append(u[keep], u[keep][0]), np.append(v[keep], v[keep][0])
    su, sv = rng.uniform(0, 2.4, 500), rng.uniform(0, 2.4, 500)
    slices = [slice(0, lu.size), slice(lu.size, lu.size + su.size)]
    pos = [(lu, lv), (su, sv)]
    n = lu.size + su.size
    jac, r = rng.standard_normal((n, 4)), rng.standard_normal(n)
    L = 0.35
    assert likelihood._bartlett_separable(jac[slices[0]], lu, lv, L) is not None
    assert likelihood._bartlett_separable(jac[slices[1]], su, sv, L) is None
    want = _hac_definition(jac, r, slices, pos, L)
    # both are the same sums of the same products in another order: rounding only
    np.testing.assert_allclose(hac_score_covariance(jac, r, slices, pos, L), want, rtol=1e-10)
    # the pair path on the lattice map gives the same too
    g = jac[slices[0]] * r[slices[0], None]
    np.testing.assert_allclose(likelihood._hac_pairs(g, lu, lv, L),
                               _hac_definition(jac[slices[0]], r[slices[0]], [slice(None)],
                                               [(lu, lv)], L), rtol=1e-10)


def test_hac_is_neutral_on_white_and_inflates_on_correlated_residuals():
    from bayesoof.inference.likelihood import hac_score_covariance

    rng = np.random.default_rng(8)
    side = 60
    ax = np.arange(side, dtype=float)
    u, v = (a.ravel() for a in np.meshgrid(ax, ax))
    n = u.size
    jac = np.column_stack([np.ones(n), np.sin(u / 9.0), np.cos(v / 7.0)])
    info = jac.T @ jac
    white = hac_score_covariance(jac, rng.standard_normal(n), [slice(0, n)], [(u, v)], 3.0)
    # white residuals: the meat equals Jᵀ J up to sampling noise (each entry a sum of ~n·25
    # products; relative sd ≈ sqrt(25·... )/n ≈ 10 % for the diagonal, tolerance 35 %)
    np.testing.assert_allclose(np.diag(white), np.diag(info), rtol=0.35)
    # residuals correlated over ~3 samples (a moving average of white noise, unit variance):
    # the variance of Jᵀr grows by about the correlation area (≈ 9 here), so the HAC meat
    # must be several times Jᵀ J along the smooth columns
    k = np.ones(3) / 3.0
    field = rng.standard_normal((side + 2, side + 2))
    smooth = np.apply_along_axis(lambda x: np.convolve(x, k, "valid"), 0, field)
    smooth = np.apply_along_axis(lambda x: np.convolve(x, k, "valid"), 1, smooth) * 3.0
    corr = hac_score_covariance(jac, smooth.ravel(), [slice(0, n)], [(u, v)], 5.0)
    assert corr[0, 0] > 3 * info[0, 0]
