"""The aperture-amplitude model error, marginalised in the quick fit's Laplace approximation.

The parametric aperture amplitude (blockage × illumination taper) is never the dish's:
legs, shadows, feed pattern and spill-over differ from the preset, and data made by another
code carry its discretisation (pyoof point-samples a coarse aperture).  Such an error mostly
lies in the span of the model's own derivatives (K, taper, leg width absorb it; the
residuals stay white), so no residual-based covariance can widen for it (misspecification
study, bench/RESULTS.md).  It needs a prior on the model error itself::

    A(x, y) → A(x, y) (1 + Σ_b a_b U_b(r/R, θ)),   a_b ~ Normal(0, rms² / (J ρ_b²)),

over the Zernike modes b = 1..J of order ≤ ``[model_error] order`` (piston left out: it is
the map amplitude; ρ_b the rms of U_b over the unit disc), so that every mode adds the same
variance and the relative error has an expected mean square rms² over the dish.  The
forward model takes ``a`` as its ``aperture_error`` input (the same graph; the parameter
block ``aperture_error``, fixed, so that the fit's objective gives ∂r/∂a without another
compilation).  From the quick fit's optimum θ̂ (a = 0), Gauss-Newton steps of the joint
problem in (θ, a) with the prior on a (:data:`GAUSS_NEWTON_STEPS`; the first is):

    H = AᵀA + P,  P = diag(0, 1 / sd_a²),   (Δθ, â) = -H⁻¹ Aᵀ r,   Σ = H⁻¹ (M + P) H⁻¹

with A = [J_θ, J_a] the Jacobian of the standardised residuals r and M the data part of the
score covariance: AᵀA for the noise-only likelihood (then Σ = H⁻¹, the marginal Laplace
covariance), the spatial-HAC or discrepancy meat when the misfit covariance is switched on
(:func:`bayesoof.inference.fit.misfit_refit`).  The reported solution is the joint one,
(θ̂ + Δθ, â), evaluated exactly (model beams, residuals, χ² and the adequacy verdict at
it), its covariance the θ block of Σ; the best fit at a = 0 stays as
``FitResult.exact_model_last``.  The posterior samples θ of that best fit's model (a = 0),
and its K draws are moved by the joint step and carried onto Σ
(:mod:`bayesoof.inference.misfit_adjust`).  Measured on the misspecification study (quick
fit, order 8, rms 5 %): bench/RESULTS.md.
"""

from __future__ import annotations

import time

import numpy as np

from bayesoof.inference.params import Block, ParameterSpace
from bayesoof.inference.results import OrderResult
from bayesoof.physics import zernike

__all__ = ["APERTURE_ERROR", "add_model_error_block", "apply_model_error", "error_columns",
           "joint_jacobian", "marginalise", "prior_sd", "shift_in_sd"]

APERTURE_ERROR = "aperture_error"

# Gauss-Newton steps of the joint problem from the fit's optimum, each one Jacobian of the
# objective: the two-stage gravity estimate then differs from the joint one of
# tests/campaign/test_gravity.py's check (5 fits, order 2, 17 x 17 maps) by 0.062 sd of K
# after one step, 0.029 after two, 0.016 after three (0.008 without the model error)
GAUSS_NEWTON_STEPS = 2


def n_terms(order: int) -> int:
    """Number of error modes of ``order``: Zernike modes 1..n_coeffs(order) - 1."""
    return zernike.n_coeffs(int(order)) - 1


def prior_sd(order: int, rms: float) -> np.ndarray:
    """Prior sd of each error mode (J,): rms / (√J ρ_b), ρ_b the rms of U_b over the disc."""
    nl = zernike.nl_list(int(order))[1:]
    rho = np.array([zernike.mode_rms(n, l) for n, l in nl])
    return float(rms) / (np.sqrt(len(nl)) * rho)


