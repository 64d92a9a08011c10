"""rms phase error, surface rms and Ruze efficiency: ONE definition, the other by name.

THE definition used for every headline number (CLI, ``bayesoof info``, plots, the Ruze
efficiency everywhere) is the *illumination-weighted* rms: weights w = blockage coverage
× illumination amplitude E_a on the forward model's aperture pixels, about the weighted
mean -- the weighting of the Ruze expansion of |∫ w e^{iφ}|² / |∫ w|², so that the Ruze
efficiency exp(-σ_w²) is the gain loss the aberrations cause.  Keys ``*_weighted``.

The *plain* rms over the disc (pyoof's, independent of the illumination) is available by
name, keys without the suffix (``phase_rms``, ``surface_rms``, ``ruze``): the Zernike
polynomials are orthogonal on the disc, so rms² = Σ (2π K_nl · mode_rms(n, l))² over the
non-piston, non-tilt terms, exactly.

Surface rms in µm with the on-axis conversion φ λ / (4π).  Uncertainties: the Laplace
sd from draws of N(K, C_K) (:func:`aperture_statistics`; only the K uncertainty is
propagated, the illumination enters the weighted rms at second order); the posterior from
the draws themselves, each with its own illumination (:func:`rms_draws`).
"""

from __future__ import annotations

import numpy as np

from bayesoof.physics import zernike
from bayesoof.physics.illumination import evaluate as evaluate_illumination
from bayesoof.products.maps import BATCH_BYTES, TWO_PI, aberration_K, aberration_mask, surface_um

__all__ = [
    "aperture_statistics",
    "plain_rms",
    "rms_draws",
    "rms_summary",
    "weighted_rms",
]


def plain_rms(K, nl=None):
    """Plain rms phase error over the disc, rad (exact, from Zernike orthogonality).

    ``K`` (..., J) in waves; piston and tilts excluded.  Works on a batch of K.
    """
    K = np.asarray(K, float)
    if nl is None:
        nl = zernike.nl_list(zernike.j_to_nl(K.shape[-1] - 1)[0])
    scale = np.array([zernike.mode_rms(n, m) for n, m in nl]) * aberration_mask(nl)
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
    basis = forward.zernike_basis[keep] * aberration_mask(nl)
    w = w[keep] / np.sum(w[keep])
    lam = forward.wavelength
    # the weighted moments of the phase B K (rad / 2π) as forms in K: E[φ] = bᵀK and
    # E[φ²] = Kᵀ G K, b = Bᵀw, G = Bᵀ diag(w) B (J × J); then each draw costs a J × J form
    # instead of a map of the aperture's pixels: the rms of weighted_rms, 40x faster
    b = basis.T @ w
    gram = (basis * w[:, None]).T @ basis

    def stats(Kb: np.ndarray) -> dict:
        plain = plain_rms(Kb, nl)
        mean = Kb @ b
        second = np.einsum("di,ij,dj->d", Kb, gram, Kb)
        weighted = TWO_PI * np.sqrt(np.maximum(second - mean**2, 0.0))
        return rms_summary(plain, weighted, lam)

    point = {k: float(v[0]) for k, v in stats(K[None, :]).items()}
    if cov_K is None:
        return point | {f"{k}_sd": float("nan") for k in list(point)}
    cov_K = np.asarray(cov_K, float)
    if free_K is None:
        free_K = np.diag(cov_K) > 0
    draws = stats(_draws(K, cov_K, np.asarray(free_K, bool), n_draws, seed))
    return point | {f"{k}_sd": float(np.std(v, ddof=1)) for k, v in draws.items()}


def rms_draws(K_draws, illum_draws: dict, forward, max_bytes: float = BATCH_BYTES) -> dict:
    """Posterior draws of the rms phase error, surface rms and Ruze efficiency.

    Same definitions (and keys) as :func:`aperture_statistics`, one
    value per draw: ``phase_rms`` plain over the disc (pyoof's), ``phase_rms_weighted``
    weighted by the aperture amplitude B·E_a of that draw's illumination about the
    weighted mean (rad); ``surface_rms``, ``surface_rms_weighted`` (µm, on-axis);
    ``ruze``, ``ruze_weighted`` = exp(-rms²).  Piston and tilts are left out.

    Parameters
    ----------
    K_draws : array (S, J)
        Waves.
    illum_draws : dict
        Illumination coefficients of ``forward.illumination``: arrays (S,) or scalars
        (c_dB dB, q, x0 m, y0 m).
    forward : ForwardModel
        Supplies the aperture pixels, their blockage coverage, λ and R.
    """
    K = aberration_K(np.array(K_draws, dtype=float, ndmin=2))
    S = K.shape[0]
    X, Y = forward.sampling.coords()
    block = np.asarray(forward.block, float).ravel()
    keep = block > 0
    Xk, Yk, Bk = X.ravel()[keep], Y.ravel()[keep], block[keep]
    basis = np.asarray(forward.zernike_basis)[keep]  # (P, J)
    R, lam = forward.telescope.radius, forward.wavelength
    illum = {k: np.broadcast_to(np.asarray(v, float), (S,)) for k, v in illum_draws.items()}
    fixed = all(np.ptp(v) == 0 for v in illum.values()) if S else True
    weighted = np.empty(S)
    batch = max(1, int(max_bytes // (8 * max(Xk.size, 1))))
    w_fixed = None
    if fixed and S:
        w_fixed = Bk * evaluate_illumination(
            forward.illumination, Xk, Yk, R, {k: float(v[0]) for k, v in illum.items()},
            module=np,
        )
    for s in range(0, S, batch):
        sl = slice(s, min(S, s + batch))
        ph = TWO_PI * (K[sl] @ basis.T)  # (b, P)
        if w_fixed is not None:
            weighted[sl] = weighted_rms(ph, w_fixed)
            continue
        for i, k in enumerate(range(sl.start, sl.stop)):
            w = Bk * evaluate_illumination(
                forward.illumination, Xk, Yk, R, {n: float(v[k]) for n, v in illum.items()},
                module=np,
            )
            weighted[k] = weighted_rms(ph[i], w)
    plain = plain_rms(K)
    return rms_summary(plain, weighted, lam)
