"""Per-sample noise σ for the likelihood: from the file, or estimated from the data.

Estimate (when a map carries no σ, e.g. pyoof's files): one σ per map, from the map's
outer region (samples farther from the map centre than ``outer_fraction`` of the largest
distance), where the beam is a faint side-lobe pattern.  Each sample there is compared
with the quadratic surface fitted (least squares) through its 24 nearest neighbours in
(u, v) (the 5 × 5 block on a lattice), which removes the local level, gradient and
curvature of the side lobes::

    d_k = (beam_k - q_k(u_k, v_k)) / sqrt(1 + h_k),     σ = 1.4826 · MAD(d)

with h_k = Σ w² the variance of the surface's prediction in units of σ², and MAD the
median absolute deviation about the median (robust to side-lobe peaks and glitches).
Lattices and scattered samples alike.  Assumptions: white noise, one σ per map.  Biases:
side-lobe structure the quadratic cannot follow (maps with fewer than ~3 samples per beam
width λ/D at SNR ≳ 1000) makes σ high (measured: +20-30% at 2.5 samples per beam width
and SNR 1000, within 10% at SNR 200 or 3.8 samples per beam width); noise correlated
between neighbours (smoothed on-the-fly maps) makes it low.
Units: those of the beam values.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial import cKDTree

from bayesoof.data.containers import BeamMap, BeamMaps

__all__ = ["NoiseWarning", "estimate_sigma", "resolve_sigma"]

MAD_TO_SD = 1.482602218505602  # 1 / Φ⁻¹(3/4): MAD -> standard deviation for Gaussian noise
N_NEIGHBOURS = 24  # neighbours of the local quadratic (the 5 x 5 block on a lattice)
MIN_OUTER = 50  # fewest samples the estimate uses (all samples when the outer region is smaller)
REL_FLOOR = 1e-9  # σ floor relative to the map's peak |beam| (noise-free simulations)


class NoiseWarning(UserWarning):
    """The noise estimate is doubtful (too few samples, or zero noise)."""


def estimate_sigma(bmap: BeamMap, outer_fraction: float = 0.6) -> float:
    """Robust σ of one map from nearest-neighbour differences in its outer region.

    Parameters
    ----------
    bmap : BeamMap
        u, v in rad; beam in any units.
    outer_fraction : float
        Samples with distance from the map centre (midpoint of the u and v ranges) above
        this fraction of the largest distance are used; in [0, 1).

    Returns
    -------
    float
        σ in the units of ``bmap.beam``, floored at 1e-9 × peak |beam| (with a
        :class:`NoiseWarning`) when the differences vanish.
    """
    u, v, beam = bmap.u, bmap.v, bmap.beam
    if beam.size < 3:
        raise ValueError(f"map {bmap.name!r}: {beam.size} samples are too few to estimate σ")
    uc, vc = 0.5 * (u.min() + u.max()), 0.5 * (v.min() + v.max())
    r = np.hypot(u - uc, v - vc)
    sel = np.flatnonzero(r >= outer_fraction * r.max())
    if sel.size < MIN_OUTER:
        sel = np.arange(beam.size)
    pts = np.column_stack([u, v])
    k = min(N_NEIGHBOURS + 1, beam.size)
    _, idx = cKDTree(pts).query(pts[sel], k=k)
    nb = idx[:, 1:]  # the k - 1 nearest other samples
    # local plane through the neighbours, evaluated at the sample: removes the side-lobe
    # level and gradient; var(d) = σ² (1 + e0ᵀ (XᵀX)⁻¹ e0)
    du, dv = u[nb] - u[sel, None], v[nb] - v[sel, None]
    scale = np.max(np.abs(np.concatenate([du, dv], axis=1)), axis=1)[:, None]
    du, dv = du / np.where(scale > 0, scale, 1.0), dv / np.where(scale > 0, scale, 1.0)
    X = np.stack([np.ones(nb.shape), du, dv, du * du, dv * dv, du * dv], axis=-1)
    # first row of the pseudo-inverse, w = e0ᵀ (XᵀX)⁻¹ Xᵀ: prediction weights at the sample
    xtx = np.matmul(X.transpose(0, 2, 1), X) + 1e-12 * np.eye(X.shape[-1])  # (m, 6, 6)
    row = np.linalg.solve(xtx, np.broadcast_to(np.eye(X.shape[-1])[0], xtx.shape[:2])[..., None])
    w = np.matmul(X, row)[..., 0]
    pred = np.einsum("mk,mk->m", w, beam[nb])
    factor = 1.0 + np.einsum("mk,mk->m", w, w)
    diff = (beam[sel] - pred) / np.sqrt(factor)
    sigma = MAD_TO_SD * np.median(np.abs(diff - np.median(diff)))
    floor = REL_FLOOR * float(np.max(np.abs(beam)))
    if not sigma > floor:
        warnings.warn(
            f"map {bmap.name!r}: the neighbour differences vanish (noise-free data?); "
            f"σ set to {floor:.3g} (1e-9 of the peak): chi2 and the covariance are meaningless",
            NoiseWarning,
            stacklevel=2,
        )
        sigma = floor
    return float(sigma)


def resolve_sigma(
    data: BeamMaps, source: str = "auto", outer_fraction: float = 0.6, sigma=None
) -> tuple[np.ndarray, list[str]]:
    """Per-sample σ of all maps (concatenated in map order) and how each map's was obtained.

    Parameters
    ----------
    data : BeamMaps
    source : {'auto', 'file', 'estimate'}
        'file': the maps' own σ (error when a map has none); 'estimate': always
        :func:`estimate_sigma`; 'auto': the file's σ where present, else the estimate.
    outer_fraction : float
        See :func:`estimate_sigma`.
    sigma : float, sequence or None
        User σ: one value for all maps, one per map, or a full per-sample array; overrides
        ``source``.  Same units as the beam values.

    Returns
    -------
    sigma : ndarray (n_samples,)
    origin : list of str
        Per map: 'file', 'estimated' or 'given'.
    """
    sizes = [m.size for m in data.maps]
    if sigma is not None:
        s = np.asarray(sigma, float)
        if s.ndim == 0:
            s = np.full(sum(sizes), float(s))
        elif s.size == data.n_maps:
            s = np.repeat(s, sizes)
        elif s.size != sum(sizes):
            raise ValueError(
                f"sigma has {s.size} values; expected 1, one per map ({data.n_maps}) or one "
                f"per sample ({sum(sizes)})"
            )
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("sigma must be finite and > 0 everywhere")
        return s, ["given"] * data.n_maps
    parts, origin = [], []
    for m in data.maps:
        if m.sigma is not None and source in ("auto", "file"):
            parts.append(m.sigma)
            origin.append("file")
        elif source == "file":
            raise ValueError(
                f"{data.source}: map {m.name!r} carries no σ (no UFNU column) but the noise "
                "source is 'file'; use 'auto' or 'estimate'"
            )
        else:
            parts.append(np.full(m.size, estimate_sigma(m, outer_fraction)))
            origin.append("estimated")
    return np.concatenate(parts), origin
