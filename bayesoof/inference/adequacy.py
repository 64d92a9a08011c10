"""Model-adequacy verdict from standardised residual maps (pure NumPy, no plotting).

A fit is only as good as its model.  Three statistics, per map, say whether the residuals
``r = (data - model) / σ`` look like the white unit-variance noise the likelihood assumes:

* **reduced χ²** ``Σ r² / dof_i`` (dof_i: the map's samples minus its share of the free
  parameters) and its z-score ``(χ² - dof) / sqrt(2 dof)`` under the model;
* **lag-1 spatial autocorrelation** of the residual map: Moran's I over the pairs of
  nearest neighbours (the 4-neighbours on a lattice, pairs closer than 1.25 × the median
  nearest-neighbour distance for scattered samples) with its exact mean and variance under
  independent Gaussian residuals (Cliff & Ord's normality moments).  Moran's I is invariant
  to the scale of σ, so a misjudged noise level cannot raise it: a significant positive I
  means *structure* (the misfit PHYSICS.md describes at the beam peaks), not noise;
* for posteriors, the **posterior predictive p-value** of χ² (:func:`ppp_chi2`).

Verdict ("adequate" / "misfit") with thresholds (see :data:`THRESHOLDS`):

* χ²: misfit when a map's reduced χ² exceeds ``1 + chi2_excess`` (0.10) *and* its z-score
  exceeds ``chi2_z`` (5).  The z-score alone would flag a 2 % error in σ on 10⁴ samples;
  10 % of excess χ² is what a σ wrong by 5 % gives (σ estimated from the map edges of a
  100 × 100 map is good to ~1.5 %, so only a real misfit or a badly wrong σ gets there);
* structure: misfit when Moran's I of a map has z > ``moran_z`` (4; one-sided p = 3e-5 per
  map under white noise);
* posterior predictive: misfit when ``p < ppp_min`` (0.01); the ppp of a correct model is
  concentrated near 0.5 (it is conservative), so this flags less than 1 % of adequate fits.

The false-alarm rate on data simulated from the model is measured in
``tests/inference/test_adequacy.py`` and by ``bench/misspec_study.py`` (baseline setting).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "THRESHOLDS",
    "Adequacy",
    "MapAdequacy",
    "assess",
    "morans_i",
    "neighbour_pairs",
    "ppp_chi2",
]

#: verdict thresholds (module docstring says why)
THRESHOLDS = {"chi2_excess": 0.10, "chi2_z": 5.0, "moran_z": 4.0, "ppp_min": 0.01}
NEIGHBOUR_RADIUS = 1.25  # × median nearest-neighbour distance: 4-neighbours on a lattice


def neighbour_pairs(u, v) -> np.ndarray:
    """Pairs (i, j), i < j, of neighbouring samples; (n_pairs, 2) int array.

    Neighbours are closer than 1.25 × the median nearest-neighbour distance: on a square
    lattice (also one with a few % jitter) the 4-neighbours, on scattered samples the
    nearest few.  Positions in any consistent unit.
    """
    from scipy.spatial import cKDTree

    pts = np.column_stack([np.asarray(u, float), np.asarray(v, float)])
    if pts.shape[0] < 3:
        return np.zeros((0, 2), int)
    tree = cKDTree(pts)
    d, _ = tree.query(pts, k=2)
    step = float(np.median(d[:, 1]))
    if not step > 0:
        return np.zeros((0, 2), int)
    return tree.query_pairs(NEIGHBOUR_RADIUS * step, output_type="ndarray")


def morans_i(r, pairs) -> tuple[float, float]:
    """Moran's I of ``r`` over the symmetric binary neighbour ``pairs``, and its z-score.

    I = (n / S0) Σ_(ij) w_ij z_i z_j / Σ z_i² with z = r - mean(r); the z-score uses
    E[I] = -1/(n-1) and the variance under independent Gaussian values (normality
    assumption, Cliff & Ord 1981).  Returns (nan, nan) when there are no pairs.
    """
    r = np.asarray(r, float)
    n = r.size
    if pairs.shape[0] == 0 or n < 3:
        return float("nan"), float("nan")
    z = r - r.mean()
    denom = float(np.sum(z * z))
    if denom == 0:
        return float("nan"), float("nan")
    s0 = 2.0 * pairs.shape[0]  # ordered pairs: w_ij = w_ji = 1
    cross = 2.0 * float(np.sum(z[pairs[:, 0]] * z[pairs[:, 1]]))
    moran = n / s0 * cross / denom
    deg = np.bincount(pairs.ravel(), minlength=n).astype(float)
    s1 = 2.0 * s0
    s2 = float(np.sum((2.0 * deg) ** 2))
    mean = -1.0 / (n - 1)
    var = (n * n * s1 - n * s2 + 3.0 * s0 * s0) / ((n * n - 1.0) * s0 * s0) - mean * mean
    return float(moran), float((moran - mean) / np.sqrt(var)) if var > 0 else float("nan")


def ppp_chi2(observed, mu_draws, sigma, seed: int = 0, max_draws: int = 400) -> float:
    """Posterior predictive p-value of χ²: P(χ²(y_rep, θ) ≥ χ²(y_obs, θ)).

    ``mu_draws`` (n_draws, n_samples): model beams at posterior draws θ_s (data units);
    ``sigma``: per-sample σ (n_samples,) or per draw (n_draws, n_samples).  For each draw
    y_rep ~ N(μ_s, σ).  At most ``max_draws`` draws are used (evenly thinned).
    """
    mu = np.atleast_2d(np.asarray(mu_draws, float))
    sig = np.broadcast_to(np.asarray(sigma, float), mu.shape)
    step = max(1, mu.shape[0] // max_draws)
    mu, sig = mu[::step], sig[::step]
    obs = np.asarray(observed, float)
    rng = np.random.default_rng(seed)
    chi_obs = np.sum(((obs - mu) / sig) ** 2, axis=1)
    chi_rep = np.sum(rng.standard_normal(mu.shape) ** 2, axis=1)
    return float(np.mean(chi_rep >= chi_obs))


@dataclass
class MapAdequacy:
    """Residual statistics of one map (see the module docstring)."""

    name: str
    n: int
    chi2: float
    dof: float
    moran_i: float
    moran_z: float
    n_pairs: int

    @property
    def reduced_chi2(self) -> float:
        """χ² / dof of this map."""
        return self.chi2 / self.dof

    @property
    def chi2_z(self) -> float:
        """(χ² - dof) / sqrt(2 dof)."""
        return (self.chi2 - self.dof) / np.sqrt(2.0 * self.dof)

    def reasons(self, th: dict) -> list[str]:
        """Why this map is a misfit (empty when it is not)."""
        out = []
        if self.reduced_chi2 > 1.0 + th["chi2_excess"] and self.chi2_z > th["chi2_z"]:
            out.append(f"{self.name}: reduced chi2 {self.reduced_chi2:.3g} "
                       f"(> {1 + th['chi2_excess']:.2f}, z = {self.chi2_z:.0f})")
        if np.isfinite(self.moran_z) and self.moran_z > th["moran_z"]:
            out.append(f"{self.name}: structured residuals, lag-1 autocorrelation "
                       f"{self.moran_i:.2f} (z = {self.moran_z:.0f} > {th['moran_z']:g})")
        return out

    def to_dict(self) -> dict:
        """Plain-type record for summary.json."""
        return {"name": self.name, "n_samples": self.n, "chi2": self.chi2, "dof": self.dof,
                "reduced_chi2": self.reduced_chi2, "chi2_z": self.chi2_z,
                "lag1_autocorrelation": self.moran_i, "lag1_autocorrelation_z": self.moran_z,
                "neighbour_pairs": self.n_pairs}


@dataclass
class Adequacy:
    """The verdict: ``verdict`` is "adequate" or "misfit", ``reasons`` says why."""

    maps: list[MapAdequacy]
    ppp: float | None = None
    thresholds: dict = field(default_factory=lambda: dict(THRESHOLDS))
    remedy: str | None = None

    @property
    def reasons(self) -> list[str]:
        """One line per failed check (empty when adequate)."""
        out = [r for m in self.maps for r in m.reasons(self.thresholds)]
        if self.ppp is not None and self.ppp < self.thresholds["ppp_min"]:
            out.append(f"posterior predictive p-value of chi2 {self.ppp:.3g} "
                       f"(< {self.thresholds['ppp_min']:g})")
        return out

    @property
    def verdict(self) -> str:
        """'adequate' or 'misfit'."""
        return "misfit" if self.reasons else "adequate"

    @property
    def adequate(self) -> bool:
        """True when no check failed."""
        return not self.reasons

    @property
    def reduced_chi2(self) -> float:
        """χ² / dof over all maps."""
        return sum(m.chi2 for m in self.maps) / sum(m.dof for m in self.maps)

    def line(self) -> str:
        """The one-line verdict printed by the CLI (full reasons: :attr:`reasons`)."""
        th = self.thresholds
        chis = [m.reduced_chi2 for m in self.maps]
        mz = [m.moran_z for m in self.maps if np.isfinite(m.moran_z)]
        if self.adequate:
            stats = (f"reduced chi2 per map {min(chis):.3g}-{max(chis):.3g}"
                     + (f", residual autocorrelation z <= {max(mz):.1f}" if mz else "")
                     + (f", ppp {self.ppp:.2f}" if self.ppp is not None else ""))
            return f"adequacy: adequate ({stats})"
        parts = []
        bad_chi = [m for m in self.maps if m.reasons(th) and m.reduced_chi2 > 1 + th["chi2_excess"]
                   and m.chi2_z > th["chi2_z"]]
        if bad_chi:
            worst = max(bad_chi, key=lambda m: m.reduced_chi2)
            parts.append(f"reduced chi2 > {1 + th['chi2_excess']:.2f} in {len(bad_chi)}/"
                         f"{len(self.maps)} maps (max {worst.reduced_chi2:.3g}, {worst.name})")
        bad_i = [m for m in self.maps if np.isfinite(m.moran_z) and m.moran_z > th["moran_z"]]
        if bad_i:
            worst = max(bad_i, key=lambda m: m.moran_z)
            parts.append(f"structured residuals in {len(bad_i)}/{len(self.maps)} maps "
                         f"(lag-1 autocorrelation up to {worst.moran_i:.2f}, "
                         f"z = {worst.moran_z:.0f} > {th['moran_z']:g})")
        if self.ppp is not None and self.ppp < th["ppp_min"]:
            parts.append(f"posterior predictive p of chi2 {self.ppp:.3g} < {th['ppp_min']:g}")
        text = "adequacy: MISFIT: " + "; ".join(parts)
        if self.remedy:
            text += f" -> {self.remedy}"
        return text

    def status(self, converged: bool) -> str:
        """Convergence and verdict together: never a plain 'converged' on a misfit."""
        base = "converged" if converged else "NOT converged"
        return base if self.adequate else f"{base}, MISFIT"

    def to_dict(self) -> dict:
        """The ``adequacy`` block of summary.json."""
        return {"verdict": self.verdict, "reasons": self.reasons,
                "reduced_chi2": self.reduced_chi2, "ppp_chi2": self.ppp,
                "thresholds": dict(self.thresholds), "remedy": self.remedy,
                "maps": [m.to_dict() for m in self.maps]}


def assess(residuals, map_slices, positions, n_free: int = 0, names=None, ppp=None,
           thresholds: dict | None = None, remedy: str | None = None) -> Adequacy:
    """Adequacy of a fit from its standardised residuals.

    Parameters
    ----------
    residuals : ndarray (n_samples,)
        (data - model) / σ, maps concatenated.
    map_slices : sequence of slice
        Each map's samples in ``residuals``.
    positions : sequence of (u, v)
        Sample directions of each map (rad; any consistent unit).
    n_free : int
        Free parameters of the fit; each map's dof loses its share (∝ its samples).
    names : sequence of str, optional
        Map names for the reasons.
    ppp : float, optional
        Posterior predictive p-value of χ² (posteriors only).
    """
    r = np.asarray(residuals, float)
    n_total = r.size
    out = []
    for i, sl in enumerate(map_slices):
        ri = r[sl]
        u, v = positions[i]
        pairs = neighbour_pairs(u, v)
        mi, mz = morans_i(ri, pairs)
        dof = max(ri.size - n_free * ri.size / n_total, 1.0)
        name = names[i] if names is not None else f"map{i}"
        out.append(MapAdequacy(name, int(ri.size), float(np.sum(ri * ri)), float(dof), mi, mz,
                               int(pairs.shape[0])))
    th = dict(THRESHOLDS)
    th.update(thresholds or {})
    return Adequacy(out, ppp, th, remedy)
