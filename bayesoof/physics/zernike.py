"""Zernike circle polynomials (Born & Wolf, unnormalised, pyoof's convention).

    U_n^l(rho, theta) = R_n^|l|(rho) cos(|l| theta)  for l >= 0,
                        R_n^|l|(rho) sin(|l| theta)  for l <  0,

with rho the radius normalised to the dish radius (dimensionless, 0..1) and theta in rad.
Coefficients ``K`` are in waves (phase = 2 pi sum K_j U_j rad) and are stored in OSA/ANSI
order: n = 0..N and, inside each n, l = -n, -n+2, ..., n, so j = (n(n+2) + l) / 2.
Converters to Noll's (normalised) and the GBT active-surface orders are included.
"""

# ruff: noqa: E741  -- ``l`` is the azimuthal index of PHYSICS.md and of the public API
from __future__ import annotations

from math import isqrt, pi, sqrt

import numpy as np

__all__ = [
    "nl_to_j",
    "j_to_nl",
    "n_coeffs",
    "nl_list",
    "coeff_names",
    "radial",
    "zernike",
    "zernike_basis",
    "mode_rms",
    "nl_to_noll",
    "noll_to_nl",
    "osa_to_noll",
    "noll_to_osa",
    "gbt_index",
    "osa_to_gbt",
    "gbt_to_osa",
    "waves_to_radians",
    "radians_to_waves",
    "waves_to_surface_um",
    "surface_um_to_waves",
]


# --------------------------------------------------------------------------- indices
def _check_nl(n: int, l: int) -> None:
    if n < 0 or abs(l) > n or (n - l) % 2:
        raise ValueError(f"invalid Zernike indices (n, l) = ({n}, {l}): need |l| <= n, n - l even")


def nl_to_j(n: int, l: int) -> int:
    """OSA/ANSI index ``j = (n(n+2) + l) / 2`` (0-based) of ``U_n^l``; ValueError if invalid."""
    _check_nl(n, l)
    return (n * (n + 2) + l) // 2


def j_to_nl(j: int) -> tuple[int, int]:
    """Inverse of `nl_to_j`: the ``(n, l)`` of OSA/ANSI index ``j >= 0``."""
    if j < 0:
        raise ValueError(f"OSA index must be >= 0, got {j}")
    n = (isqrt(8 * j + 1) - 1) // 2
    return n, 2 * j - n * (n + 2)


def n_coeffs(order: int) -> int:
    """Return the number of polynomials with ``n <= order``: ``(order+1)(order+2)/2``."""
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    return (order + 1) * (order + 2) // 2


def _order_of(n_terms: int) -> int:
    order = (isqrt(8 * n_terms + 1) - 3) // 2
    if order < 0 or n_coeffs(order) != n_terms:
        raise ValueError(f"{n_terms} coefficients is not a complete order (1, 3, 6, 10, ...)")
    return order


def nl_list(order: int) -> list[tuple[int, int]]:
    """All ``(n, l)`` with ``n <= order``, in OSA/ANSI order."""
    return [(n, l) for n in range(order + 1) for l in range(-n, n + 1, 2)]


def coeff_names(order: int) -> list[str]:
    """Coefficient labels in pyoof's style: ``["K(0,0)", "K(1,-1)", "K(1,1)", ...]``."""
    return [f"K({n},{l})" for n, l in nl_list(order)]


# --------------------------------------------------------------------------- polynomials
def _radial_fixed_m(m: int, n_max: int, rho: np.ndarray) -> dict[int, np.ndarray]:
    """``R_n^m(rho)`` for n = m, m+2, ..., n_max by Kintner's three-term recurrence in n."""
    out = {m: rho**m}
    if m + 2 <= n_max:
        out[m + 2] = (m + 2) * rho ** (m + 2) - (m + 1) * out[m]
    rho2 = rho * rho
    for n in range(m + 4, n_max + 1, 2):
        k1 = (n + m) * (n - m) * (n - 2) / 2
        k2 = 2 * n * (n - 1) * (n - 2)
        k3 = -(m**2) * (n - 1) - n * (n - 1) * (n - 2)
        k4 = -n * (n + m - 2) * (n - m - 2) / 2
        out[n] = ((k2 * rho2 + k3) * out[n - 2] + k4 * out[n - 4]) / k1
    return out


