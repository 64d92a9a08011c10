"""nutpie's NUTS (Rust) on the same whitened log density.

Backends (``backend``):

* ``"pytensor"`` (default) -- nutpie calls the density's PyTensor function compiled by the
  C backend, one copy per chain, through ``nutpie.compiled_pyfunc.from_pyfunc``.  The
  kernel Ops of the transforms have C and JAX versions only, so this is nutpie's one
  route to the C kernels.  Every chain is its own nutpie sampler (seeded from the run's
  seed and its index), run in worker processes forked after the density is compiled
  (``processes``; default one per chain on a machine with several cores): the C thunks
  hold Python's GIL, so chain threads of one process share one core
  (:mod:`.nutpie_chains`, bench/RESULTS.md "session 4").
* ``"jax"`` / ``"numba"`` -- ``nutpie.compile_pymc_model`` on a PyMC model of one flat
  vector ``z`` with the density as a potential (numba cannot compile the kernel Ops); the
  chains are nutpie's threads in this process.

This process looks at the draws every ``POLL_S`` s: a ``stop`` rule
(:class:`~bayesoof.inference.samplers.base.StopRule`) ends the run at its first converged
check, periodic checkpoints save the draws so far, Ctrl-C keeps the draws every chain made.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from bayesoof.inference.samplers.base import (
    NUTPIE_LONG_DEPTH,
    NUTPIE_MAX_DEPTH,
    NUTPIE_PROBE_DRAWS,
    NUTPIE_PROBE_ESS_PER_DRAW,
    NUTPIE_TUNE,
    NUTS_DRAWS_MAX,
    PeriodicCheckpoint,
    RawDraws,
    Sampler,
    register,
)


def _available() -> str | None:
    try:
        import nutpie  # noqa: F401
    except ImportError:
        return "needs nutpie (pip install nutpie)"
    return None


def _pymc_model(density, backend: str):
    import nutpie
    import pymc as pm
    from pytensor.graph.replace import graph_replace

    with pm.Model() as zmodel:
        z = pm.Flat("z", shape=density.dim)
        pm.Potential("logp", graph_replace(density.logp_graph, {density.z: z}, strict=False))
    return nutpie.compile_pymc_model(zmodel, backend=backend, gradient_backend=backend)


def run(density, *, draws, tune, chains, seed, jitter=0.1, progressbar=False,
        backend="pytensor", cores=None, processes=None, target_accept=0.8,
        max_tree_depth=None, stop=None, on_checkpoint=None) -> RawDraws:
    """Run nutpie on ``density``; nutpie adapts a diagonal mass matrix during ``tune``.

    ``max_tree_depth``: at most 2**depth leapfrog steps per draw.  None ('pytensor'):
    short trees (:data:`~bayesoof.inference.samplers.base.NUTPIE_MAX_DEPTH`) while they
    mix, checked after ``NUTPIE_PROBE_DRAWS`` draws (:func:`short_trees_mix`), else a new
    run with ``NUTPIE_LONG_DEPTH`` (``raw.info["max_tree_depth"]`` says which, and
    ``raw.info["short_trees_dropped_gradients"]`` what the dropped run cost; they are also
    counted in ``n_grad``); None ('jax', 'numba'):
    ``NUTPIE_LONG_DEPTH``.

    ``backend``: 'pytensor' (C-compiled density; chain ``c`` starts at
    ``z ~ N(0, jitter² I)`` drawn from ``(seed, c)``), 'jax' or 'numba' (nutpie compiles
    the density; its own jitter around ``z = 0``).  ``processes`` ('pytensor'): worker
    processes the chains are spread over (None: one per chain when this machine has
    several cores, :func:`~.nutpie_chains.default_processes`; 1: threads of this process);
    the draws do not depend on it.  ``cores`` ('jax', 'numba'): chains run at once
    (threads; default all).  ``stop``: a
    :class:`~bayesoof.inference.samplers.base.StopRule`; the run is checked at the rule's
    draws and ends at the first converged check, keeping the first n draws of every chain
    (``draws`` is the cap).  ``on_checkpoint``: called with the draws so far every
    :func:`checkpoint_interval` s.  Ctrl-C keeps the draws every chain has made.
    """
    t0 = time.perf_counter()
    if backend == "pytensor":
        return _run_c(density, draws, tune, chains, seed, jitter, progressbar, processes,
                      target_accept, max_tree_depth, stop, on_checkpoint, t0)
    import nutpie

    d = density.dim
    if backend in ("jax", "numba"):
        compiled = density.cached(("nutpie", backend), lambda: _pymc_model(density, backend))
    else:
        raise ValueError(f"nutpie backend must be 'pytensor', 'jax' or 'numba', got {backend!r}")
    t_start = time.perf_counter()
    sampler = nutpie.sample(
        compiled, draws=draws, tune=tune, chains=chains, cores=cores or chains,
        seed=int(seed), progress_bar=bool(progressbar), init_mean=np.zeros(d),
        save_warmup=True, target_accept=target_accept,
        maxdepth=int(max_tree_depth or NUTPIE_LONG_DEPTH),
        blocking=False,
    )
    checks = stop.checks(draws) if stop is not None else []
    saver = PeriodicCheckpoint(on_checkpoint, lambda: _raw(
        _look(sampler), None, t0, t_start, backend, partial=True))
    keep, interrupted = None, False
    try:
        while not _finished(sampler) and keep is None and (checks or on_checkpoint):
            time.sleep(POLL_S)
            if checks:
                keep = _first_converged(stop, checks, _look(sampler))
            saver.tick()
        trace = sampler.abort() if keep is not None else sampler.wait()
    except KeyboardInterrupt:
        trace, interrupted = sampler.abort(), True
    if keep is None and checks and not interrupted:  # finished before every check was seen
        keep = _first_converged(stop, checks, trace)
    raw = _raw(trace, keep, t0, t_start, backend, partial=interrupted)
    raw.info["max_tree_depth"] = int(max_tree_depth or NUTPIE_LONG_DEPTH)
    raw.interrupted = interrupted or raw.z.shape[1] < (keep or draws)
    if stop is not None:
        raw.info["stopped_at"] = raw.z.shape[1]
        raw.info["converged_check"] = keep is not None
    return raw


def _run_c(density, draws, tune, chains, seed, jitter, progressbar, processes,
           target_accept, max_tree_depth, stop, on_checkpoint, t0) -> RawDraws:
    """The 'pytensor' backend: one nutpie sampler per chain (:mod:`.nutpie_chains`)."""
    from bayesoof.inference.samplers.nutpie_chains import default_processes, run_chains

    fn = density.function("FAST_RUN")  # the C backend's (the Laplace step's, when FAST_RUN)
    processes = default_processes(chains) if processes is None else max(1, int(processes))
    processes = min(processes, chains)
    t_start = time.perf_counter()

    def to_raw(z, stats, counts, keep=None, partial=False) -> RawDraws:
        return _raw_arrays(z, stats, counts, keep, density.dim, t0, t_start, partial,
                           processes)

    def chains_run(depth, probe):
        return run_chains(
            fn, density.dim, draws=draws, tune=tune, chains=chains, seed=seed, jitter=jitter,
            target_accept=target_accept, max_tree_depth=depth, processes=processes,
            stop=stop, probe=probe, progressbar=progressbar,
            on_checkpoint=None if on_checkpoint is None else (
                lambda got: on_checkpoint(to_raw(*got, partial=True))))

    auto = max_tree_depth is None
    depth = NUTPIE_MAX_DEPTH if auto else int(max_tree_depth)
    z, stats, counts, keep, interrupted, mixes = chains_run(
        depth, (NUTPIE_PROBE_DRAWS, short_trees_mix) if auto else None)
    dropped = None
    if not mixes:  # short trees random-walk here: start again with long ones
        dropped = counts["n_grad"]
        warnings.warn(f"nutpie: trees of depth <= {depth} do not mix on this posterior (bulk "
                      f"ESS < {NUTPIE_PROBE_ESS_PER_DRAW} per draw after "
                      f"{NUTPIE_PROBE_DRAWS} draws); sampling again with depth <= "
                      f"{NUTPIE_LONG_DEPTH}", RuntimeWarning, stacklevel=3)
        depth = NUTPIE_LONG_DEPTH
        z, stats, counts, keep, interrupted, _ = chains_run(depth, None)
        counts = {k: v + dropped for k, v in counts.items()}  # all paid for
    raw = to_raw(z, stats, counts, keep, interrupted)
    raw.info["max_tree_depth"] = depth
    if dropped is not None:
        raw.info["short_trees_dropped_gradients"] = dropped
    raw.interrupted = interrupted or raw.z.shape[1] < (keep or draws)
    if stop is not None:
        raw.info["stopped_at"] = raw.z.shape[1]
        raw.info["converged_check"] = keep is not None
    return raw


def short_trees_mix(z: np.ndarray) -> bool:
    """Whether draws ``z`` (chains, n, d) of short trees mix.

    True when the bulk ESS of every whitened coordinate is at least
    NUTPIE_PROBE_ESS_PER_DRAW x chains x n (0.05: 20 of 400 draws).  Measured at 100 draws
    per chain and depth 2 (4 chains): order 5, 3 x 127² lattice, 0.28 per draw (converged
    at 500 draws); the order-3 31² case of tests/inference/test_sample.py, where such trees
    random-walk (K(2,0)), 0.014 (bulk ESS 9 after 1 500 draws).
    """
    import arviz as az

    chains, n, _ = z.shape
    ess = az.ess(az.convert_to_dataset(np.asarray(z)))["x"].values
    return bool(np.all(np.isfinite(ess))
                and ess.min() >= NUTPIE_PROBE_ESS_PER_DRAW * chains * n)


def _raw_arrays(z, stats, counts, keep, d, t0, t_start, partial, processes) -> RawDraws:
    """RawDraws of per-chain nutpie arrays: the first ``keep`` draws (None: all made)."""
    z_all = np.zeros((0, 0, d)) if z is None else z
    post = z_all if keep is None else z_all[:, :keep]
    n = post.shape[1]
    shape = post.shape[:2]

    def stat(name, fallback):
        return np.asarray(stats[name])[:, :n] if name in stats else fallback

    n_steps = stat("n_steps", np.ones(shape, int)).astype(int)
    out = {
        "diverging": stat("diverging", np.zeros(shape, bool)).astype(bool),
        "n_steps": n_steps,
        "tree_depth": stat("depth", np.ceil(np.log2(n_steps + 1.0))).astype(int),
        "energy": stat("energy", np.full(shape, np.nan)).astype(float),
        "lp": stat("logp", np.full(shape, np.nan)).astype(float),
        "acceptance_rate": stat("mean_tree_accept", np.full(shape, np.nan)).astype(float),
        "step_size": stat("step_size", np.full(shape, np.nan)).astype(float),
        "reached_max_treedepth": stat("maxdepth_reached", np.zeros(shape, bool)).astype(bool),
    }
    return RawDraws(
        z=post, stats=out, n_grad=counts["n_grad"],
        n_grad_sampling=counts["n_grad"] - counts["n_grad_warmup"],
        wall_time=time.perf_counter() - t0, sampling_time=time.perf_counter() - t_start,
        interrupted=partial, info={"backend": "pytensor", "processes": int(processes),
                                   "draws_made_beyond_kept": int(z_all.shape[0] * (
                                       z_all.shape[1] - n))},
    )


#: seconds between two looks at a running nutpie sampler (a look, nutpie's inspect(), costs
#: ~20-40 ms of CPU; the checks come every ~10-20 s at order 5)
POLL_S = 2.0


def _look(sampler):
    """nutpie's copy of the trace so far (ArviZ's notice of fewer draws than chains hushed)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"More chains \(\d+\) than draws")
        return sampler.inspect()


