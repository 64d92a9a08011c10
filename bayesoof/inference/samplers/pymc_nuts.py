"""PyMC's own NUTS on the same graph (C backend; always available)."""

from __future__ import annotations

import contextlib
import os
import time
import warnings

import numpy as np

from bayesoof.inference.samplers.base import (
    NUTS_DRAWS,
    NUTS_TUNE,
    PeriodicCheckpoint,
    RawDraws,
    Sampler,
    progress_bar,
    register,
)

_STATS = ("diverging", "n_steps", "tree_depth", "energy", "lp", "acceptance_rate",
          "step_size", "reached_max_treedepth")
# the names PyMC's running trace gives the statistics that ArviZ renames
_TRACE_NAME = {"n_steps": "tree_size", "tree_depth": "depth", "lp": "model_logp",
               "acceptance_rate": "mean_tree_accept"}


def run(density, *, draws, tune, chains, seed, jitter=0.1, progressbar=None,
        target_accept=0.8, max_tree_depth=10, cores=None, compile_mode=None,
        on_checkpoint=None) -> RawDraws:
    """Run PyMC's NUTS; chains start at ``z ~ N(0, jitter² I)``.

    Chains run in worker processes (one per chain up to the CPU count; in turn once JAX
    has started, as fork() is then unsafe).  ``on_checkpoint`` receives the kept draws so
    far (as many per chain as the slowest chain has) every checkpoint interval.
    """
    from bayesoof.inference.density import jax_initialised

    z0 = np.random.default_rng(seed).normal(0.0, jitter, size=(chains, density.dim))
    if cores is None:
        cores = 1 if jax_initialised() else min(chains, os.cpu_count() or 1)
    return _run_pymc(density, z0, draws, tune, seed, target_accept, max_tree_depth, cores,
                     compile_mode, progressbar, on_checkpoint)


def _run_pymc(density, z0, draws, tune, seed, target_accept, max_tree_depth, cores,
              compile_mode, progressbar=None, on_checkpoint=None) -> RawDraws:
    import pymc as pm
    import pytensor
    from pytensor.graph.replace import graph_replace

    t0 = time.perf_counter()
    chains, d = z0.shape

    with pm.Model() as zmodel:
        z = pm.Flat("z", shape=d)
        pm.Potential("logp", graph_replace(density.logp_graph, {density.z: z}, strict=False))
    kw = {}
    if compile_mode:
        kw["compile_kwargs"] = {"mode": compile_mode}
    prog = progress_bar(progressbar, f"PyMC NUTS, {chains} chains", chains * (tune + draws))
    traces: dict = {}  # chain -> PyMC's trace of it (warm-up included), filled as it runs
    counted = [0]

    def partial() -> RawDraws:  # the kept draws so far, cut to the slowest chain
        kept = min(max(len(traces[c]) - tune, 0) if c in traces else 0 for c in range(chains))
        cut = slice(tune, tune + kept)
        if kept:  # every chain has started
            runs = [traces[c] for c in range(chains)]
            z = np.stack([t.get_values("z")[cut] for t in runs])
            stats = {k: np.stack([t.get_sampler_stats(_TRACE_NAME.get(k, k))[cut] for t in runs])
                     for k in _STATS}
        else:
            z, stats = np.zeros((chains, 0, d)), {k: np.zeros((chains, 0)) for k in _STATS}
        n_grad = int(sum(np.sum(t.get_sampler_stats("tree_size")[: len(t)])
                         for t in traces.values()))
        stats["diverging"] = stats["diverging"].astype(bool)
        wall = time.perf_counter() - t0
        return RawDraws(z=z, stats=stats, n_grad=n_grad,
                        n_grad_sampling=int(np.sum(stats["n_steps"])), wall_time=wall,
                        sampling_time=time.perf_counter() - t_start, interrupted=True,
                        info={"cores": cores,
                              "compile_mode": compile_mode or pytensor.config.mode})

    saver = PeriodicCheckpoint(on_checkpoint, partial)

    def callback(trace, draw):  # once per iteration of a chain
        counted[0] += 1
        if prog is not None:
            prog.update(counted[0], "warm-up" if draw.tuning else "sampling")
        if on_checkpoint is not None:
            traces[draw.chain] = trace
            saver.tick()

    with zmodel, warnings.catch_warnings(), prog or contextlib.nullcontext():
        warnings.filterwarnings("ignore", message=".*[Tt]he number of samples is too small.*")
        step = pm.NUTS(target_accept=target_accept, max_treedepth=max_tree_depth, **kw)
        t_start = time.perf_counter()
        idata = pm.sample(
            draws=draws, tune=tune, chains=chains, cores=cores, step=step,
            initvals=[{"z": z0[c]} for c in range(chains)], random_seed=int(seed),
            progressbar=False, compute_convergence_checks=False,
            discard_tuned_samples=False,
            callback=None if prog is None and on_checkpoint is None else callback,
            return_inferencedata=True,
        )
    wall = time.perf_counter() - t0
    post = idata.posterior["z"].values  # (chains, draws, d): kept draws only
    ss = idata.sample_stats
    warm = getattr(idata, "warmup_sample_stats", None)
    n_warm = int(np.sum(warm["n_steps"].values)) if warm is not None else 0
    interrupted = post.shape[1] < draws
    stats = {k: ss[k].values for k in _STATS}
    stats["diverging"] = stats["diverging"].astype(bool)
    n_steps_all = np.r_[n_warm, np.sum(stats["n_steps"])]
    return RawDraws(
        z=post, stats=stats, n_grad=int(np.sum(n_steps_all)),
        n_grad_sampling=int(np.sum(stats["n_steps"])), wall_time=wall,
        sampling_time=time.perf_counter() - t_start, interrupted=interrupted,
        info={"cores": cores, "compile_mode": compile_mode or pytensor.config.mode},
    )

register(Sampler(
    "pymc", run, "PyMC's NUTS (C backend)",
    options={"target_accept": 0.8, "max_tree_depth": 10, "cores": None, "compile_mode": None,
             "on_checkpoint": None},
    default_draws=NUTS_DRAWS, default_tune=NUTS_TUNE,
))