def radial(n: int, m: int, rho) -> np.ndarray:
    """Radial polynomial ``R_n^|m|(rho)`` (dimensionless; ``rho`` normalised radius).

    Evaluated by Kintner's recurrence in n at fixed m (stable beyond n = 30; the factorial
    sum is not).  Returns zeros when ``n - m`` is odd; ValueError when ``|m| > n`` or n < 0.
    """
    m = abs(m)
    if n < 0 or m > n:
        raise ValueError(f"invalid radial indices (n, m) = ({n}, {m})")
    rho = np.asarray(rho, dtype=float)
    if (n - m) % 2:
        return np.zeros_like(rho)
    return _radial_fixed_m(m, n, rho)[n]


def zernike(n: int, l: int, rho, theta) -> np.ndarray:
    """``U_n^l(rho, theta)``: ``R_n^|l| cos(|l| theta)`` (l >= 0) or ``R sin(|l| theta)`` (l < 0).

    ``rho`` is the normalised radius (dimensionless), ``theta`` the azimuth in rad.
    """
    _check_nl(n, l)
    rho, theta = np.broadcast_arrays(np.asarray(rho, float), np.asarray(theta, float))
    trig = np.cos if l >= 0 else np.sin
    return radial(n, l, rho) * trig(abs(l) * theta)


def zernike_basis(order: int, rho, theta) -> np.ndarray:
    """All ``U_n^l`` with ``n <= order``, shape ``broadcast(rho, theta).shape + (J,)``, OSA order.

    Radial parts come from one recurrence per m shared across n; ``rho`` dimensionless,
    ``theta`` in rad.
    """
    rho, theta = np.broadcast_arrays(np.asarray(rho, float), np.asarray(theta, float))
    out = np.empty(rho.shape + (n_coeffs(order),))
    for m in range(order + 1):
        rad = _radial_fixed_m(m, order, rho)
        cos_m, sin_m = np.cos(m * theta), np.sin(m * theta)
        for n in range(m, order + 1, 2):
            out[..., nl_to_j(n, m)] = rad[n] * cos_m
            if m:
                out[..., nl_to_j(n, -m)] = rad[n] * sin_m
    return out


def mode_rms(n: int, l: int) -> float:
    """Rms of ``U_n^l`` over the unit disc: ``1/sqrt(n+1)`` (l = 0) or ``1/sqrt(2(n+1))``.

    A coefficient K in waves therefore contributes ``K * mode_rms(n, l)`` waves rms.
    """
    _check_nl(n, l)
    return 1.0 / sqrt((n + 1) * (1 if l == 0 else 2))


# --------------------------------------------------------------------------- Noll order
def nl_to_noll(n: int, l: int) -> int:
    """Noll (1976) index (1-based) of the mode ``(n, l)``.

    Within each n, |l| increases; for m = |l| > 0 the even index of the pair is the cosine
    (l > 0) and the odd one the sine (l < 0).  E.g. (3, -3) -> 9, (2, 2) -> 6.
    """
    _check_nl(n, l)
    m = abs(l)
    j = n * (n + 1) // 2 + 1 + max(m - 1, 0)  # first index of this |l|
    if m and (j % 2 == 0) != (l > 0):
        j += 1
    return j


