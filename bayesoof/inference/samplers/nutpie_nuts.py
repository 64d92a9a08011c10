"""nutpie's NUTS (Rust) on the same whitened log density.

Backends (``backend``):

* ``"pytensor"`` (default) -- nutpie calls the density's PyTensor function compiled by the
  C backend (``AffineDensity.logp_dlogp``), one copy per chain, through
  ``nutpie.compiled_pyfunc.from_pyfunc``.  The kernel Ops of the transforms have C and JAX
  versions only, so this is nutpie's one route to the C kernels.  The C thunks hold
  Python's GIL, so the chains share one core for most of a gradient (NumPy's products
  release it).
* ``"jax"`` / ``"numba"`` -- ``nutpie.compile_pymc_model`` on a PyMC model of one flat
  vector ``z`` with the density as a potential (numba cannot compile the kernel Ops).

nutpie runs in the background (``nutpie.sample(..., blocking=False)``) while this thread
looks at the draws every :data:`POLL_S` s: a ``stop`` rule
(:class:`~bayesoof.inference.samplers.base.StopRule`) ends the run at its first converged
check, periodic checkpoints save the draws so far, Ctrl-C keeps the draws every chain made.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from bayesoof.inference.samplers.base import (
    NUTS_DRAWS_MAX,
    NUTS_TUNE,
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


def _pyfunc_model(density, seed: int, jitter: float):
    """nutpie model calling the C-compiled ``z -> (logp, dlogp)``; one function per chain.

    Chains start at ``z ~ N(0, jitter² I)`` (the MAP's mode), as the other NUTS runners.
    """
    from nutpie.compiled_pyfunc import from_pyfunc

    from bayesoof.inference.density import compile_function

    d = density.dim
    fn = density.cached(("nutpie-c",), lambda: compile_function(
        [density.z], [density.logp_graph, density.grad_graph], mode="FAST_RUN"))

    def make_logp_fn():
        f = fn.copy()  # PyTensor functions keep their buffers: one per chain thread

        def logp(z):
            lp, g = f(np.asarray(z, float))
            lp = float(lp)
            if not np.isfinite(lp):
                lp = -np.inf
            return lp, np.ascontiguousarray(g, dtype=np.float64)

        return logp

    def make_expand_fn(seed1, seed2, chain):
        return lambda z: {"z": np.array(z, dtype=np.float64)}

    return from_pyfunc(
        d, make_logp_fn, make_expand_fn, [np.dtype("float64")], [(d,)], ["z"],
        # nutpie passes a seed derived from the run's seed and the chain: same seed, same start
        make_initial_point_fn=lambda chain_seed: np.random.default_rng(
            [int(seed), int(chain_seed)]).normal(0.0, jitter, d),
    )


def _pymc_model(density, backend: str):
    import nutpie
    import pymc as pm
    from pytensor.graph.replace import graph_replace

    with pm.Model() as zmodel:
        z = pm.Flat("z", shape=density.dim)
        pm.Potential("logp", graph_replace(density.logp_graph, {density.z: z}, strict=False))
    return nutpie.compile_pymc_model(zmodel, backend=backend, gradient_backend=backend)


def run(density, *, draws, tune, chains, seed, jitter=0.1, progressbar=False,
        backend="pytensor", cores=None, target_accept=0.8, stop=None,
        on_checkpoint=None) -> RawDraws:
    """Run nutpie on ``density``; nutpie adapts a diagonal mass matrix during ``tune``.

    ``backend``: 'pytensor' (C-compiled density, chains start at ``z ~ N(0, jitter² I)``),
    'jax' or 'numba' (nutpie compiles the density; its own jitter around ``z = 0``).
    ``cores``: chains run at once (threads; default all chains).  ``stop``: a
    :class:`~bayesoof.inference.samplers.base.StopRule`; the run (nutpie's background
    sampler) is then checked at the rule's draws and ends at the first converged check,
    keeping the first n draws of every chain (``draws`` is the cap).  ``on_checkpoint``:
    called with the draws so far every :func:`checkpoint_interval` s.  Ctrl-C keeps the
    draws every chain has made.
    """
    import nutpie

    t0 = time.perf_counter()
    d = density.dim
    if backend == "pytensor":
        compiled = _pyfunc_model(density, seed, jitter)
    elif backend in ("jax", "numba"):
        compiled = density.cached(("nutpie", backend), lambda: _pymc_model(density, backend))
    else:
        raise ValueError(f"nutpie backend must be 'pytensor', 'jax' or 'numba', got {backend!r}")
    t_start = time.perf_counter()
    sampler = nutpie.sample(
        compiled, draws=draws, tune=tune, chains=chains, cores=cores or chains,
        seed=int(seed), progress_bar=bool(progressbar), init_mean=np.zeros(d),
        save_warmup=True, target_accept=target_accept, blocking=False,
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
    raw.interrupted = interrupted or raw.z.shape[1] < (keep or draws)
    if stop is not None:
        raw.info["stopped_at"] = raw.z.shape[1]
        raw.info["converged_check"] = keep is not None
    return raw


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
    options={"backend": "pytensor", "cores": None, "target_accept": 0.8, "stop": None,
             "on_checkpoint": None},
    available=_available, compile_mode="FAST_RUN",
    default_draws=NUTS_DRAWS_MAX, default_tune=NUTS_TUNE,
))
