"""Derived products of a fit: phase- and surface-error maps, rms, Ruze efficiency.

* Phase error φ(x, y) = 2π Σ K_nl U_n^l(r/R, θ) in rad with piston K(0,0) and tilts
  K(1,±1) left out (tilts are pointing); the map is NaN outside the dish (r > R).
* Surface error = φ λ / (4π), in µm: the on-axis approximation (no sqrt(1 + r²/4F²)
  normal-displacement factor).
* rms: *plain* over the disc (pyoof's choice): the Zernike polynomials are orthogonal on
  the disc, so rms² = Σ (2π K_nl · mode_rms(n, l))² over the non-piston, non-tilt terms,
  exactly.  *Weighted* by the aperture amplitude w = blockage coverage × illumination
  E_a (the weighting of the Ruze expansion of |∫ w e^{iφ}|² / |∫ w|²), about the weighted
  mean, on the forward model's aperture pixels.
* Ruze efficiency exp(-σ_φ²) for both rms.
* Uncertainties: sd maps by linear propagation of the Laplace covariance of K through the
  basis, var φ(x) = (2π)² U(x)ᵀ C_K U(x); rms and Ruze sd from draws of the Gaussian
  N(K, C_K) (batched, seeded).  Only the K uncertainty is propagated (the illumination
  enters the weighted rms at second order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesoof.physics import zernike
from bayesoof.physics.illumination import evaluate as evaluate_illumination

__all__ = [
    "PhaseMap",
    "aperture_statistics",
    "phase_map",
    "plain_rms",
    "surface_um",
    "weighted_rms",
]

TWO_PI = 2.0 * np.pi
NOT_ABERRATION = ((0, 0), (1, -1), (1, 1))  # piston and tilts: left out of the phase error


def surface_um(phase, wavelength: float):
    """Surface error in µm from phase error in rad: φ λ / (4π) (on-axis approximation)."""
    return np.asarray(phase, float) * wavelength / (4.0 * np.pi) * 1e6


def _aberration_mask(nl) -> np.ndarray:
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
    nl = zernike.nl_list(order)
    axis = np.linspace(-radius, radius, int(n))
    X, Y = np.meshgrid(axis, axis, indexing="xy")  # [i, j] = (x[j], y[i])
    rho = np.hypot(X, Y) / radius
    inside = rho <= 1.0 + 1e-12
    basis = zernike.zernike_basis(order, rho[inside], np.arctan2(Y[inside], X[inside]))
    basis = basis * _aberration_mask(nl)
    phase = np.full(X.shape, np.nan)
    sd = np.full(X.shape, np.nan)
    phase[inside] = TWO_PI * basis @ K
    if cov_K is None:
        sd[inside] = 0.0
    else:
        var = np.einsum("pi,ij,pj->p", basis, np.asarray(cov_K, float), basis)
        sd[inside] = TWO_PI * np.sqrt(np.maximum(var, 0.0))
    return PhaseMap(axis, axis.copy(), phase, sd, float(wavelength))


def plain_rms(K, nl=None):
    """Plain rms phase error over the disc, rad (exact, from Zernike orthogonality).

    ``K`` (..., J) in waves; piston and tilts excluded.  Works on a batch of K.
    """
    K = np.asarray(K, float)
    if nl is None:
        nl = zernike.nl_list(zernike.j_to_nl(K.shape[-1] - 1)[0])
    scale = np.array([zernike.mode_rms(n, m) for n, m in nl]) * _aberration_mask(nl)
    return TWO_PI * np.sqrt(np.sum((K * scale) ** 2, axis=-1))


def weighted_rms(phase, weights) -> np.ndarray:
    """Weighted rms about the weighted mean; ``phase`` (..., n_pix) rad, ``weights`` (n_pix,)."""
    w = np.asarray(weights, float) / np.sum(weights)
    mean = phase @ w
    return np.sqrt(np.maximum((phase**2) @ w - mean**2, 0.0))



def rms_summary(plain, weighted, wavelength: float) -> dict:
    """Phase rms (rad), surface rms (µm) and Ruze efficiency, plain and weighted.

    ``plain`` and ``weighted`` are rms phases in rad (scalars or arrays of draws);
    ``wavelength`` in m.
    """
    return {
        "phase_rms": plain,
        "phase_rms_weighted": weighted,
        "surface_rms": surface_um(plain, wavelength),
        "surface_rms_weighted": surface_um(weighted, wavelength),
        "ruze": np.exp(-(plain**2)),
        "ruze_weighted": np.exp(-(weighted**2)),
    }

def _draws(K, cov_K, free, n_draws: int, seed: int) -> np.ndarray:
    """Draws of K (n_draws, J) from N(K, cov_K) over the ``free`` terms (others fixed)."""
    rng = np.random.default_rng(seed)
    out = np.repeat(K[None, :], n_draws, axis=0)
    idx = np.flatnonzero(free)
    if idx.size:
        c = cov_K[np.ix_(idx, idx)]
        vals, vecs = np.linalg.eigh(0.5 * (c + c.T))
        root = vecs * np.sqrt(np.maximum(vals, 0.0))
        out[:, idx] += rng.standard_normal((n_draws, idx.size)) @ root.T
    return out


def aperture_statistics(
    K,
    cov_K,
    forward,
    illum: dict,
    free_K=None,
    n_draws: int = 1000,
    seed: int = 0,
    batch: int = 250,
) -> dict:
    """Return the rms phase (plain, weighted), surface rms and Ruze efficiencies, with sd.

    Parameters
    ----------
    K : array (J,)
        waves, at the forward model's order.
    cov_K : array (J, J) or None
        Laplace covariance of K, waves²; None gives no sd.
    forward : ForwardModel
        Supplies the aperture pixels, their blockage coverage and the illumination model.
    illum : dict
        Illumination coefficients (c_dB dB, q, x0 m, y0 m).
    free_K : array of bool, optional
        Which K are free (default: those with a non-zero variance).

    Returns
    -------
    dict
        ``phase_rms``, ``phase_rms_weighted`` (rad), ``surface_rms``,
        ``surface_rms_weighted`` (µm), ``ruze``, ``ruze_weighted`` (fractions), each with a
        ``*_sd`` entry (NaN without covariance).
    """
    K = np.asarray(K, float)
    nl = forward.nl
    X, Y = forward.sampling.coords()
    amp = evaluate_illumination(
        forward.illumination, X, Y, forward.telescope.radius, illum, module=np
    )
    w = (forward.block * amp).ravel()
    keep = w > 0
    basis = forward.zernike_basis[keep] * _aberration_mask(nl)
    w = w[keep]
    lam = forward.wavelength

    def stats(Kb: np.ndarray) -> dict:
        plain = plain_rms(Kb, nl)
        weighted = np.concatenate([
            weighted_rms(TWO_PI * (Kb[i : i + batch] @ basis.T), w)
            for i in range(0, Kb.shape[0], batch)
        ])
        return rms_summary(plain, weighted, lam)

    point = {k: float(v[0]) for k, v in stats(K[None, :]).items()}
    if cov_K is None:
        return point | {f"{k}_sd": float("nan") for k in list(point)}
    cov_K = np.asarray(cov_K, float)
    if free_K is None:
        free_K = np.diag(cov_K) > 0
    draws = stats(_draws(K, cov_K, np.asarray(free_K, bool), n_draws, seed))
    return point | {f"{k}_sd": float(np.std(v, ddof=1)) for k, v in draws.items()}
