"""Zernike order selection by the Laplace evidence, with the GBT observers' checks beside it.

**Criterion**: the log evidence (marginal likelihood) of each order in the Laplace
approximation about its least-squares solution θ̂ (d free parameters)::

    ln Z_N = -χ²(θ̂)/2 + Σ_K ln N(K̂_j; 0, s_j²) + (d/2) ln 2π - ½ ln det(JᵀJ + P)

with J the Jacobian of the standardised residuals, the K priors of the PyMC model
(``presets/priors/default.toml``: ``s_j = rms / mode_rms(n, l)``, 0.1 wave of rms phase
per mode; tilts ``tilt_rms``) and P their precision (0 for the nuisance parameters).
The nuisance parameters (amplitudes, offsets, illumination) are the same in every order
under flat priors: their constant cancels between orders.  Terms common to all orders
(the σ normalisation of the likelihood) are dropped.  The evidence rewards fit and
penalises every added term by its Occam factor ~ ln(s_j / sd_j), so it neither
under- nor over-fits at high S/N (PSIS-LOO on a Laplace approximation would need
per-sample log-likelihoods of many draws for the same answer).

The order with the largest ln Z is chosen; orders within ``threshold`` (1 nat, a
Bayes factor below e: "not worth more than a bare mention", Kass & Raftery 1995) of the
best are reported as indistinguishable from it, and the lowest of them is chosen.

**GBT checks** (PTCS PN 76; reported, not used to choose): per order, the phase map's
largest |φ| on the rim (ρ > 0.9) against the interior's (edge excursions; GBT wants
broad features within ±1.5 rad), the share of rim variance in the azimuthal harmonics of
the highest order (regular features round the rim), and the change of the pointing
(tilt K(1,±1) → offset K λ / R) and of the focus term K(2,0) from the previous order, in
units of their Laplace sd (jumps between orders).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bayesoof.physics import zernike

__all__ = ["OrderSelection", "fit_auto", "gbt_checks", "laplace_evidence", "select_order"]

THRESHOLD = 1.0  # nats: |Δ ln Z| below this, orders cannot be told apart
PRIOR_RMS = 0.1  # waves of rms phase per mode (presets/priors/default.toml [zernike] rms)
TILT_RMS = 0.1  # waves (tilt_rms)
EDGE_LIMIT = 1.5  # rad: GBT "broad features within ±1.5 rad"
JUMP_SIGMA = 3.0  # a pointing/focus change between orders beyond 3 sd is flagged
RIM_SHARE = 0.5  # highest-order harmonics carrying > half the rim variance are flagged
RIM_RMS = 0.5  # rad: ... when the rim rms exceeds this


def _prior_sd(nl, prior_rms: float, tilt_rms: float) -> np.ndarray:
    return np.array([(tilt_rms if n == 1 else prior_rms) / zernike.mode_rms(n, l)
                     for n, l in nl])


def laplace_evidence(o, prior_rms: float = PRIOR_RMS, tilt_rms: float = TILT_RMS) -> float:
    """ln Z of one order (``OrderResult``) in the Laplace approximation (see module doc)."""
    sp = o.space
    J = len(sp.nl)
    idx = sp.free_index
    Jac = np.asarray(o.jacobian)
    H = Jac.T @ Jac
    sd = _prior_sd(sp.nl, prior_rms, tilt_rms)
    is_k = idx < J
    kk = idx[is_k]
    P = np.zeros(idx.size)
    P[is_k] = 1.0 / sd[kk] ** 2
    K = sp.values[kk]
    log_prior = float(np.sum(-0.5 * math.log(2 * math.pi) - np.log(sd[kk]) - 0.5 * (K / sd[kk])
                             ** 2))
    sign, logdet = np.linalg.slogdet(H + np.diag(P))
    if sign <= 0:
        return float("-inf")
    return -0.5 * o.chi2 + log_prior + 0.5 * idx.size * math.log(2 * math.pi) - 0.5 * logdet


def gbt_checks(result, o, prev=None, n_grid: int = 101) -> dict:
    """The GBT observers' checks of one order (see the module docstring)."""
    from bayesoof.products.maps import phase_map

    sp = o.space
    J = len(sp.nl)
    K = sp.values[:J].copy()
    K[:3] = 0.0  # piston and tilt are not surface
    pm = phase_map(K, None, result.telescope.radius, result.data.wavelength, n_grid)
    xx, yy = np.meshgrid(pm.x, pm.y)
    rho = np.hypot(xx, yy) / result.telescope.radius
    ok = np.isfinite(pm.phase)
    rim, inner = ok & (rho > 0.9), ok & (rho <= 0.9)
    edge = float(np.max(np.abs(pm.phase[rim]))) if rim.any() else 0.0
    interior = float(np.max(np.abs(pm.phase[inner]))) if inner.any() else 0.0
    # rim ring at ρ = 0.95: variance carried by the highest order's azimuthal harmonics
    th = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    U = zernike.zernike_basis(max(n for n, _ in sp.nl), np.full_like(th, 0.95), th)[:, :J]
    ring = 2 * np.pi * U @ K
    top = np.array([n == o.order and abs(l) >= max(o.order - 1, 2) for n, l in sp.nl])
    ring_top = 2 * np.pi * U @ np.where(top, K, 0.0)
    var = float(np.var(ring))
    share = float(np.var(ring_top) / var) if var > 0 else 0.0
    out = {
        "edge_max_abs_rad": edge, "interior_max_abs_rad": interior,
        "edge_excursion": bool(edge > EDGE_LIMIT and edge > 2 * interior),
        "rim_rms_rad": float(np.sqrt(var)), "rim_top_harmonic_share": share,
        "rim_features": bool(share > RIM_SHARE and np.sqrt(var) > RIM_RMS),
    }
    if prev is not None:
        lam, R = result.data.wavelength, result.telescope.radius
        sd_now, sd_prev = o.full_sd()[:J], prev.full_sd()[:J]
        jumps = {}
        for name, j, scale, unit in (("pointing_u", 2, lam / R * 206264.806, "arcsec"),
                                     ("pointing_v", 1, lam / R * 206264.806, "arcsec"),
                                     ("focus", 4, 1.0, "wave")):
            if j >= prev.space.values.size:
                continue
            d = float(sp.values[j] - prev.space.values[j])
            s = float(np.hypot(sd_now[j], sd_prev[j]))
            jumps[name] = {"change": d * scale, "unit": unit,
                           "sigma": abs(d) / s if s > 0 else float("inf" if d else 0.0)}
        out["jumps_from_previous"] = jumps
        out["jump"] = bool(any(v["sigma"] > JUMP_SIGMA for v in jumps.values()))
    return out


