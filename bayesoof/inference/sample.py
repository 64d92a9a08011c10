"""Full posteriors: NUTS (numpyro on JAX, or PyMC's own) and emcee, started from the MAP.

All samplers see the same log-density: the ``pm.Model`` of :mod:`bayesoof.inference.model` (one
forward graph, one residual definition), written in *whitened* coordinates

    u = u_MAP + L z,      L = chol(Σ_u),   Σ_u = D Σ_θ Dᵀ,

where ``u`` are PyMC's unconstrained values of the free parameters, ``u_MAP`` the quick
fit's MAP through PyMC's transforms, Σ_θ the quick fit's Laplace covariance of its free
parameters (the same :class:`~bayesoof.inference.params.ParameterSpace` entries, in the
same order) and D = du/dθ at the MAP (:func:`laplace`): the ONE Laplace approximation of
a run, reported in the summary, used to whiten.  Near the mode the posterior in ``z`` is
close to N(0, I), so the strong correlations of OOF holography (taper, amplitude and
defocus terms; tilts and pointing) no longer slow the samplers down: NUTS with a
diagonal mass matrix, or emcee's affine-invariant moves, see a nearly isotropic target.
The Jacobian of the map is constant, so the draws of ``z`` mapped back through ``u`` are
draws of the model's posterior (whitening changes the efficiency, never the target).

Every chain starts inside the mode found by the quick fit: ``z ~ N(0, jitter² I)``
(jitter 0.1 by default) instead of PyMC's U(-1, 1) jitter of the unconstrained values,
which for K in waves lands chains in far phase-wrapped modes.  Chains that still
disagree are reported (:mod:`bayesoof.inference.diagnostics`), never averaged.

Samplers (one argument, ``sampler``; each one module of :mod:`bayesoof.inference.samplers`,
registered by name, so that ``bayesoof sample --sampler`` offers every one):

* ``"numpyro"`` -- numpyro's NUTS kernel on the JAX backend (the log-density graph is
  compiled by pytensor's JAX linker), driven in chunks of iterations so that one
  compilation serves warm-up and sampling and Ctrl-C keeps the finished chunks.  Chains
  run in parallel when JAX has one CPU device per core: :func:`sample` sets
  ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` when JAX has not started
  yet (else chains are vectorised on one device).
* ``"pymc"`` -- PyMC's NUTS on the same graph (C backend, BLAS limited to one thread):
  always available; chains in worker processes unless JAX has already started in the
  process (fork() is then unsafe, chains run in turn).
* ``"nuts"`` -- the first installed of nutpie, numpyro, PyMC (fastest first, measured;
  :data:`~bayesoof.inference.samplers.base.NUTS_PREFERENCE`).
* ``"emcee"`` -- emcee's ensemble sampler on the same log-density (vectorised over the
  walkers with ``jax.vmap``; walkers start from the Laplace approximation), returned as
  InferenceData with walkers as chains.
* ``"nutpie"`` -- nutpie's NUTS (Rust; chains in worker processes) calling the same whitened
  density compiled by the C backend.

Measured (bench/bench_sample.py, bench/RESULTS.md "Sampling": order 5, three 127 × 127
maps, 27 free parameters, 2-core CPU shared with other jobs): the whitened posterior
needs tree depth 3 (7 gradients per draw), no divergence, bulk ESS ≈ 2 per draw; CPU per
gradient, everything included, nutpie 6.7-7.5 ms, numpyro 7.3 ms, PyMC 8.0 ms. Defaults
(``Sampler.default_tune`` / ``default_draws`` of the NUTS runners): 4 chains, 100 warm-up
iterations (200 or 300 did not lower the draws needed), 50 for nutpie (3 seeds each: no
later stops than with 100, ~1 400 fewer gradients; bench/RESULTS.md "session 4"). R-hat
(ArviZ's rank-normalised split R-hat), not ESS, sets the length, and it hovers around
1.01 between ~350 and ~700 draws per chain, so nutpie (the default NUTS) runs **until
converged** (:func:`convergence_rule`: the final verdict's R-hat ≤ 1.01, bulk and tail
ESS ≥ 400 over every free parameter, checked on the first n draws of every chain at n =
300, 350, ..., at most 1500 draws; ``until_converged`` / ``draws`` of
:func:`run_sampler`): it stopped at 350-500 draws in the runs of bench/RESULTS.md
"Stopping when converged", where a fixed length needed 750. PyMC's and numpyro's NUTS run
a fixed 750 draws.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pymc as pm

from bayesoof.inference import compiled_cache
from bayesoof.inference.density import AffineDensity, have_jax
from bayesoof.inference.diagnostics import chain_modes, rhat_ess_converged
from bayesoof.inference.laplace import LaplaceResult, _chol, hint_tag, laplace
from bayesoof.inference.samplers import RawDraws, available_samplers, default_nuts, get_sampler
from bayesoof.inference.samplers.base import StopRule
from bayesoof.inference.threads import blas_threads

__all__ = [
    "AffineDensity",
    "SAMPLERS",
    "RawDraws",
    "convergence_rule",
    "have_jax",
    "laplace",
    "resolve_sampler",
    "run_sampler",
    "sample",
    "sample_model",
    "sampler_names",
]

_COMMON = ("draws", "tune", "chains", "seed", "jitter", "progressbar")


def sampler_names() -> tuple[str, ...]:
    """Names ``sampler=`` takes: 'nuts' and every registered sampler."""
    return ("nuts", *available_samplers())


#: 'nuts' and every registered sampler (bayesoof.inference.samplers)
SAMPLERS = sampler_names()


def resolve_sampler(sampler: str) -> str:
    """The registered sampler a name stands for ('nuts': :func:`default_nuts`)."""
    if sampler == "nuts":
        return default_nuts()
    return get_sampler(sampler).name


def convergence_rule(density: AffineDensity) -> StopRule:
    """The final verdict's R-hat / ESS test as a :class:`StopRule` for one run.

    On the first n draws of each chain: the chains of the primary mode
    (:func:`~bayesoof.inference.diagnostics.chain_modes`), every free variable of the
    model on its constrained scale, K as sampled (what
    :func:`~bayesoof.inference.posterior.assemble` diagnoses, before any open-faced
    sandwich adjustment of K), R-hat ≤ 1.01 and bulk and tail ESS ≥ 400
    (:func:`~bayesoof.inference.diagnostics.rhat_ess_converged`).  Divergences, tree depth
    and E-BFMI are left to the final verdict: more draws do not mend them.
    """
    names = [v.name for v in density.model.free_RVs]
    constrained = density.constrained_fn()
    seen: dict = {}  # the draws mapped so far: z (chains, n, d) and name -> (chains, n, ...)

    def converged(z: np.ndarray, stats: dict) -> bool:
        chains, n, d = z.shape
        have = seen["z"].shape[1] if seen else 0
        if not seen or n < have or not np.array_equal(z[:, :have], seen["z"]):
            have = 0  # another run's draws: start again
            seen.clear()
            seen.update({"z": z[:, :0], **{k: None for k in names}})
        if n > have:
            new = constrained(z[:, have:n].reshape(-1, d))
            for k in names:
                v = new[k].reshape((chains, n - have) + new[k].shape[1:])
                seen[k] = v if seen[k] is None else np.concatenate([seen[k], v], axis=1)
            seen["z"] = z[:, :n].copy()
        primary = chain_modes(z[:, :n], None if stats.get("lp") is None
                              else np.asarray(stats["lp"])[:, :n])["primary"]
        return rhat_ess_converged({k: seen[k][primary, :n] for k in names})

    return StopRule(converged)


def run_sampler(
    density: AffineDensity,
    sampler: str = "nuts",
    draws: int | None = None,
    tune: int | None = None,
    chains: int = 4,
    seed: int = 0,
    jitter: float = 0.1,
    progressbar: bool | None = None,
    until_converged: bool | None = None,
    **options,
) -> RawDraws:
    """Run one registered sampler on a whitened density; return draws of ``z`` and statistics.

    Parameters
    ----------
    density : AffineDensity
        The model's log posterior in whitened coordinates ``z``.
    sampler : str
        'nuts' or a registered name (:func:`sampler_names`).
    draws, tune : int or None
        Kept iterations per chain and warm-up iterations (an ensemble sampler: steps kept
        per walker after ``tune`` burn-in steps); None: the sampler's defaults
        (``Sampler.default_draws``, ``default_tune``).  With ``until_converged``,
        ``draws`` is the cap.
    until_converged : bool or None
        Stop at the first check where the draws so far are converged
        (:func:`convergence_rule`; checks every ``NUTS_CHECK_EVERY`` draws from
        ``NUTS_CHECK_FIRST`` on, :class:`~bayesoof.inference.samplers.base.StopRule`).
        None (default): when no ``draws`` are given and the sampler can (it takes a
        ``stop`` option: nutpie); then ``draws`` is its cap ``default_draws``.
    chains : int
        Chains (NUTS).
    seed : int
        Seeds the start points and the sampler: the same seed gives the same draws.
    jitter : float
        NUTS chains start at ``z ~ N(0, jitter² I)``: inside the MAP's mode.
    progressbar : bool or None
        Report progress on stderr (:mod:`bayesoof.inference.progress`: a live line on a
        terminal or in a notebook, a log line every 10 % or 30 s otherwise).  None
        (default): on in a Jupyter notebook, off in scripts.
    **options
        Options of the sampler (``Sampler.options``: ``target_accept``,
        ``max_tree_depth``, ``chain_method``, ``chunk`` for numpyro; ``cores``,
        ``compile_mode`` for PyMC; ``walkers``, ``emcee_init``, ``thin`` for emcee;
        ``on_checkpoint`` for numpyro, PyMC and emcee: called with the :class:`RawDraws` so far
        every :data:`bayesoof.inference.checkpoint.INTERVAL` s, ...).
        Options of other registered samplers are ignored; unknown ones raise TypeError.
    """
    spec = get_sampler(resolve_sampler(sampler))
    until_converged = _until_converged(spec, draws, until_converged)
    draws = spec.default_draws if draws is None else draws
    tune = spec.default_tune if tune is None else tune
    known = set().union(*(s.options for s in available_samplers().values())) - {"stop"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"run_sampler: unknown option(s) {unknown}; known: {sorted(known)}")
    mine = {k: v for k, v in options.items() if k in spec.options}
    if until_converged:
        mine["stop"] = convergence_rule(density)
    return spec.run(density, draws=draws, tune=tune, chains=chains, seed=seed, jitter=jitter,
                    progressbar=progressbar, **mine)


def _until_converged(spec, draws, until_converged) -> bool:
    """Whether a run of ``spec`` stops when converged (see :func:`run_sampler`)."""
    if until_converged is None:
        return draws is None and "stop" in spec.options
    if until_converged and "stop" not in spec.options:
        raise ValueError(f"sampler {spec.name!r} cannot stop when converged "
                         "(until_converged=True): give draws instead")
    return bool(until_converged)


# ====================================================================== public API
def sample_model(
    model: pm.Model,
    sampler: str = "nuts",
    draws: int | None = None,
    tune: int | None = None,
    chains: int = 4,
    seed: int = 0,
    laplace_result: LaplaceResult | None = None,
    products: bool = True,
    n_predictive: int = 100,
    prior_draws: int = 0,
    checkpoint=None,
    recipe: dict | None = None,
    misfit_adjust: bool = True,
    marginalise_held: bool = True,
    **kwargs,
):
    """Sample the posterior of a model built by :func:`bayesoof.inference.model.build_model`.

    Whitens with the quick fit's Laplace approximation (:func:`laplace`), runs
    ``sampler`` (a registered one, or 'nuts') and assembles a
    :class:`bayesoof.inference.posterior.PosteriorResult`.  ``n_predictive`` thinned draws give the
    posterior predictive beams; ``prior_draws`` > 0 adds the ``prior`` and
    ``prior_predictive`` groups.  Extra keywords go to :func:`run_sampler`.

    ``checkpoint``: a directory; the raw draws are written there
    (:mod:`bayesoof.inference.checkpoint`) as soon as sampling ends, before assembly, and
    every minute during long numpyro / emcee runs; ``recipe`` says how to rebuild the
    model for :func:`bayesoof.inference.checkpoint.finish`.

    ``misfit_adjust``: when the quick fit switched its misfit covariance on (the adequacy
    test failed) or marginalised the aperture model error, and the likelihood is the
    noise-only one, carry the draws of K onto the fit's covariance
    (:mod:`bayesoof.inference.misfit_adjust`); under the fit's misfit likelihood only
    when the model error was marginalised (``posterior.k_adjustable``); False keeps the
    draws as sampled.

    ``marginalise_held``: carry the draws over the parameters the model holds at the
    quick fit's values (``ModelInfo.held``: a poorly identified q), linearly with the
    fit's covariance (:mod:`bayesoof.inference.held_marginal`); False keeps them
    conditional on the held values.
    """
    from bayesoof.inference import checkpoint as ckpt
    from bayesoof.inference.posterior import assemble

    t0 = time.perf_counter()
    name = resolve_sampler(sampler)
    spec = get_sampler(name)
    until = _until_converged(spec, draws, kwargs.pop("until_converged", None))
    draws = spec.default_draws if draws is None else draws
    tune = spec.default_tune if tune is None else tune
    mode = kwargs.get("compile_mode")
    if mode is None:
        mode = "JAX" if spec.compile_mode == "JAX" and have_jax() else "FAST_RUN"
    if "compile_mode" in spec.options:
        kwargs["compile_mode"] = mode
    if spec.prepare is not None:
        spec.prepare()
    with blas_threads(1):
        lap = laplace_result or laplace(model, mode=mode)
        density = _whitened(model, lap, mode)
        settings = {"sampler": name, "draws": draws, "tune": tune, "chains": chains,
                    "seed": seed, "until_converged": until, "misfit_adjust": bool(misfit_adjust),
                    "marginalise_held": bool(marginalise_held),
                    **{k: v for k, v in kwargs.items() if _jsonable(v)}}
        if checkpoint is not None:
            def keep(partial_raw, _d=density):  # periodic: the draws so far
                ckpt.save_raw(checkpoint, partial_raw, _d, lap, settings, recipe, partial=True)

            kwargs["on_checkpoint"] = keep
        raw = run_sampler(density, name, draws=draws, tune=tune, chains=chains, seed=seed,
                          until_converged=until, **kwargs)
        if checkpoint is not None:  # before anything else can fail
            ckpt.save_raw(checkpoint, raw, density, lap, settings, recipe)
        result = assemble(model, density, raw, lap, settings, t0, products=products,
                          n_predictive=n_predictive, seed=seed)
        # what this run's compiles read from PyTensor's module cache, for the next run
        compiled_cache.note_module_hints(hint_tag(model))
        if prior_draws and result.idata is not None:
            from bayesoof.inference.model import prior_predictive

            result.idata.extend(prior_predictive(model, draws=prior_draws, seed=seed))
        return result


def _whitened(model, lap: LaplaceResult, mode: str) -> AffineDensity:
    """The sampler's density, ``u = u_MAP + chol(Σ_u) z`` (curved on the leg geometry).

    The Laplace step's density re-whitened (its compiled value and gradient kept) when it
    is this model's in this mode, else a new one.  :func:`_whitening` gives the map.
    """
    base = lap.density
    if base is None or base.model is not model or base.mode != mode:
        base = AffineDensity(model, lap.u_mode, mode=mode)
    chol, curve = _whitening(lap.cov, base.curved_index)
    return base.whiten(lap.u_mode, chol, curve)


def _whitening(cov: np.ndarray, curved: np.ndarray):
    """``(chol, curve)`` of the curved whitening (:class:`AffineDensity`) of ``cov``.

    The Cholesky factor of Σ_u with the curved coordinates ℓ (the leg geometry) ordered
    first, so that u_ℓ depends on z_ℓ only (the map's Jacobian stays constant), and
    ``curve`` = Σ_u[:, ℓ] Σ_u[ℓ, ℓ]⁻¹ (zero on ℓ): the regression of every other
    coordinate on u_ℓ, which the density applies to the physical leg values.  At the
    centre the map has the same linearisation as the plain ``chol(Σ_u)`` (the same
    Laplace approximation); away from it the correlated coordinates follow the legs along
    their bounded, curved ridge.  Without curved coordinates, or if Σ_u needs the
    eigen-decomposition fallback of :func:`_chol` (not triangular), the plain affine map.
    """
    curved = np.asarray(curved, int)
    if curved.size == 0:
        return _chol(cov), None
    rest = np.setdiff1d(np.arange(cov.shape[0]), curved)
    perm = np.r_[curved, rest]
    chol_p = _chol(cov[np.ix_(perm, perm)])
    if not np.allclose(chol_p, np.tril(chol_p)):
        return _chol(cov), None
    chol = np.empty_like(chol_p)
    chol[perm] = chol_p  # z in the order perm: u_ℓ = c_ℓ + chol_p[:n_ℓ, :n_ℓ] z_ℓ
    curve = np.zeros((cov.shape[0], curved.size))
    block = cov[np.ix_(curved, curved)]
    curve[rest] = np.linalg.solve(block, cov[np.ix_(curved, rest)]).T
    return chol, curve


def _jsonable(v) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


def sample(
    data,
    telescope=None,
    order: int = 5,
    sampler: str = "nuts",
    draws: int | None = None,
    tune: int | None = None,
    chains: int = 4,
    seed: int = 0,
    priors=None,
    fit_result=None,
    fit_kwargs: dict | None = None,
    model_kwargs: dict | None = None,
    save_dir=None,
    products: bool = True,
    **kwargs,
):
    """Full posterior of the aperture phase: quick fit, then NUTS or emcee from the MAP.

    Parameters
    ----------
    data : BeamMaps, str or Path
        Beam maps (or a file :func:`bayesoof.data.fitsio.read_beam_maps` reads).
    telescope : Telescope or str
        Telescope preset name, TOML path or Telescope.
    order : int
        Largest Zernike order.
    sampler : str
        'nuts' (the fastest NUTS installed: :func:`default_nuts`) or a registered sampler
        (:func:`sampler_names`: numpyro, pymc, emcee, nutpie).
    draws, tune : int or None
        Kept draws and warm-up iterations per chain; None: the sampler's defaults
        (:func:`run_sampler`).
    chains : int
        Chains (emcee: walkers are chosen from the dimension, see ``walkers``; ``chains``
        is ignored).
    seed : int
        Seeds the quick fit's restarts, the chain jitter and the sampler: same seed, same
        draws.
    priors : None, str, Path or dict
        Prior settings (:func:`bayesoof.inference.model.load_priors`).
    fit_result : FitResult, optional
        Reuse a quick fit instead of running one.
    fit_kwargs, model_kwargs : dict, optional
        Extra keywords of :func:`bayesoof.fit` and
        :func:`bayesoof.inference.model.build_model`.
    save_dir : path, optional
        Save the quick fit and the posterior into a new run directory under it.
    products : bool
        Compute the phase / surface maps and rms posteriors.
    **kwargs
        ``n_predictive`` and ``prior_draws`` of :func:`sample_model`; sampler settings of
        :func:`run_sampler` (``target_accept``, ``jitter``, ``walkers``, ``chain_method``,
        ``progressbar``...).

    Returns
    -------
    PosteriorResult
        Never raises on interruption: Ctrl-C keeps the MAP and the draws made so far
        (``result.interrupted``).
    """
    from bayesoof.inference.model import build_model

    if fit_result is None:
        from bayesoof.inference.fit import fit as quick_fit

        kw = dict(fit_kwargs or {})
        kw.setdefault("seed", seed)
        if telescope is not None:
            kw["telescope"] = telescope
        fit_result = quick_fit(data, order=order, **kw)
    run_dir = None
    if save_dir is not None:
        from bayesoof.inference import checkpoint as ckpt

        run_dir = fit_result.save(save_dir)
        kwargs.setdefault("checkpoint", run_dir)
        fk = dict(fit_kwargs or {})
        fk.setdefault("seed", seed)
        kwargs.setdefault("recipe", ckpt.recipe(data, telescope or fit_result.telescope,
                                                fit_result.order, fk, priors, model_kwargs))
    model = build_model(fit_result, priors=priors, **(model_kwargs or {}))
    try:
        result = sample_model(model, sampler=sampler, draws=draws, tune=tune, chains=chains,
                              seed=seed, products=products, **kwargs)
    except Exception as exc:
        where = kwargs.get("checkpoint")
        if where is not None and (Path(where) / "raw_draws.npz").is_file():
            exc.add_note(f"the draws are kept in {where}: finish with "
                         f"bayesoof.inference.checkpoint.finish({str(where)!r}) or "
                         f"'bayesoof finish {where}'")
        raise
    except KeyboardInterrupt:
        from bayesoof.inference.posterior import PosteriorResult

        warnings.warn("interrupted before any draw was kept: only the MAP is available",
                      stacklevel=2)
        result = PosteriorResult.empty(model, fit_result, interrupted=True)
    result.fit = fit_result
    if run_dir is not None:
        with contextlib.suppress(TypeError):
            run_dir = os.fspath(run_dir)
        result.save(run_dir)
    return result