def add_model_error_block(space: ParameterSpace, cfg: dict) -> ParameterSpace:
    """Append the ``aperture_error`` block (``[model_error]``), fixed at 0; return ``space``.

    Fixed in the fit, which uses only its Jacobian (:func:`apply_model_error` then sets it
    to its estimate in the joint solution), and 0 in the sampled model (built from the
    best fit; a NumPy zero vector leaves the graph as it was).  Its prior
    Normal(0, :func:`prior_sd`) is the one a model that frees it would use.
    """
    me = cfg.get("model_error", {})
    if not me.get("aperture", False) or cfg["fit"]["residual"] != "likelihood":
        return space
    order, rms = int(me["order"]), float(me["rms"])
    J = n_terms(order)
    nl = zernike.nl_list(order)[1:]
    space.add_block(
        Block(APERTURE_ERROR, (J,), "", tuple(f"aperture_error({n},{l})" for n, l in nl),
              ("aperture_mode",), {"n": tuple(n for n, _ in nl), "l": tuple(l for _, l in nl)},
              arg=APERTURE_ERROR, held=True, prior="model_error.aperture",
              default_prior={"dist": "normal", "mu": 0.0,
                             "sigma": tuple(prior_sd(order, rms).tolist())}),
        value=0.0, free=False,
    )
    return space


def marginalise(jac, jac_a, r, sd_a, meat=None, a=None):
    """Joint Gauss-Newton step and marginal covariance of θ, the model error a marginalised.

    ``jac`` (n, p) ∂r/∂θ, ``jac_a`` (n, J) ∂r/∂a, ``r`` (n,) standardised residuals at
    the error ``a`` (default 0); a ~ Normal(0, sd_a²) (``sd_a`` (J,) or a scalar).
    ``meat`` (p + J, p + J): the data part of the score covariance (default AᵀA, the
    noise-only likelihood).
    Returns (Δθ (p,), Δa (J,), Σ_θ (p, p)).  Columns are scaled to unit norm before the
    solve (θ's units differ by decades); a direction neither the data nor the prior
    constrain gets no step and no variance (as in ``fit.laplace_covariance``).
    """
    p, J = jac.shape[1], jac_a.shape[1]
    A = np.hstack([jac, jac_a])
    prior = np.r_[np.zeros(p), np.broadcast_to(1.0 / np.asarray(sd_a, float) ** 2, (J,))]
    gram = A.T @ A
    H = gram + np.diag(prior)
    norms = np.sqrt(np.diag(H))
    norms[norms == 0] = 1.0
    Hs = H / np.outer(norms, norms)
    w, v = np.linalg.eigh(0.5 * (Hs + Hs.T))
    keep = w > 1e-20 * w.max()
    Hinv = ((v[:, keep] / w[keep]) @ v[:, keep].T) / np.outer(norms, norms)
    grad = A.T @ r
    if a is not None:  # the prior's gradient at a
        grad[p:] += prior[p:] * np.asarray(a, float)
    step = -Hinv @ grad
    M = gram if meat is None else meat
    cov = Hinv @ (M + np.diag(prior)) @ Hinv
    return step[:p], step[p:], 0.5 * (cov[:p, :p] + cov[:p, :p].T)


def joint_jacobian(objective, space: ParameterSpace, observed, sigma, free=True):
    """(r, ∂r/∂θ_free, ∂r/∂a) at ``space``'s values, from the fit's compiled objective.

    With ``free=False`` only the error's columns are computed (∂r/∂θ_free is None): the
    block is a held part of the objective, so none of θ's tangents run.
    """
    a_index = np.arange(space.n_full)[space.slice_of(APERTURE_ERROR)]
    theta = space.free_index if free else np.zeros(0, int)
    r, jac = objective.jacobian(space.values, np.r_[theta, a_index], observed, sigma)
    return r, (jac[:, : theta.size] if free else None), jac[:, theta.size:]


def _free_k(space: ParameterSpace) -> np.ndarray:
    """Positions of the free K in the free vector (``space.free_index`` order)."""
    sl, fi = space.slice_of("K"), space.free_index
    return np.flatnonzero((fi >= sl.start) & (fi < sl.stop))


def shift_in_sd(result) -> float:
    """Largest |K - K_best fit| of the free K in units of their reported sd (0 without K).

    Call again after the misfit policy: the sd it reports may have changed.
    """
    exact = getattr(result, "exact_model_last", None)
    if exact is None:
        return 0.0
    last = result.last
    k = _free_k(last.space)
    if not k.size:
        return 0.0
    free = last.space.free_index[k]
    sd = last.sd[k]
    moved = np.abs(last.space.values[free] - exact.space.values[free])
    return float(np.max(moved / np.where(sd > 0, sd, np.inf)))


