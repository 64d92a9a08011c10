"""Tests for bayesoof.physics.zernike against independent references.

References: mpmath, closed forms, quadrature.
"""

# ruff: noqa: E741  -- ``l`` is the azimuthal index of PHYSICS.md and of the API
import math

import mpmath
import numpy as np
import pytest

from bayesoof.physics import zernike as z

RNG = np.random.default_rng(20240611)


# ------------------------------------------------------------------ independent references
def _radial_mp(n, m, rho):
    """Factorial sum from PHYSICS.md at 50 digits (reference only; unstable in float64)."""
    with mpmath.workdps(50):
        rho = mpmath.mpf(rho)
        return sum(
            (-1) ** s
            * mpmath.factorial(n - s)
            / (
                mpmath.factorial(s)
                * mpmath.factorial((n + m) // 2 - s)
                * mpmath.factorial((n - m) // 2 - s)
            )
            * rho ** (n - 2 * s)
            for s in range((n - m) // 2 + 1)
        )


def _disc_quadrature(order):
    """Gauss-Legendre in rho (weight rho dρ) x uniform theta: exact for products to 2*order."""
    n_rho = order + 2  # integrand rho*R_i*R_j has degree <= 2*order+1 <= 2*n_rho-1
    n_th = 2 * order + 2  # trapezoid on the circle is exact for trig degree < n_th
    x, w = np.polynomial.legendre.leggauss(n_rho)
    rho, w_rho = (x + 1) / 2, w / 2 * (x + 1) / 2
    theta = 2 * np.pi * np.arange(n_th) / n_th
    R, T = np.meshgrid(rho, theta, indexing="ij")
    W = np.outer(w_rho, np.full(n_th, 2 * np.pi / n_th))
    return R, T, W


# ------------------------------------------------------------------ values
def test_values_against_mpmath_up_to_n20():
    rho = RNG.uniform(0, 1, 50)
    theta = RNG.uniform(0, 2 * np.pi, 50)
    basis = z.zernike_basis(20, rho, theta)
    for j, (n, l) in enumerate(z.nl_list(20)):
        m = abs(l)
        with mpmath.workdps(50):
            trig = mpmath.cos if l >= 0 else mpmath.sin
            ref = np.array(
                [
                    float(_radial_mp(n, m, r) * trig(m * mpmath.mpf(t)))
                    for r, t in zip(rho, theta, strict=True)
                ]
            )
        # max |R_n^m| on [0, 1] is 1 (= R(1)), so 1e-12 absolute is 1e-12 relative to max |R|;
        # float64 recurrence error grows ~ n * eps, far below this
        np.testing.assert_allclose(basis[:, j], ref, rtol=0, atol=1e-12, err_msg=f"{(n, l)}")
        np.testing.assert_allclose(z.zernike(n, l, rho, theta), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [30, 31])
def test_radial_order_30(n):
    rho = np.concatenate([RNG.uniform(0, 1, 20), [0.0, 1.0]])
    for m in range(n % 2, n + 1, 2):
        ref = np.array([float(_radial_mp(n, m, r)) for r in rho])
        # same bound: |R| <= 1, allow 1e-12 absolute (the factorial sum in float64 fails here)
        np.testing.assert_allclose(z.radial(n, m, rho), ref, rtol=0, atol=1e-12)


def test_closed_forms():
    rho = np.linspace(0, 1, 11)
    theta = np.linspace(0, 2 * np.pi, 11)
    # polynomials of low degree: agreement to a few ulp of O(1) values
    tol = dict(rtol=0, atol=1e-14)
    np.testing.assert_allclose(z.radial(2, 0, rho), 2 * rho**2 - 1, **tol)
    np.testing.assert_allclose(z.radial(4, 0, rho), 6 * rho**4 - 6 * rho**2 + 1, **tol)
    np.testing.assert_allclose(z.radial(4, 2, rho), 4 * rho**4 - 3 * rho**2, **tol)
    np.testing.assert_allclose(z.radial(5, 5, rho), rho**5, **tol)
    np.testing.assert_allclose(
        z.zernike(3, -1, rho, theta), (3 * rho**3 - 2 * rho) * np.sin(theta), **tol
    )
    np.testing.assert_allclose(z.zernike(2, 2, rho, theta), rho**2 * np.cos(2 * theta), **tol)
    np.testing.assert_allclose(z.zernike(0, 0, rho, theta), 1.0, **tol)
    assert np.all(z.radial(3, 0, rho) == 0)  # n - m odd


def test_basis_shape_broadcast():
    rho = RNG.uniform(0, 1, (4, 1))
    theta = RNG.uniform(0, 2 * np.pi, (1, 5))
    b = z.zernike_basis(5, rho, theta)
    assert b.shape == (4, 5, 21)
    # identical arithmetic path except the recurrence start: ulp-level agreement
    np.testing.assert_allclose(
        b[..., z.nl_to_j(3, -3)], z.zernike(3, -3, rho, theta), rtol=0, atol=1e-15
    )


# ------------------------------------------------------------------ orthogonality, rms
def test_orthogonality_and_mode_rms():
    order = 8
    R, T, W = _disc_quadrature(order)
    B = z.zernike_basis(order, R, T).reshape(-1, z.n_coeffs(order))
    gram = B.T @ (W.ravel()[:, None] * B)
    expected = np.diag([np.pi * z.mode_rms(n, l) ** 2 for n, l in z.nl_list(order)])
    # quadrature is exact for these polynomials; only summation rounding (~1e-15) remains
    np.testing.assert_allclose(gram, expected, rtol=0, atol=1e-12)
    rms = np.sqrt(np.diag(gram) / np.pi)  # mean of U^2 over the disc of area pi
    # exact quadrature again: rounding only
    np.testing.assert_allclose(rms, [z.mode_rms(n, l) for n, l in z.nl_list(order)], rtol=1e-12)
    assert z.mode_rms(0, 0) == 1.0


# ------------------------------------------------------------------ indices
def test_index_helpers():
    assert z.n_coeffs(5) == 21
    assert len(z.nl_list(5)) == 21
    assert z.nl_list(1) == [(0, 0), (1, -1), (1, 1)]
    assert z.coeff_names(1) == ["K(0,0)", "K(1,-1)", "K(1,1)"]
    assert z.nl_to_j(3, -3) == 6
    for j in range(z.n_coeffs(15)):
        assert z.nl_to_j(*z.j_to_nl(j)) == j
    for j, nl in enumerate(z.nl_list(15)):
        assert z.j_to_nl(j) == nl


@pytest.mark.parametrize("n,l", [(1, 0), (2, 3), (2, -4), (-1, 1), (3, 2)])
def test_invalid_indices(n, l):
    with pytest.raises(ValueError):
        z.nl_to_j(n, l)
    with pytest.raises(ValueError):
        z.nl_to_noll(n, l)


def test_invalid_lengths():
    with pytest.raises(ValueError):
        z.osa_to_noll(np.zeros(7))
    with pytest.raises(ValueError):
        z.j_to_nl(-1)
    with pytest.raises(ValueError):
        z.noll_to_nl(0)


# ------------------------------------------------------------------ Noll
NOLL = {
    (0, 0): 1,
    (1, 1): 2,
    (1, -1): 3,
    (2, 0): 4,
    (2, -2): 5,
    (2, 2): 6,
    (3, -1): 7,
    (3, 1): 8,
    (3, -3): 9,
    (3, 3): 10,
    (4, 0): 11,
    (4, 2): 12,
    (4, -2): 13,
    (4, 4): 14,
    (4, -4): 15,
}


def test_noll_indices():
    assert z.nl_to_j(3, -3) == 6 and z.nl_to_noll(3, -3) == 9
    for nl, j in NOLL.items():
        assert z.nl_to_noll(*nl) == j
        assert z.noll_to_nl(j) == nl
    for order in range(12):  # bijection of the complete order onto 1..J
        got = sorted(z.nl_to_noll(n, l) for n, l in z.nl_list(order))
        assert got == list(range(1, z.n_coeffs(order) + 1))
        for j in got:
            assert z.nl_to_noll(*z.noll_to_nl(j)) == j


def test_noll_round_trip_and_phase():
    order = 6
    K = RNG.normal(size=z.n_coeffs(order))
    c = z.osa_to_noll(K)
    # pure reordering and scaling: rounding only
    np.testing.assert_allclose(z.noll_to_osa(c), K, rtol=1e-14)
    rho, theta = RNG.uniform(0, 1, 200), RNG.uniform(0, 2 * np.pi, 200)
    phase_noll = np.zeros_like(rho)
    for i, ci in enumerate(c):  # Noll's own definition: even index cos, odd index sin
        j = i + 1
        n, l = z.noll_to_nl(j)
        m = abs(l)
        if m == 0:
            Z = math.sqrt(n + 1) * z.radial(n, 0, rho)
        else:
            trig = np.cos if j % 2 == 0 else np.sin
            Z = math.sqrt(2 * (n + 1)) * z.radial(n, m, rho) * trig(m * theta)
        phase_noll += ci * Z
    phase_osa = z.zernike_basis(order, rho, theta) @ K
    # O(10) terms of O(1): rounding ~1e-14
    np.testing.assert_allclose(phase_noll, phase_osa, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ GBT
def test_gbt_index_and_hand_value():
    assert z.gbt_index(0, 0) == 1
    assert z.gbt_index(2, 2) == 6  # n(n+1)/2 + (n+l)/2 + 1 = 3 + 2 + 1
    K = np.zeros(z.n_coeffs(2))
    K[z.nl_to_j(2, -2)] = 1.0  # 1 wave of sin(2θ) astigmatism
    g = z.osa_to_gbt(K, 7e-3)
    # lands at k(2, 2) as a sine term (s = -1), 1 wave at 7 mm = 3500 µm of surface
    expected = np.zeros_like(K)
    expected[z.gbt_index(2, 2) - 1] = -3500.0
    np.testing.assert_allclose(g, expected, rtol=1e-14)  # one multiplication: rounding only


def test_gbt_round_trip_and_surface():
    order, lam = 5, 7e-3
    K = RNG.normal(size=z.n_coeffs(order))
    g = z.osa_to_gbt(K, lam)
    np.testing.assert_allclose(z.gbt_to_osa(g, lam), K, rtol=1e-13)  # rounding only
    rho, theta = RNG.uniform(0, 1, 200), RNG.uniform(0, 2 * np.pi, 200)
    surf_gbt = np.zeros_like(rho)
    for k0, gk in enumerate(g):  # GBT term k(n, l): s * U_n^{-l}, s = -1 for sine terms
        n, l = z.j_to_nl(k0)
        s = -1.0 if -l < 0 else 1.0
        surf_gbt += gk * s * z.zernike(n, -l, rho, theta)
    surf = z.zernike_basis(order, rho, theta) @ K * lam / 2 * 1e6
    # surfaces of O(1e4) µm from O(20) terms: rounding ~1e-11 µm
    np.testing.assert_allclose(surf_gbt, surf, rtol=0, atol=1e-9)


# ------------------------------------------------------------------ units
def test_unit_converters():
    assert z.waves_to_surface_um(1.0, 7e-3) == pytest.approx(3500.0, rel=1e-15)  # exact-ish
    x = RNG.normal(size=10)
    # each is one multiply/divide: rounding only
    np.testing.assert_allclose(z.radians_to_waves(z.waves_to_radians(x)), x, rtol=1e-15)
    np.testing.assert_allclose(
        z.surface_um_to_waves(z.waves_to_surface_um(x, 3e-3), 3e-3), x, rtol=1e-15
    )
    assert z.waves_to_radians(0.5) == pytest.approx(np.pi, rel=1e-15)