def _finished(sampler) -> bool:
    """Whether nutpie's background sampler is done (0.16 raises TimeoutError while it runs)."""
    try:
        return bool(sampler.is_finished)
    except TimeoutError:
        return False


def _posterior_arrays(idata):
    """(z (chains, n, d), stats name -> (chains, n)) of the draws EVERY chain has made."""
    post = getattr(idata, "posterior", None)
    if post is None or "z" not in post:
        return None, {}
    z = np.asarray(post["z"].values, float)
    done = ~np.isnan(z).any(axis=2)  # chains run at their own pace; nutpie pads with NaN
    n = int(np.min(np.sum(np.cumprod(done, axis=1), axis=1))) if z.size else 0
    ss = idata.sample_stats
    return z[:, :n], {k: np.asarray(ss[k].values)[:, :n] for k in ss.data_vars
                      if ss[k].ndim == 2}


def _first_converged(stop, checks: list[int], idata) -> int | None:
    """Run the due checks (removing them from ``checks``); the first converged n or None."""
    z, stats = _posterior_arrays(idata)
    while checks and z is not None and checks[0] <= z.shape[1]:
        n = checks.pop(0)
        if stop.converged(z[:, :n], {"lp": stats["logp"][:, :n]} if "logp" in stats else {}):
            return n
    return None