@dataclass
class OrderSelection:
    """Per-order criterion and checks, the choice, and the orders it cannot be told from."""

    per_order: list
    selected_order: int
    indistinguishable: list
    best_order: int
    threshold: float = THRESHOLD

    def to_dict(self) -> dict:
        """JSON-ready record (written into summary.json as ``order_selection``)."""
        return {
            "criterion": "laplace_evidence",
            "definition": "ln Z = -chi2/2 + ln prior(K) + d/2 ln 2pi - 1/2 ln det(J^T J + P); "
                          f"K prior N(0, ({PRIOR_RMS} / mode_rms)^2) waves, nuisance flat",
            "threshold_nats": self.threshold,
            "selected_order": self.selected_order,
            "best_order": self.best_order,
            "indistinguishable": self.indistinguishable,
            "per_order": self.per_order,
        }

    def lines(self) -> list[str]:
        """Human-readable table and verdict."""
        out = [f"{'order':>5s} {'free':>5s} {'chi2':>12s} {'ln Z':>12s} {'Δ ln Z':>9s} "
               f"{'P(order)':>9s}  GBT checks"]
        for r in self.per_order:
            c = r["checks"]
            flags = [k for k in ("edge_excursion", "rim_features", "jump") if c.get(k)]
            out.append(f"{r['order']:5d} {r['n_free']:5d} {r['chi2']:12.6g} "
                       f"{r['log_evidence']:12.3f} {r['delta']:9.3f} {r['probability']:9.3g}  "
                       f"edge {c['edge_max_abs_rad']:.2f} rad, rim share "
                       f"{c['rim_top_harmonic_share']:.2f}"
                       + (f", FLAGS: {', '.join(flags)}" if flags else ""))
        if len(self.indistinguishable) > 1:
            out.append(
                f"orders {', '.join(map(str, self.indistinguishable))} cannot be told apart "
                f"(ln Z within {self.threshold:g} of the best, order {self.best_order}); "
                f"choosing the lowest: order {self.selected_order}")
        else:
            out.append(f"selected order {self.selected_order} (Laplace evidence; next best "
                       "differs by more than "
                       f"{self.threshold:g} nat)")
        return out


