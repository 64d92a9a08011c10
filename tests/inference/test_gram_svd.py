"""The trust-region step's SVD from the Gram matrix (bayesoof/inference/gram_svd.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.linalg
from scipy.optimize import least_squares

from bayesoof.inference import gram_svd as G


def _tall(m, n, smallest, seed=0):
    """An (m, n) matrix with singular values from 1 down to ``smallest`` (log-spaced)."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(m, n)))
    v, _ = np.linalg.qr(rng.normal(size=(n, n)))
    s = np.geomspace(1.0, smallest, n)
    return (u * s) @ v.T, s


def test_same_decomposition_as_scipy_for_a_tall_matrix():
    a, s_true = _tall(4000, 41, 1e-5)
    u, s, vt = G.gram_svd(a, full_matrices=False)
    assert u.shape == (4000, 41) and s.shape == (41,) and vt.shape == (41, 41)
    # singular values: relative error ~1e-16 (s_max/s)^2 <= 1e-6 at the smallest (1e-5);
    # 1e-5 leaves a factor 10 for the rounding of the product and of eigh
    np.testing.assert_allclose(s, s_true, rtol=1e-5)
    np.testing.assert_allclose(s[:10], s_true[:10], rtol=1e-12)  # the well-conditioned part
    np.testing.assert_allclose(vt @ vt.T, np.eye(41), atol=1e-12)  # eigh: orthonormal V
    # the reconstruction, and the least-squares solution the trust region builds from it
    np.testing.assert_allclose((u * s) @ vt, a, atol=1e-12)
    f = np.random.default_rng(1).normal(size=4000)
    x_gram = vt.T @ ((u.T @ f) / s)
    x_ref = np.linalg.lstsq(a, f, rcond=None)[0]
    # normal-equations accuracy: ~1e-16 (s_max/s_min)^2 = 1e-6 relative, 1e-5 with margin
    assert np.linalg.norm(x_gram - x_ref) <= 1e-5 * np.linalg.norm(x_ref)



def test_projecting_u_gives_the_projection_the_trust_region_takes():
    """The unformed U (what scipy's trf gets): Uᵀf and Uᵀ of a matrix as the formed U's,
    to rounding: column i of U = A v_i / s_i carries ~eps s_max / s_i of rounding either
    way, so entry i of Uᵀx may differ by that times |x| (asserted with 45 eps; measured
    ~3e-12 at s_max / s_i ~ 2e4; a transposition or a wrong scale is O(1) off); np.asarray
    forms it; where the Gram route is not taken U stays scipy's array."""
    a, _ = _tall(4000, 41, 1e-5)
    u, s, vt = G.gram_svd(a)
    lazy, s2, vt2 = G.gram_svd(a, projecting_u=True)
    assert isinstance(lazy, G.ProjectingU) and lazy.shape == u.shape and lazy.T.shape == (41, 4000)
    np.testing.assert_array_equal(s2, s)
    np.testing.assert_array_equal(vt2, vt)
    rng = np.random.default_rng(4)
    f, m = rng.normal(size=4000), rng.normal(size=(4000, 3))
    for x in (f, m):
        tol = 1e-14 * (s[0] / s).reshape((-1,) + (1,) * (x.ndim - 1)) * np.linalg.norm(x, axis=0)
        assert np.all(np.abs(lazy.T.dot(x) - u.T @ x) <= tol)
    np.testing.assert_array_equal(np.asarray(lazy), u)  # formed by the same product
    ill, _ = _tall(2000, 20, 1e-8)
    assert isinstance(G.gram_svd(ill, projecting_u=True)[0], np.ndarray)

def test_ill_conditioned_and_wide_matrices_take_scipys_svd():
    a, _ = _tall(2000, 20, 1e-8)  # s_min / s_max = 1e-8 < MIN_RATIO
    for got, ref in zip(G.gram_svd(a), scipy.linalg.svd(a, full_matrices=False), strict=True):
        np.testing.assert_array_equal(got, ref)
    b = np.random.default_rng(2).normal(size=(60, 20))  # 3 rows per column: not tall
    for got, ref in zip(G.gram_svd(b), scipy.linalg.svd(b, full_matrices=False), strict=True):
        np.testing.assert_array_equal(got, ref)


def _problem():
    """Bounded nonlinear least squares: a sum of decaying exponentials, one bound active."""
    t = np.linspace(0.0, 4.0, 3000)
    rng = np.random.default_rng(3)
    y = 2.0 * np.exp(-1.3 * t) + 0.5 * np.exp(-0.2 * t) + 0.01 * rng.normal(size=t.size)

    def fun(p):
        return p[0] * np.exp(-p[1] * t) + p[2] * np.exp(-p[3] * t) - y

    def jac(p):
        e1, e3 = np.exp(-p[1] * t), np.exp(-p[3] * t)
        return np.column_stack([e1, -p[0] * t * e1, e3, -p[2] * t * e3])

    # p[1] the fast rate, p[3] the slow one (no swapping), which ends at its lower bound
    lo, hi = [0.0, 0.6, 0.0, 0.25], [5.0, 5.0, 5.0, 0.5]
    return fun, jac, (lo, hi)


@pytest.mark.skipif(not G.AVAILABLE, reason="this scipy's trf module has no svd to route")
def test_least_squares_gives_the_same_solution_through_the_gram_route(monkeypatch):
    fun, jac, bounds = _problem()
    kw = dict(jac=jac, bounds=bounds, method="trf", x_scale="jac", xtol=1e-12, ftol=1e-12)
    ref = least_squares(fun, [1.0, 1.0, 1.0, 0.3], **kw)
    calls = []
    original = G.gram_svd
    monkeypatch.setattr(G, "gram_svd", lambda *a, **k: calls.append(1) or original(*a, **k))
    with G.trf_gram_svd():
        got = least_squares(fun, [1.0, 1.0, 1.0, 0.3], **kw)
    assert len(calls) == got.njev - 1  # every step went the Gram route (none after the last J)
    assert got.active_mask[3] == -1 and ref.active_mask[3] == -1
    # the same solution up to the rounding of the route and the stopping point (xtol 1e-12
    # stops where rounding decides the last steps): relative 1e-8 on this well-posed problem
    np.testing.assert_allclose(got.x, ref.x, rtol=1e-8)


@pytest.mark.skipif(not G.AVAILABLE, reason="this scipy's trf module has no svd to route")
def test_the_route_holds_only_inside_the_block_and_in_its_thread(monkeypatch):
    fun, jac, bounds = _problem()
    calls = []
    original = G.gram_svd
    monkeypatch.setattr(G, "gram_svd", lambda *a, **k: calls.append(1) or original(*a, **k))
    with G.trf_gram_svd():
        pass
    least_squares(fun, [1.0, 1.0, 1.0, 0.3], jac=jac, bounds=bounds)  # outside: scipy's own
    assert calls == []
    inside, other_done = threading.Event(), threading.Event()

    def other():  # runs while the main thread is inside the block
        inside.wait()
        least_squares(fun, [1.0, 1.0, 1.0, 0.3], jac=jac, bounds=bounds)
        other_done.set()

    worker = threading.Thread(target=other)
    worker.start()
    with G.trf_gram_svd():
        inside.set()
        other_done.wait(60)
        assert calls == []  # the other thread's solve did not take the route
        least_squares(fun, [1.0, 1.0, 1.0, 0.3], jac=jac, bounds=bounds)
    worker.join()
    assert calls  # this thread's did