def noll_to_nl(j: int) -> tuple[int, int]:
    """Inverse of `nl_to_noll`: ``(n, l)`` of the 1-based Noll index ``j``."""
    if j < 1:
        raise ValueError(f"Noll index must be >= 1, got {j}")
    n = (isqrt(8 * (j - 1) + 1) - 1) // 2
    r = j - (n * (n + 1) // 2 + 1)
    m = r if (r - n) % 2 == 0 else r + 1
    return n, (m if j % 2 == 0 else -m)


def osa_to_noll(K) -> np.ndarray:
    """Convert OSA coefficients ``K`` (waves, unnormalised U) to Noll coefficients (waves).

    Noll's polynomials are normalised, ``Z = sqrt(n+1) R`` (m = 0) or ``sqrt(2(n+1)) R cos/sin``,
    so the same phase needs ``c = K / norm = K * mode_rms``.  The result has the same length J:
    ``c[i]`` holds Noll index ``i + 1``.  Noll numbering also groups by n, so indices 1..J cover
    exactly the same (n, l) set as the complete OSA order.
    """
    K = np.asarray(K, dtype=float)
    c = np.empty_like(K)
    for j, (n, l) in enumerate(nl_list(_order_of(K.shape[-1]))):
        c[..., nl_to_noll(n, l) - 1] = K[..., j] * mode_rms(n, l)
    return c


def noll_to_osa(c) -> np.ndarray:
    """Inverse of `osa_to_noll`: Noll coefficients (0-based storage, waves) to OSA ``K``."""
    c = np.asarray(c, dtype=float)
    K = np.empty_like(c)
    for j, (n, l) in enumerate(nl_list(_order_of(c.shape[-1]))):
        K[..., j] = c[..., nl_to_noll(n, l) - 1] / mode_rms(n, l)
    return K


# --------------------------------------------------------------------------- GBT order
def gbt_index(n: int, l: int) -> int:
    """GBT active-surface position ``k = n(n+1)/2 + (n+l)/2 + 1`` (1-based; = OSA j + 1)."""
    return nl_to_j(n, l) + 1


def osa_to_gbt(K, wavelength) -> np.ndarray:
    """OSA coefficients ``K`` (waves) to GBT active-surface coefficients (microns of surface).

    The GBT term at position ``k(n, l)`` is the bayesoof polynomial ``U_n^{-l}`` (cos and sin
    swapped) times ``s``, with ``s = -1`` when ``U_n^{-l}`` is a sine term (l > 0), else +1;
    its coefficient is ``g[k - 1] = s * K(n, -l) * wavelength / 2`` in microns.  ``g`` is
    1-based k stored 0-based, same length J.  Surface = phase * wavelength / (4 pi) with phase
    = 2 pi K: the on-axis approximation (no sqrt(1 + r^2/4F^2) normal-displacement factor).
    ``wavelength`` in m.
    """
    K = np.asarray(K, dtype=float)
    g = np.empty_like(K)
    for n, l in nl_list(_order_of(K.shape[-1])):
        s = -1.0 if l > 0 else 1.0
        g[..., gbt_index(n, l) - 1] = s * waves_to_surface_um(K[..., nl_to_j(n, -l)], wavelength)
    return g


def gbt_to_osa(g, wavelength) -> np.ndarray:
    """Inverse of `osa_to_gbt`: GBT coefficients (microns of surface) to ``K`` (waves).

    ``wavelength`` in m.
    """
    g = np.asarray(g, dtype=float)
    K = np.empty_like(g)
    for n, l in nl_list(_order_of(g.shape[-1])):
        s = -1.0 if l > 0 else 1.0
        K[..., nl_to_j(n, -l)] = s * surface_um_to_waves(g[..., gbt_index(n, l) - 1], wavelength)
    return K


# --------------------------------------------------------------------------- units
def waves_to_radians(K):
    """Phase in waves to rad (``2 pi K``)."""
    return 2 * pi * np.asarray(K, dtype=float)


def radians_to_waves(phi):
    """Phase in rad to waves (``phi / 2 pi``)."""
    return np.asarray(phi, dtype=float) / (2 * pi)


def waves_to_surface_um(K, wavelength_m):
    """Phase in waves to surface displacement in microns, ``K * wavelength / 2`` (on-axis).

    Surface = phase * wavelength / (4 pi) (factor 2 for the reflection); ``wavelength_m`` in m.
    """
    return np.asarray(K, dtype=float) * wavelength_m / 2 * 1e6


def surface_um_to_waves(s, wavelength_m):
    """Surface displacement in microns to phase in waves, ``2 s / wavelength`` (on-axis)."""
    return np.asarray(s, dtype=float) * 1e-6 * 2 / wavelength_m
