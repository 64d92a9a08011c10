"""The one Laplace approximation of a run, as the samplers use it to whiten.

:func:`laplace` maps the quick fit's Laplace covariance into PyMC's unconstrained
coordinates at the quick fit's MAP (no second optimisation); :func:`_chol` is the
Cholesky factor used for ``u = u_MAP + chol(Σ_u) z``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from bayesoof.inference import compiled_cache
from bayesoof.inference.density import AffineDensity, flat_point

__all__ = ["LaplaceResult", "hint_tag", "laplace"]


@dataclass
class LaplaceResult:
    """Whitening centre and Laplace covariance in PyMC's unconstrained coordinates."""

    u_mode: np.ndarray
    cov: np.ndarray
    logp: float
    converged: bool
    n_iter: int
    message: str
    wall_time: float
    labels: list[str] = field(default_factory=list)
    #: the model's density with its compiled value and gradient (identity whitening), for
    #: the sampler to re-whiten rather than compile again (None: loaded from a checkpoint)
    density: AffineDensity | None = field(default=None, repr=False, compare=False)


def laplace(model: pm.Model, mode: str | None = None) -> LaplaceResult:
    """The quick fit's Laplace approximation, in PyMC's unconstrained coordinates.

    The sampler whitens with the ONE Laplace covariance of the run, the quick fit's:
    centre ``u_MAP`` = the model's initial point (the fit's MAP through PyMC's
    transforms) and covariance ``Σ_u = D Σ_θ Dᵀ``, with Σ_θ the quick fit's Laplace
    covariance of its free parameters under the likelihood the model samples (the same
    entries in the same order: the model's variables are the blocks of the fit's
    :class:`ParameterSpace`; see :func:`fit_record`) and D = du/dθ at the MAP (diagonal:
    PyMC's transforms act entry by entry).  No second optimisation runs.

    Parameters free in the quick fit but held by the model (``ModelInfo.held``: q, the
    leg geometry) are conditioned on, not marginalised: the covariance of the rest given
    them, ``(Σ_θ⁻¹)[kept, kept]⁻¹``.  (Their marginal block whitened the conditional
    posterior badly where they correlate with it: lat127 with the legs held, 17.5
    gradients per draw and short trees not mixing, against 7.5 and mixing.)  The draws
    are carried over them after sampling (:mod:`bayesoof.inference.held_marginal`).

    Coordinates the quick fit has no variance for (the per-map σ of ``noise='per_map'``,
    entries freed by :func:`build_model`'s options, or every coordinate of a model built
    from a forward model alone) get ``1 / (-∂²logp/∂u_i²)`` at the centre, by central
    differences of the exact gradient (a diagonal Laplace approximation), uncorrelated
    with the rest.  ``mode`` is the compile mode of the log density.
    """
    t0 = time.perf_counter()
    info = model.bayesoof
    # the module-cache keys this kind of run used last time, read before compiling
    compiled_cache.read_module_hints(hint_tag(model))
    base = AffineDensity(model, flat_point(model, model.initial_point()), mode=mode)
    fg = base.logp_dlogp()
    lp, _ = fg(np.zeros(base.dim))
    if not np.isfinite(lp):
        raise FloatingPointError(
            "the log posterior is not finite at the start point (the quick fit's MAP): "
            "check the priors admit it"
        )
    fit = info.fit
    cov = np.zeros((base.dim, base.dim))
    known = np.zeros(base.dim, bool)
    rec = fit_record(fit, info.likelihood)
    if rec is not None:
        theta_pos = {int(f): t for t, f in enumerate(rec.space.free_index)}
        full_of = np.full(base.dim, -1)  # full-vector index of each coordinate
        i = 0
        for v, size in zip(base.value_vars, base.sizes, strict=True):
            rv = model.values_to_rvs[v]
            if info.space.has(rv.name):
                sl = info.space.slice_of(rv.name)
                full_of[i : i + size] = np.arange(sl.start, sl.stop)[info.space.free[sl]]
            i += size
        slope = _transform_slopes(model, base, full_of >= 0)  # du/dθ of each coordinate
        rows = np.array([theta_pos.get(int(f), -1) for f in full_of])
        known = rows >= 0
        k = np.flatnonzero(known)
        cov[np.ix_(k, k)] = _conditional(np.asarray(rec.cov, float), rows[k]) \
            * np.outer(slope[k], slope[k])
    rest = np.flatnonzero(~known)
    for i in rest:  # diagonal Laplace of what the quick fit did not fit
        h = 1e-4
        e = np.zeros(base.dim)
        e[i] = h
        curv = -(fg(e)[1][i] - fg(-e)[1][i]) / (2.0 * h)
        cov[i, i] = 1.0 / curv if curv > 0 else 1.0
    msg = "quick fit's Laplace covariance mapped to PyMC's unconstrained coordinates"
    if rest.size:
        labels = base.label_of()
        msg += f"; diagonal Laplace for {', '.join(labels[i] for i in rest)}"
    return LaplaceResult(
        u_mode=base.center.copy(),
        cov=cov,
        logp=float(lp),
        converged=bool(getattr(fit, "converged", True)),
        n_iter=0,
        message=msg,
        wall_time=time.perf_counter() - t0,
        labels=base.label_of(),
        density=base,
    )


