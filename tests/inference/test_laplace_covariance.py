"""The quick fit's Laplace covariance ``(JᵀJ)⁻¹`` against independent NumPy references."""

import warnings

import numpy as np
import pytest

from bayesoof.inference.fit import FitWarning, laplace_covariance


def _tall_jacobian(rng, n=5000, p=12):
    """A tall Jacobian whose columns span six decades of scale, as θ's units do."""
    return rng.normal(size=(n, p)) * np.logspace(-3, 3, p)


def test_equals_the_inverse_of_the_normal_matrix():
    # Reference: solve(JᵀJ, I) on the column-scaled matrix (condition ~1 after scaling, so
    # the normal equations lose nothing); 1e-10 relative is ~1e6 float64 roundings of an
    # O(1)-conditioned 12 × 12 solve, far below any change the code could make by mistake.
    rng = np.random.default_rng(3)
    jac = _tall_jacobian(rng)
    cov, rcond = laplace_covariance(jac)
    d = np.linalg.norm(jac, axis=0)
    ref = np.linalg.inv((jac / d).T @ (jac / d)) / np.outer(d, d)
    np.testing.assert_allclose(cov, ref, rtol=1e-10, atol=0)
    s = np.linalg.svd(jac / d, compute_uv=False)
    assert rcond == pytest.approx(s[-1] / s[0], rel=1e-12)


def test_degenerate_direction_tall_and_square():
    # A Jacobian with two identical columns (as x0 and a K tilt can be): warned, named, and
    # the pseudo-inverse returned; the same on a square matrix, which takes the SVD directly.
    rng = np.random.default_rng(4)
    for n in (400, 10):
        jac = rng.normal(size=(n, 10))
        jac[:, 7] = jac[:, 2]
        names = [f"p{i}" for i in range(10)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cov, rcond = laplace_covariance(jac, names)
        assert rcond < 1e-10
        msg = " ".join(str(w.message) for w in caught if issubclass(w.category, FitWarning))
        assert "p2" in msg and "p7" in msg
        d = np.linalg.norm(jac, axis=0)
        ref = np.linalg.pinv((jac / d).T @ (jac / d), rcond=1e-10, hermitian=True)
        np.testing.assert_allclose(cov * np.outer(d, d), ref, atol=1e-8 * np.abs(ref).max())
