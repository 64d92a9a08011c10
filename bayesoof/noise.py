"""Per-sample noise σ for the likelihood: from the file, or estimated from the data.

Estimate (when a map carries no σ, e.g. pyoof's files): one σ per map from the
differences between each sample and its nearest neighbour in the (u, v) plane, using only
the map's outer region (samples farther from the map centre than ``outer_fraction`` of the
largest distance), where the beam is a faint, slowly varying side-lobe pattern::

    d_k = beam_k - beam_nn(k),     σ = 1.4826 · MAD(d) / √2

MAD (median absolute deviation about the median) makes it robust to the few pairs that
straddle a side lobe or a glitch; √2 because a difference carries the noise of two samples.
It works for lattices and scattered samples alike.  Assumptions: white noise, the same σ
over a map; noise correlated between neighbours (smoothed on-the-fly maps) biases σ low.
Units: those of the beam values.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial import cKDTree

from bayesoof.data import BeamMap, BeamMaps

__all__ = ["NoiseWarning", "estimate_sigma", "resolve_sigma"]

MAD_TO_SD = 1.482602218505602  # 1 / Φ⁻¹(3/4): MAD -> standard deviation for Gaussian noise
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
    _, idx = cKDTree(pts).query(pts[sel], k=2)
    diff = beam[sel] - beam[idx[:, 1]]
    mad = np.median(np.abs(diff - np.median(diff)))
    sigma = MAD_TO_SD * mad / np.sqrt(2.0)
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
