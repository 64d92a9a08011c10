"""Phase- and surface-error maps on the one display grid (:mod:`bayesoof.products.grid`).

* Phase error φ(x, y) = 2π Σ K_nl U_n^l(r/R, θ) in rad with piston K(0,0) and tilts
  K(1,±1) left out (tilts are pointing); the map is NaN outside the dish (r > R).
* Surface error = φ λ / (4π), in µm: the on-axis approximation (no sqrt(1 + r²/4F²)
  normal-displacement factor).
* Laplace: sd maps by linear propagation of the covariance of K through the basis,
  var φ(x) = (2π)² U(x)ᵀ C_K U(x) (:func:`phase_map`).
* Posterior: per-pixel mean, sd and the equal-tailed 94% interval of the draws
  (:func:`phase_map_stats`, batched so that memory stays bounded), or every draw's map
  (:func:`phase_draws`, for figures).

The rms, surface rms and Ruze efficiency are in :mod:`bayesoof.products.rms`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesoof.physics import zernike
from bayesoof.products.grid import display_grid

__all__ = [
    "NOT_ABERRATION",
    "PhaseMap",
    "aberration_K",
    "aberration_mask",
    "phase_draws",
    "phase_map",
    "phase_map_stats",
    "surface_um",
]

TWO_PI = 2.0 * np.pi
QUANTILES = (0.03, 0.97)  # the equal-tailed 94% interval per pixel
BATCH_BYTES = 32e6  # largest temporary array of the batched products
NOT_ABERRATION = ((0, 0), (1, -1), (1, 1))  # piston and tilts: left out of the phase error


def surface_um(phase, wavelength: float):
    """Surface error in µm from phase error in rad: φ λ / (4π) (on-axis approximation)."""
    return np.asarray(phase, float) * wavelength / (4.0 * np.pi) * 1e6


def aberration_mask(nl) -> np.ndarray:
    """Mask of the Zernike terms that count as aberration (not piston, not tilt)."""
    return np.array([nm not in NOT_ABERRATION for nm in nl])


@dataclass(frozen=True)
class PhaseMap:
    """Phase error on a square grid over the dish; ``phase[i, j]`` is at (x[j], y[i]).

    Attributes
    ----------
    x, y : ndarray (n,)
        Aperture coordinates, m.
    phase, phase_sd : ndarray (n, n)
        Phase error and its standard deviation, rad; NaN outside the dish.
    wavelength : float
        m (for the surface conversion).
    """

    x: np.ndarray
    y: np.ndarray
    phase: np.ndarray
    phase_sd: np.ndarray
    wavelength: float

    @property
    def surface(self) -> np.ndarray:
        """Surface error, µm (on-axis approximation)."""
        return surface_um(self.phase, self.wavelength)

    @property
    def surface_sd(self) -> np.ndarray:
        """Standard deviation of the surface error, µm."""
        return surface_um(self.phase_sd, self.wavelength)


def phase_map(K, cov_K, radius: float, wavelength: float, n: int = 101) -> PhaseMap:
    """Phase-error map and its sd on an n × n grid spanning the dish diameter.

    Parameters
    ----------
    K : array (J,)
        Zernike coefficients, waves (OSA order).
    cov_K : array (J, J) or None
        Covariance of K, waves² (zeros for fixed terms); None gives a zero sd map.
    radius : float
        Primary radius R, m.
    wavelength : float
        m.
    n : int
        Grid points along each axis (from -R to R).
    """
    K = np.asarray(K, float)
    order = zernike.j_to_nl(K.size - 1)[0]
    g = display_grid(radius, n)
    basis = zernike.zernike_basis(order, g.rho[g.inside], g.theta[g.inside])
    basis = basis * aberration_mask(zernike.nl_list(order))
    phase = np.full(g.rho.shape, np.nan)
    sd = np.full(g.rho.shape, np.nan)
    phase[g.inside] = TWO_PI * basis @ K
    if cov_K is None:
        sd[g.inside] = 0.0
    else:
        var = np.sum((basis @ np.asarray(cov_K, float)) * basis, axis=1)  # diag(B Σ Bᵀ)
        sd[g.inside] = TWO_PI * np.sqrt(np.maximum(var, 0.0))
    return PhaseMap(g.x, g.y, phase, sd, float(wavelength))


def aberration_K(K) -> np.ndarray:
    """Copy of K (..., J) with piston and tilts (:data:`NOT_ABERRATION`) zeroed."""
    K = np.array(K, dtype=float, ndmin=1)
    nl = zernike.nl_list(zernike.j_to_nl(K.shape[-1] - 1)[0])
    K[..., ~aberration_mask(nl)] = 0.0
    return K


def phase_draws(K_draws, radius: float, n: int = 101, max_draws: int = 2000) -> np.ndarray:
    """Phase maps (rad) of coefficient draws on the display grid: (S, n, n), NaN off the dish.

    ``K_draws`` (S, J) in waves; piston and tilts left out; at most ``max_draws`` evenly
    thinned draws are used (S × n² values are held in memory).
    """
    K = aberration_K(np.array(K_draws, dtype=float, ndmin=2))
    if K.shape[0] > max_draws:
        K = K[np.linspace(0, K.shape[0] - 1, max_draws).astype(int)]
    order = zernike.j_to_nl(K.shape[1] - 1)[0]
    g = display_grid(radius, n)
    basis = zernike.zernike_basis(order, g.rho[g.inside], g.theta[g.inside])  # (P, J)
    out = np.full((K.shape[0],) + g.rho.shape, np.nan)
    out[:, g.inside] = TWO_PI * (K @ basis.T)
    return out


def phase_map_stats(K_draws, radius: float, n: int = 101, wavelength: float | None = None,
                    max_bytes: float = BATCH_BYTES, quantiles=QUANTILES) -> dict:
    """Per-pixel mean, sd and central interval of the phase error over coefficient draws.

    The grid and the conventions are those of :func:`phase_map` (the display grid, NaN
    outside the dish, piston and tilts left out).

    Parameters
    ----------
    K_draws : array (S, J)
        Zernike coefficients in waves (OSA order), one row per draw.
    radius : float
        Dish radius R, m.
    n : int
        Grid points along each axis.
    wavelength : float, optional
        m; with it the surface-error maps in µm are returned too.
    max_bytes : float
        Largest temporary array (draws × pixels) of one batch.
    quantiles : (float, float)
        The interval (default the equal-tailed 94%: 3% and 97%).

    Returns
    -------
    dict
        ``x``, ``y`` (m); ``phase_mean``, ``phase_sd``, ``phase_lo``, ``phase_hi`` (rad,
        (n, n)); with ``wavelength`` also ``surface_*`` in µm.
    """
    K = aberration_K(np.array(K_draws, dtype=float, ndmin=2))
    S, J = K.shape
    order = zernike.j_to_nl(J - 1)[0]
    g = display_grid(radius, n)
    rho, theta = g.rho.ravel(), g.theta.ravel()
    inside = np.flatnonzero(g.inside.ravel())
    stats = {k: np.full(rho.size, np.nan) for k in ("mean", "sd", "lo", "hi")}
    batch = max(1, int(max_bytes // (8 * max(S, 1))))
    for s in range(0, inside.size, batch):
        idx = inside[s : s + batch]
        basis = zernike.zernike_basis(order, rho[idx], theta[idx])  # (B, J)
        ph = TWO_PI * (K @ basis.T)  # (S, B)
        stats["mean"][idx] = ph.mean(axis=0)
        stats["sd"][idx] = ph.std(axis=0, ddof=1) if S > 1 else 0.0
        stats["lo"][idx], stats["hi"][idx] = np.quantile(ph, quantiles, axis=0)
    out = {"x": g.x, "y": g.y}
    for k, v in stats.items():
        out[f"phase_{k}"] = v.reshape(g.rho.shape)
    if wavelength is not None:
        for k in ("mean", "sd", "lo", "hi"):
            out[f"surface_{k}"] = surface_um(out[f"phase_{k}"], wavelength)
    return out