def error_columns(result, objective, observed, sigma):
    """``f(space) -> (∂r/∂a, prior sd of a)``, or None without the model error.

    For the misfit covariances of :func:`bayesoof.inference.fit.misfit_refit`.
    """
    if getattr(result, "model_error", None) is None or not result.last.space.has(APERTURE_ERROR):
        return None
    cfg = result.config["model_error"]
    sd_a = prior_sd(int(cfg["order"]), float(cfg["rms"]))

    last = result.last

    def columns(space: ParameterSpace):
        if last.jacobian_error is not None and np.array_equal(space.values, last.space.values):
            return last.jacobian_error, sd_a  # (computed by apply_model_error there)
        return joint_jacobian(objective, space, observed, sigma, free=False)[2], sd_a

    return columns


def apply_model_error(result, objective) -> None:
    """Marginalise the aperture model error into ``result``'s last order (in place).

    Does nothing unless the space has the ``aperture_error`` block (``[model_error]
    aperture`` with the likelihood's residual).  ``objective`` is the fit's compiled
    :class:`~bayesoof.inference.fit.Objective`: ∂r/∂a is its Jacobian along the block's
    (fixed) entries.  The best fit is kept as ``result.exact_model_last``; the new last
    order is the joint solution with the noise-only marginal covariance (the misfit
    policy, run after this, may replace that covariance); ``result.model_error``
    summarises the step.
    """
    last = result.last
    if not last.space.has(APERTURE_ERROR):
        return
    t0 = time.perf_counter()
    cfg = result.config["model_error"]
    order, rms = int(cfg["order"]), float(cfg["rms"])
    sd_a = prior_sd(order, rms)
    sigma = np.ascontiguousarray(result.sigma, float)
    observed = np.ascontiguousarray(result.forward.observed, float)
    new = last.space.copy()
    free, err = new.free_index, new.slice_of(APERTURE_ERROR)
    # at the best fit ∂r/∂θ is the fit's own: only the error's columns are new
    r, jac, jac_a = last.residuals, last.jacobian, joint_jacobian(
        objective, new, observed, sigma, free=False)[2]
    for _ in range(GAUSS_NEWTON_STEPS):
        step, step_a, _ = marginalise(jac, jac_a, r, sd_a, a=new.values[err])
        new.values[free] = np.clip(new.values[free] + step, new.lower[free], new.upper[free])
        new.values[err] += step_a
        r, jac, jac_a = joint_jacobian(objective, new, observed, sigma)
    _, _, cov = marginalise(jac, jac_a, r, sd_a)
    if last.covariance_scaled:  # ([fit] covariance_scale = "chi2"): scaled as the fit's
        cov = cov * float(r @ r) / last.dof
    a_hat = new.values[err]
    result.exact_model_last = last
    result.orders[-1] = OrderResult(
        order=last.order, space=new, cov=cov, chi2=float(r @ r), dof=last.dof, residuals=r,
        jacobian=jac, converged=last.converged, status=last.status, message=last.message,
        n_eval=last.n_eval, n_jac=last.n_jac + GAUSS_NEWTON_STEPS + 1, n_iter=last.n_iter,
        wall_time=last.wall_time + time.perf_counter() - t0,
        start_costs=list(last.start_costs), at_bound=list(last.at_bound), rcond=last.rcond,
        covariance_scaled=last.covariance_scaled, init=last.init,
        power=objective.power(new.values), cold_start=last.cold_start, jacobian_error=jac_a,
    )
    k = _free_k(new)
    sd0, sd1 = last.sd[k], np.sqrt(np.diag(cov))[k]
    result.model_error = {
        "model": "aperture amplitude error, marginalised (Laplace)",
        "order": order, "terms": int(a_hat.size), "rms": rms,
        # rms over the disc of the estimated error Σ â_b U_b (modes orthogonal there)
        "rms_estimated": float(np.sqrt(np.sum((a_hat * rms / np.sqrt(a_hat.size) / sd_a)
                                              ** 2))),
        "K_sd_ratio_median": float(np.median(sd1 / sd0)) if k.size else 1.0,
        "K_sd_ratio_range": ([float(np.min(sd1 / sd0)), float(np.max(sd1 / sd0))]
                             if k.size else [1.0, 1.0]),
        "K_shift_max_sd": shift_in_sd(result),
        "chi2_best_fit": float(last.chi2),
        "meaning": (f"a relative aperture-amplitude error of rms {rms:g} (Zernike modes of "
                    f"order <= {order}) marginalised: the solution is the joint one (the "
                    "error at its estimate), the covariance the marginal one; the best fit "
                    "without it is chi2_best_fit"),
        "wall_time_s": time.perf_counter() - t0,
    }