def _raw(idata, keep, t0, t_start, backend, partial=False) -> RawDraws:
    """RawDraws of a nutpie trace: the first ``keep`` draws of every chain (None: all)."""
    z_all, _ = _posterior_arrays(idata)
    post = np.zeros((0, 0, 0)) if z_all is None else z_all
    if keep is not None:
        post = post[:, :keep]
    n = post.shape[1]
    ss = idata.sample_stats if z_all is not None else {}
    warm = getattr(idata, "warmup_sample_stats", None)
    shape = post.shape[:2]

    def stat(name, fallback):
        return np.asarray(ss[name].values)[:, :n] if name in ss else fallback

    def total(group) -> int:  # every gradient made (padding of unfinished chains is 0)
        return int(np.nansum(group["n_steps"].values)) if group is not None and \
            "n_steps" in group else 0

    n_steps = stat("n_steps", np.ones(shape, int))
    depth = stat("depth", np.ceil(np.log2(n_steps + 1.0)).astype(int))
    stats = {
        "diverging": stat("diverging", np.zeros(shape, bool)).astype(bool),
        "n_steps": n_steps,
        "tree_depth": depth,
        "energy": stat("energy", np.full(shape, np.nan)),
        "lp": stat("logp", np.full(shape, np.nan)),
        "acceptance_rate": stat("mean_tree_accept", np.full(shape, np.nan)),
        "step_size": stat("step_size", np.full(shape, np.nan)),
        "reached_max_treedepth": stat("maxdepth_reached", np.zeros(shape, bool)),
    }
    n_sampling = total(ss if z_all is not None else None)
    return RawDraws(
        z=post, stats=stats, n_grad=total(warm) + n_sampling, n_grad_sampling=n_sampling,
        wall_time=time.perf_counter() - t0, sampling_time=time.perf_counter() - t_start,
        interrupted=partial, info={"backend": backend, "draws_made_beyond_kept": int(
            0 if z_all is None else np.sum(~np.isnan(z_all[:, n:, 0])))},
    )


register(Sampler(
    "nutpie", run, "nutpie's NUTS (Rust) on the C-compiled density (or nutpie's jax/numba)",
    options={"backend": "pytensor", "cores": None, "processes": None, "target_accept": 0.8,
             "max_tree_depth": None, "stop": None, "on_checkpoint": None},
    available=_available, compile_mode="FAST_RUN",
    default_draws=NUTS_DRAWS_MAX, default_tune=NUTPIE_TUNE,
))
