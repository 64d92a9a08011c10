"""Convergence diagnostics of posterior draws, and detection of chains in different modes.

Thresholds (Vehtari et al. 2021, the ArviZ / Stan defaults): rank-normalised split R-hat
≤ 1.01 and bulk and tail ESS ≥ 400 for every parameter, no divergent transition,
E-BFMI ≥ 0.3 in every chain, and no more than 1% of transitions at the maximum tree
depth.  A result that fails any of them says so in plain words (``problems``) and is not
``converged``.

OOF holography has multiple optima (phase wraps, the φ(x, y) ↔ -φ(-x, -y) ambiguity of
a single map).  :func:`chain_modes` groups chains whose draws agree; the samplers report
several groups as multimodality and compute products from one group only, never from an
average across modes.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BFMI_MIN",
    "ESS_MIN",
    "MODE_SEPARATION",
    "RHAT_MAX",
    "TREEDEPTH_DESIGN_MAX",
    "TREEDEPTH_FRACTION",
    "chain_modes",
    "diagnose",
    "rhat_ess_converged",
]

RHAT_MAX = 1.01
ESS_MIN = 400.0
BFMI_MIN = 0.3
TREEDEPTH_FRACTION = 0.01
#: a tree-depth cap at or below this is the sampler's design, not a safeguard: nutpie's
#: default on the whitened density is 2 (short trajectories mix the tails faster,
#: samplers.base.NUTPIE_MAX_DEPTH), and most draws reach it.  Hitting such a cap is reported
#: (``max_treedepth_fraction``) but is no problem: what short trajectories cost in mixing,
#: R-hat and ESS measure.  Above it (NUTS's usual 10) hitting the cap flags bad geometry.
TREEDEPTH_DESIGN_MAX = 4
#: two chains are in the same mode when every coordinate's chain means differ by less
#: than this many sqrt(sd_a² + sd_b²).  Chains of one mode differ by ~1/sqrt(ESS per
#: chain) of that (≲ 0.3 with ESS ≥ 10 per chain, max over ~30 coordinates ≲ 1); distinct
#: optima of OOF holography are separated by many posterior sd (a phase wrap moves K by
#: ~1 wave / mode_rms against sd ~ 1e-3 wave).
MODE_SEPARATION = 2.0


def chain_modes(draws: np.ndarray, lp: np.ndarray | None = None,
                separation: float = MODE_SEPARATION) -> dict:
    """Group chains whose draws agree (same mode of the posterior).

    Parameters
    ----------
    draws : array (chains, draws, d)
        Draws of all free parameters (any coordinates; whitened ones are best).
    lp : array (chains, draws), optional
        Log density of each draw (to rank modes).
    separation : float
        See :data:`MODE_SEPARATION`.

    Returns
    -------
    dict
        ``labels`` (mode of each chain), ``modes`` (list of {chains, mean_lp}),
        ``primary`` (chains of the mode used for products: the mode with most chains,
        ties broken by the higher mean log density), ``multimodal`` (bool),
        ``max_separation`` (largest normalised distance between chain means).
    """
    draws = np.asarray(draws, float)
    n_chains = draws.shape[0]
    if draws.shape[1] < 2:
        return {"labels": [0] * n_chains, "modes": [{"chains": list(range(n_chains)),
                                                      "mean_lp": None}],
                "primary": list(range(n_chains)), "multimodal": False, "max_separation": 0.0}
    mean = draws.mean(axis=1)
    sd = draws.std(axis=1) + 1e-300
    mlp = None if lp is None else np.asarray(lp, float).mean(axis=1)

    def distance(a: int, b: int) -> float:
        return float(np.max(np.abs(mean[a] - mean[b]) / np.sqrt(sd[a] ** 2 + sd[b] ** 2)))

    order = list(range(n_chains))
    if mlp is not None:
        order.sort(key=lambda c: -mlp[c])
    reps: list[int] = []
    labels = [-1] * n_chains
    for c in order:
        for k, r in enumerate(reps):
            if distance(c, r) < separation:
                labels[c] = k
                break
        else:
            reps.append(c)
            labels[c] = len(reps) - 1
    modes = []
    for k in range(len(reps)):
        chains = [c for c in range(n_chains) if labels[c] == k]
        modes.append({
            "chains": chains,
            "mean_lp": None if mlp is None else float(np.mean(mlp[chains])),
        })
    best = max(range(len(modes)), key=lambda k: (len(modes[k]["chains"]),
                                                 modes[k]["mean_lp"] or 0.0))
    max_sep = max((distance(a, b) for a in range(n_chains) for b in range(a + 1, n_chains)),
                  default=0.0)
    return {"labels": labels, "modes": modes, "primary": modes[best]["chains"],
            "multimodal": len(modes) > 1, "max_separation": max_sep}


def rhat_ess_converged(posterior: dict, rhat_max: float = RHAT_MAX,
                       ess_min: float = ESS_MIN) -> bool:
    """Whether every entry has R-hat ≤ ``rhat_max`` and bulk and tail ESS ≥ ``ess_min``.

    ``posterior``: name -> array (chains, draws, ...).  The same ArviZ statistics as
    :func:`diagnose` (the final verdict), without building InferenceData: the stopping
    rule of the NUTS runners calls it on the draws so far.
    """
    import arviz as az

    post = az.convert_to_dataset({k: np.asarray(v, float) for k, v in posterior.items()})
    if post.sizes["draw"] < 4:
        return False
    checks = ((az.rhat(post), lambda v: v <= rhat_max),
              (az.ess(post, method="bulk"), lambda v: v >= ess_min),
              (az.ess(post, method="tail"), lambda v: v >= ess_min))
    return all(bool(np.all(ok(np.asarray(da.values, float))))  # NaN fails both tests
               for ds, ok in checks for da in ds.data_vars.values())


def diagnose(idata, var_names=None, chains=None, max_treedepth: int = 10,
             rhat_max: float = RHAT_MAX, ess_min: float = ESS_MIN,
             replace: dict | None = None) -> dict:
    """R-hat, bulk/tail ESS, divergences, tree depth and E-BFMI, with a plain verdict.

    Parameters
    ----------
    idata : InferenceData
        With ``posterior`` and (for NUTS) ``sample_stats``.
    var_names : list of str, optional
        Parameters to check (default: all posterior variables).
    chains : list of int, optional
        Chains to use (e.g. the primary mode's); default all.
    replace : dict, optional
        ``{name: variable or array}``: judge ``name`` on the draws of ``variable`` (or on
        the array, shaped as ``name``), reported under ``name``: the draws as sampled,
        when ``name`` holds them post-processed (K after the open-faced sandwich,
        :mod:`bayesoof.inference.misfit_adjust`; the shift over a held parameter,
        :mod:`bayesoof.inference.held_marginal`).

    Returns
    -------
    dict
        ``r_hat_max``, ``worst_r_hat`` (parameter), ``ess_bulk_min``, ``ess_tail_min``,
        ``worst_ess``, ``divergences``, ``tree_depth_max``, ``max_treedepth_fraction``
        (of transitions at ``max_treedepth``; a problem only above
        :data:`TREEDEPTH_DESIGN_MAX`),
        ``bfmi`` (per chain), ``problems`` (list of sentences), ``converged`` (bool).
    """
    import arviz as az

    post = idata.posterior
    if replace:
        post = post.assign({name: post[v] if isinstance(v, str) else post[name].copy(data=v)
                            for name, v in replace.items()})
    if var_names is not None:
        post = post[list(var_names)]
    if chains is not None:
        post = post.isel(chain=list(chains))
    out: dict = {"chains_used": [int(c) for c in post.chain.values],
                 "draws_per_chain": int(post.sizes["draw"]), "problems": []}
    if post.sizes["draw"] < 4 or post.sizes["chain"] < 1:
        out["problems"].append("too few draws to assess convergence")
        out["converged"] = False
        return out
    rhat = az.rhat(post)
    ess_b = az.ess(post, method="bulk")
    ess_t = az.ess(post, method="tail")

    def extreme(ds, largest: bool):
        """(value, label) of the largest (or smallest) entry over all variables; NaN worst."""
        best_val, best_name = None, None
        for name, da in ds.data_vars.items():
            vals = np.asarray(da.values, float).ravel()
            if not vals.size:
                continue
            key = np.where(np.isnan(vals), np.inf if largest else -np.inf, vals)
            idx = int(np.argmax(key) if largest else np.argmin(key))
            v = float(vals[idx])
            label = name
            if da.ndim:
                pos = np.unravel_index(idx, da.shape)
                label += "[" + ", ".join(
                    str(da[d].values[i]) if d in da.coords else str(i)
                    for d, i in zip(da.dims, pos, strict=True)
                ) + "]"
            if np.isnan(v):
                return v, label
            if best_val is None or (v > best_val if largest else v < best_val):
                best_val, best_name = v, label
        return best_val, best_name

    n_chains = post.sizes["chain"]
    r_max, r_name = extreme(rhat, True)
    eb_min, eb_name = extreme(ess_b, False)
    et_min, et_name = extreme(ess_t, False)
    out.update({"r_hat_max": r_max, "worst_r_hat": r_name, "ess_bulk_min": eb_min,
                "worst_ess": eb_name, "ess_tail_min": et_min, "worst_ess_tail": et_name})
    if n_chains < 2:
        out["problems"].append("only one chain: R-hat cannot detect non-convergence")
    if r_max is not None and not r_max <= rhat_max:
        out["problems"].append(f"R-hat {r_max:.4f} > {rhat_max} ({r_name})")
    if eb_min is not None and not eb_min >= ess_min:
        out["problems"].append(f"bulk ESS {eb_min:.0f} < {ess_min:.0f} ({eb_name})")
    if et_min is not None and not et_min >= ess_min:
        out["problems"].append(f"tail ESS {et_min:.0f} < {ess_min:.0f} ({et_name})")

    ss = getattr(idata, "sample_stats", None)
    if ss is not None and chains is not None:
        ss = ss.isel(chain=list(chains))
    if ss is not None and "diverging" in ss:
        n_div = int(ss["diverging"].values.sum())
        out["divergences"] = n_div
        if n_div:
            out["problems"].append(
                f"{n_div} divergent transitions (the sampler missed a region of high "
                "curvature: raise target_accept, or reparameterise)"
            )
    if ss is not None and "tree_depth" in ss:
        depth = ss["tree_depth"].values
        out["tree_depth_max"] = int(depth.max()) if depth.size else 0
        out["tree_depth_mean"] = float(depth.mean()) if depth.size else 0.0
        frac = float(np.mean(depth >= max_treedepth)) if depth.size else 0.0
        out["max_treedepth_fraction"] = frac
        if frac > TREEDEPTH_FRACTION and max_treedepth > TREEDEPTH_DESIGN_MAX:
            out["problems"].append(
                f"{100 * frac:.1f}% of transitions hit the maximum tree depth {max_treedepth}"
            )
    if ss is not None and "energy" in ss:
        bfmi = np.atleast_1d(az.bfmi(ss)).astype(float)
        out["bfmi"] = [float(b) for b in bfmi]
        if np.any(bfmi < BFMI_MIN):
            out["problems"].append(
                f"E-BFMI {float(np.min(bfmi)):.2f} < {BFMI_MIN} in some chain (poor "
                "exploration of the energy distribution)"
            )
    out["converged"] = not out["problems"]
    return out
