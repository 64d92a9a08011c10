"""The linearised marginalisation of held parameters (bayesoof/inference/held_marginal.py).

On a Gaussian it is exact: draws of θ from its conditional given h = ĥ, carried over h,
have θ's marginal mean and covariance, and h its marginal.  Checked on 200 000 draws of a
random 20-parameter Gaussian laid out as a real ParameterSpace (K, illumination, amp,
offset, a partly free pointing block), with q held.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bayesoof.inference.held_marginal import marginalise_held, sentence
from bayesoof.inference.params import ParameterSpace

N_DRAWS = 200_000  # 4 chains × 50 000


def _case(seed: int = 3):
    """A fit record (joint Gaussian of the free entries) and the model's space (q fixed)."""
    fit_space = ParameterSpace.standard(2, "parabolic", 3, with_pointing=True)
    fit_space.values[:] = np.linspace(-0.3, 0.3, fit_space.n_full)
    fit_space.set("q", value=1.6, lower=1.0, upper=2.0)
    fit_space.free[:] = True
    fit_space.free[fit_space.slice_of("K")][0] = False            # piston
    fit_space.free[fit_space.slice_of("pointing")][:2] = False    # in-focus row (tilts)
    n = int(fit_space.free.sum())
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    w = rng.standard_normal(n)  # a shared direction: q correlated with every entry
    cov = (a @ a.T / n + np.eye(n) + 4.0 * np.outer(w, w)) * 1e-4  # sd ~ 0.01-0.05
    rec = SimpleNamespace(space=fit_space, cov=cov)

    def full_cov():
        out = np.zeros((fit_space.n_full, fit_space.n_full))
        idx = fit_space.free_index
        out[np.ix_(idx, idx)] = cov
        return out

    rec.full_cov = full_cov
    space = fit_space.copy()
    space.set("q", free=False)
    return rec, space


def _conditional_draws(rec, space, seed: int = 4):
    """Exact draws of the model's free entries given q = q̂, as the posterior dict."""
    full = rec.full_cov()
    t = space.free_index
    h = [space.slice_of("q").start]
    s_tt, s_th, s_hh = full[np.ix_(t, t)], full[np.ix_(t, h)], full[np.ix_(h, h)]
    cond = s_tt - s_th @ np.linalg.solve(s_hh, s_th.T)
    rng = np.random.default_rng(seed)
    x = space.values[t] + rng.standard_normal((N_DRAWS, t.size)) @ np.linalg.cholesky(cond).T
    x = x.reshape(4, N_DRAWS // 4, t.size)
    post, col = {}, 0
    for b in space.blocks:
        k = int(space.free_of(b.name).sum())
        if k:
            shape = (4, N_DRAWS // 4) + ((k,) if b.name != "pointing" else (k // 2, 2))
            post[b.name] = x[..., col:col + k].reshape(shape if b.shape else (4, -1))
            col += k
    return post, t


def test_conditional_draws_carried_over_a_held_q_have_the_marginal_covariance():
    """Mean and covariance of the moved draws = the joint Gaussian's marginal ones.

    Tolerances: a variance estimated from N draws has relative sd sqrt(2/N) = 0.0032,
    a correlation's sd ≤ 1/sqrt(N) = 0.0022: 2 % on every variance (6 sd; the marginal
    variances are 1.03-1.75 × the conditional ones, median 1.3, so a wrong B or a missing
    shift fails) and 0.015 absolute on every correlation (~7 sd).
    """
    rec, space = _case()
    post, t = _conditional_draws(rec, space)
    moved, record = marginalise_held(post, space, {"q": "held"}, rec, seed=11)
    full = rec.full_cov()
    q_i = space.slice_of("q").start
    order = list(t) + [q_i]
    x = np.concatenate([moved[b.name].reshape(N_DRAWS, -1) for b in space.blocks
                        if b.name in post] + [moved["q"].reshape(N_DRAWS, 1)], axis=1)
    target = full[np.ix_(order, order)]
    got = np.cov(x, rowvar=False)
    before = np.concatenate([post[b.name].reshape(N_DRAWS, -1) for b in space.blocks
                             if b.name in post], axis=1).var(axis=0)
    lift = np.diag(target)[:-1] / before
    assert np.median(lift) > 1.2, "a case where conditioning on q narrows the draws"
    np.testing.assert_allclose(np.diag(got), np.diag(target), rtol=0.02)
    sd = np.sqrt(np.diag(target))
    np.testing.assert_allclose(got / np.outer(sd, sd), target / np.outer(sd, sd), atol=0.015)
    np.testing.assert_allclose(x.mean(axis=0), space.values[order], atol=5 * sd.max()
                               / np.sqrt(N_DRAWS))
    assert moved["q"].shape == (4, N_DRAWS // 4)
    assert moved["pointing"].shape == post["pointing"].shape
    assert record["held_sd"]["q"] == pytest.approx([np.sqrt(full[q_i, q_i])])
    assert set(record["sd_added"]) == {"K", "c_dB", "x0", "y0", "amp", "offset", "pointing"}
    assert "q (sd" in sentence(record)
    # the input is left as it was
    assert post["c_dB"] is not moved["c_dB"]


def test_draws_beyond_a_bound_are_clipped_and_counted():
    """q at 1.99 with sd ≥ 0.01 against the bound 2: the draws beyond it are put on it."""
    rec, space = _case()
    for sp in (rec.space, space):
        sp.set("q", value=1.99)
    post, _ = _conditional_draws(rec, space)
    moved, record = marginalise_held(post, space, {"q": "held"}, rec, seed=1)
    assert moved["q"].max() <= 2.0
    assert record["clipped"]["q"] == int(np.count_nonzero(moved["q"] == 2.0)) > 0


def test_nothing_to_do_without_a_held_parameter_the_fit_freed():
    rec, space = _case()
    post, _ = _conditional_draws(rec, space)
    assert marginalise_held(post, space, {}, rec) is None
    rec.space.set("q", free=False)  # the fit fixed q too: nothing to marginalise
    assert marginalise_held(post, space, {"q": "held"}, rec) is None
    assert marginalise_held(post, space, {"q": "held"}, None) is None