def _conditional(cov: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Gaussian covariance of the entries ``kept`` given all the others, ``(Σ⁻¹)[kept, kept]⁻¹``.

    The plain sub-block when nothing else is there.  Inverted as a correlation matrix (the
    variances span ~4 decades: Zernike terms against amplitudes), then rescaled.
    """
    kept = np.asarray(kept, int)
    if kept.size == cov.shape[0]:
        return cov[np.ix_(kept, kept)]
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    precision = np.linalg.pinv(0.5 * (corr + corr.T), hermitian=True)
    cond = np.linalg.pinv(precision[np.ix_(kept, kept)], hermitian=True)
    return cond * np.outer(sd[kept], sd[kept])


def hint_tag(model: pm.Model) -> str:
    """The tag of a model's module-cache hints (:func:`compiled_cache.read_module_hints`).

    Runs on the same data layout, forward model and model variables share one; it only
    decides which of PyTensor's module-cache keys are read first, never what is compiled.
    """
    info = model.bayesoof
    fm = info.forward
    return repr(("posterior", fm.describe(), int(np.size(fm.observed)), info.likelihood,
                 info.noise, [v.name for v in model.free_RVs]))


def fit_record(fit, likelihood: str):
    """The quick fit's record whose Laplace covariance belongs to the model's likelihood.

    When the model samples the noise-only likelihood, that is the record of the best fit
    before the aperture model error's step (``fit.exact_model_last``, the default) or
    the noise-only record when the fit switched a misfit covariance on
    (``fit.plain_last``); otherwise the last order.  None without a fit.
    """
    if fit is None or getattr(fit, "cov", None) is None:
        return None
    if likelihood != "misfit":
        # the best fit's (the aperture model error at 0, as in the model; its shift and
        # widening are misfit_adjust's), else the noise-only record
        for rec in ("exact_model_last", "plain_last"):
            if getattr(fit, rec, None) is not None:
                return getattr(fit, rec)
    return fit.last if hasattr(fit, "last") else None


def _transform_slopes(model, base: AffineDensity, wanted: np.ndarray) -> np.ndarray:
    """du/dθ of PyMC's transforms at ``base.center``, per flat coordinate (1 elsewhere).

    Central differences (step 1e-6 in u) of every transformed variable that has a
    ``wanted`` coordinate, all in ONE function compiled in FAST_COMPILE (tiny elementwise
    graphs: no C modules, no rewriting worth its time; before, one ``eval`` per
    variable and side: 18 compiles, ~0.5 s).
    """
    slope = np.ones(base.dim)
    u = pt.vector("u", dtype="float64")
    outs, where = [], []
    i = 0
    for v, shp, size in zip(base.value_vars, base.shapes, base.sizes, strict=True):
        rv = model.values_to_rvs[v]
        tr = model.rvs_to_transforms.get(rv)
        if tr is not None and wanted[i : i + size].any():
            piece = u[i : i + size].reshape(shp) if shp else u[i]
            outs.append(pt.flatten(tr.backward(piece, *rv.owner.inputs)))
            where.append(slice(i, i + size))
        i += size
    if not outs:
        return slope
    fn = pytensor.function([u], outs, mode="FAST_COMPILE", on_unused_input="ignore")
    eps = 1e-6
    plus, minus = fn(base.center + eps), fn(base.center - eps)
    for sl, xp, xm in zip(where, plus, minus, strict=True):
        slope[sl] = 2 * eps / (np.asarray(xp, float) - np.asarray(xm, float))
    return slope


def _chol(cov: np.ndarray) -> np.ndarray:
    cov = 0.5 * (cov + cov.T)
    for eps in (0.0, 1e-12, 1e-10, 1e-8, 1e-6):
        try:
            return np.linalg.cholesky(cov + eps * np.diag(np.diag(cov)))
        except np.linalg.LinAlgError:
            continue
    w, v = np.linalg.eigh(cov)
    return v * np.sqrt(np.clip(w, 1e-300, None))
