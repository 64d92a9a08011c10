"""Posterior draws of K carried onto the quick fit's misfit covariance (open-faced sandwich).

When the adequacy test finds a misfit, the quick fit replaces its noise-only Laplace
covariance by a misfit covariance (``[misfit]``, by default the spatial-HAC sandwich;
README, "Model adequacy").  The posterior of the noise-only likelihood is as narrow as
the noise-only Laplace covariance -- too narrow for the same misfit.  The draws of the
free K are therefore mapped affinely onto that covariance::

    K' = K̄ + M (K - K̄),   M = Σ_H^{1/2} Σ_P^{-1/2}

with K̄ and Σ_P the posterior mean and covariance of the draws (primary chains) and Σ_H
the quick fit's misfit covariance of the same coefficients (symmetric square roots): the
"open-faced sandwich" adjustment of Shaby (2014, J. Comput. Graph. Stat. 23, 853) for
posteriors of misspecified likelihoods.  K' has covariance Σ_H exactly, the posterior
mean, and the posterior's shape (skewness, tails) beyond its covariance.  Σ_H includes
the uncertainty of parameters the fit frees and the posterior holds (its own K
uncertainty is conditional on them), so the interval is that of the quick fit's choice.
The noise-only draws are kept (``K_noise_only``); the posterior predictive beams are the
model's (unadjusted) ones.

The aperture model error (:mod:`bayesoof.inference.model_error`, on by default) is
marginalised the same way: the model samples θ at a = 0 (the best fit's model, whose
nuisances are then as calibrated as without it), and its K draws are moved by the fit's
joint step and carried onto the fit's marginal covariance,
``K' = K̄ + (K̂_joint - K̂) + M (K - K̄)``, the linearised marginalisation of a as in the
quick fit.  (Holding a at its estimate instead left the nuisances' draws conditional on
it: 31 of 42 truths inside the 90 % intervals of tests/inference/test_sample_calibration.py,
below its accepted 32.)  Under the quick fit's misfit likelihood (``likelihood="misfit"``,
on by default after a ``covariance = "gls"`` fit) the draws already carry that
likelihood's covariance but not the model error's: they are carried onto the fit's
marginal covariance the same way when the model error was marginalised.
"""

from __future__ import annotations

import numpy as np

# Σ_P is estimated from at least this many draws per adjusted coefficient (+1): from the
# primary chains when they have that many, else from every chain, else no adjustment
MIN_DRAWS_PER_DIM = 5

# Σ_P's eigenvalues below this fraction of its largest are treated as this floor when
# Σ_P^{-1/2} is formed (a K the draws hardly move must not be blown up by rounding)
EIG_FLOOR = 1e-12


def _sqrt_psd(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Symmetric square root (or inverse square root) of a covariance matrix."""
    w, v = np.linalg.eigh(0.5 * (cov + cov.T))
    w = np.maximum(w, EIG_FLOOR * max(float(w.max()), 0.0) + np.finfo(float).tiny)
    return (v / np.sqrt(w)) @ v.T if inverse else (v * np.sqrt(w)) @ v.T


def adjustment_matrix(draws_cov: np.ndarray, target_cov: np.ndarray) -> np.ndarray:
    """``M = Σ_H^{1/2} Σ_P^{-1/2}``: ``M Σ_P Mᵀ = Σ_H`` (both (p, p), any units)."""
    return _sqrt_psd(target_cov) @ _sqrt_psd(draws_cov, inverse=True)


def adjust(draws: np.ndarray, centre: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``centre + M (draws - centre)`` over the last axis of ``draws`` (..., p)."""
    return centre + (draws - centre) @ matrix.T


def target_covariance(fit, free_j: np.ndarray):
    """The quick fit's misfit / model-error covariance of the K ``free_j`` (J indices), or None.

    None when the fit kept its noise-only, exact-model covariance (adequate, or
    ``remedy = "never"``, and no model error marginalised).  Returns ``(cov, keep,
    shift)``: ``keep`` (bool over ``free_j``) marks the K free in the fit too (the others,
    fixed there, are left as drawn), ``shift`` the model error's joint step of those K
    (zeros without it).
    """
    if fit is None or (getattr(fit, "plain_last", None) is None
                       and getattr(fit, "exact_model_last", None) is None):
        return None
    free_fit = fit.last.space.free[: len(fit.last.space.nl)]
    keep = free_fit[np.asarray(free_j, int)]
    idx = np.asarray(free_j, int)[keep]
    exact = getattr(fit, "exact_model_last", None)
    shift = (np.zeros(idx.size) if exact is None
             else fit.last.space.values[idx] - exact.space.values[idx])
    return fit.last.K_cov()[np.ix_(idx, idx)], keep, shift


def adjust_posterior_K(K: np.ndarray, primary, fit, free_j) -> tuple[np.ndarray, dict] | None:
    """K draws (chains, draws, n_K) carried onto the fit's misfit covariance, or None.

    ``primary``: the chains whose draws define K̄ and Σ_P (the posterior's primary mode;
    every chain when those have fewer than ``MIN_DRAWS_PER_DIM`` draws per coefficient).
    Returns the adjusted draws and a record of what was done (for the summary).
    """
    target = target_covariance(fit, free_j)
    if target is None:
        return None
    cov_h, keep, shift = target
    if not keep.any():
        return None
    need = MIN_DRAWS_PER_DIM * (int(keep.sum()) + 1)
    flat = K[list(primary)].reshape(-1, K.shape[-1])[:, keep]
    if flat.shape[0] < need:
        flat = K.reshape(-1, K.shape[-1])[:, keep]
        if flat.shape[0] < need:
            return None
    centre = flat.mean(axis=0)
    cov_p = np.atleast_2d(np.cov(flat, rowvar=False))
    M = adjustment_matrix(cov_p, cov_h)
    out = K.copy()
    out[..., keep] = adjust(K[..., keep], centre, M) + shift
    sd_p, sd_h = np.sqrt(np.diag(cov_p)), np.sqrt(np.diag(cov_h))
    unc = fit.uncertainty or {}
    me = getattr(fit, "model_error", None)
    record = {
        "method": "open-faced sandwich (Shaby 2014): K' = mean + M (K - mean), "
                  "M = cov_fit^1/2 cov_draws^-1/2",
        "target": unc.get("model", "misfit") if unc.get("switched_on") else
                  "model error" if me else unc.get("model", "misfit"),
        "reason": unc.get("reason", ""),
        "model_error": None if me is None else me["model"],
        "shift_max_sd": float(np.max(np.abs(shift) / np.sqrt(np.diag(cov_h)))),
        "coefficients": int(keep.sum()),
        "sd_ratio_median": float(np.median(sd_h / sd_p)),
        "sd_ratio_range": [float(np.min(sd_h / sd_p)), float(np.max(sd_h / sd_p))],
    }
    return out, record


def sentence(record: dict, fit) -> str:
    """One phrase for the verdict line."""
    model = getattr(fit, "misfit_model", None)
    what = model.sentence() if model is not None else record["target"]
    me = getattr(fit, "model_error", None)
    if me is not None:
        what = (f"{what} with the " if model is not None else "") + (
            f"aperture model error (rms {me['rms']:g}) marginalised")
    return (f"posterior K widened to the quick fit's {what} (open-faced sandwich; sd × "
            f"{record['sd_ratio_range'][0]:.1f}-{record['sd_ratio_range'][1]:.1f})")