def select_order(result, prior_rms: float = PRIOR_RMS, tilt_rms: float = TILT_RMS,
                 threshold: float = THRESHOLD, candidates=None) -> OrderSelection:
    """Choose the order of a quick fit that fitted several orders (``FitResult.orders``).

    Every order is judged as fitted, without the aperture model error: the last order's
    record before that step (``exact_model_last``), like the orders below it.
    """
    fitted = list(result.orders)
    if getattr(result, "exact_model_last", None) is not None:
        fitted[-1] = result.exact_model_last
    orders = [o for o in fitted if candidates is None or o.order in candidates]
    if not orders:
        raise ValueError("no fitted order among the candidates")
    lz = np.array([laplace_evidence(o, prior_rms, tilt_rms) for o in orders])
    best = int(np.argmax(lz))
    p = np.exp(lz - lz[best])
    p /= p.sum()
    close = [o.order for o, z in zip(orders, lz, strict=True) if lz[best] - z < threshold]
    rows = []
    for i, o in enumerate(orders):
        prev = orders[i - 1] if i else None
        rows.append({"order": o.order, "n_free": int(o.space.free.sum()), "chi2": float(o.chi2),
                     "log_evidence": float(lz[i]), "delta": float(lz[i] - lz[best]),
                     "probability": float(p[i]), "converged": bool(o.converged),
                     "checks": gbt_checks(result, o, prev)})
    return OrderSelection(rows, min(close), close, orders[best].order, threshold)


def _start_at(o) -> dict:
    """Start values (the ``params`` form of ``fit``) from one order of a fit."""
    sp = o.space
    J = len(sp.nl)
    start = {"K": sp.values[:J].copy(), "amp": sp.values[sp.amp_slice].copy(),
             "offset": sp.values[sp.offset_slice].copy()}
    for k, i in sp.illum_index.items():
        start[k] = float(sp.values[i])
    if sp.pointing_slice:
        start["pointing"] = sp.values[sp.pointing_slice].copy()
    return start


def fit_auto(data, telescope="effelsberg", max_order: int = 5, config=None,
             selection_kwargs=None, **fit_kwargs):
    """Fit orders 1..max_order (each to full tolerance), choose one; ``(result, selection)``.

    The returned FitResult is the fit at the selected order (refitted from the solution
    found, so its parameter space is that order's); ``result.order_selection`` holds
    the :class:`OrderSelection` (also written into summary.json by ``save``).
    """
    from bayesoof.inference.fit import fit
    from bayesoof.inference.params import load_fit_config

    cfg = load_fit_config(config, order=max_order)
    # every order is a candidate: fit each as tightly as the last one
    cfg["fit"]["chi2_tol_intermediate"] = cfg["fit"]["chi2_tol"]
    # ... and with the same free set: nuisances (inference/nuisances.py) free at every order
    cfg["fit"]["nuisances_last_order_only"] = False
    full = fit(data, telescope, order=max_order, config=cfg, **fit_kwargs)
    sel = select_order(full, **(selection_kwargs or {}))
    res = full
    if sel.selected_order != full.order:
        # the result at the selected order is a fit of that order (its own forward model
        # and parameter space), started at the solution already found: a few iterations
        chosen = next(o for o in full.orders if o.order == sel.selected_order)
        kw = {k: v for k, v in fit_kwargs.items() if k not in ("orders", "start")}
        res = fit(full.data, full.telescope, order=sel.selected_order, config=cfg,
                  orders=[sel.selected_order], start=_start_at(chosen), **kw)
    res.order_selection = sel
    return res, sel
