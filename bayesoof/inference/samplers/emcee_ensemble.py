"""emcee's affine-invariant ensemble on the same log density (vectorised over walkers)."""

from __future__ import annotations

import time
import warnings

import numpy as np

from bayesoof.inference.samplers.base import (
    RawDraws,
    Sampler,
    logging_off,
    progress_bar,
    register,
    sample_loop,
)


def run(density, *, draws, tune, chains, seed, jitter=0.1, progressbar=None, walkers=None,
        emcee_init=1.0, thin=1, compile_mode=None, on_checkpoint=None) -> RawDraws:
    """Run emcee; walkers start at ``z ~ N(0, emcee_init² I)`` (the Laplace approximation).

    ``chains`` and ``jitter`` do not apply (default walkers: max(2 d + 2, 32)).
    """
    return _run_emcee(density, draws, tune, seed, walkers, emcee_init, thin, compile_mode,
                      progressbar, on_checkpoint)


def _run_emcee(density, draws, tune, seed, walkers, init_scale, thin, mode,
               progressbar=None, on_checkpoint=None) -> RawDraws:
    import emcee

    t0 = time.perf_counter()
    d = density.dim
    walkers = int(walkers or max(2 * d + 2, 32))
    walkers += walkers % 2
    if walkers < 2 * d:
        raise ValueError(f"emcee needs at least 2 x {d} = {2 * d} walkers for {d} free "
                         f"parameters (its stretch move pairs them), got {walkers}")
    logp = density.logp_batch(mode)
    rng = np.random.default_rng(seed)
    p0 = rng.normal(0.0, init_scale, size=(walkers, d))
    logp(p0[:2])  # compile outside the timed loop
    t_start = time.perf_counter()
    sampler = emcee.EnsembleSampler(walkers, d, logp, vectorize=True)
    sampler.random_state = np.random.RandomState(seed % 2**32).get_state()
    n_iter = 0
    total = tune + draws * thin
    def collect(interrupted: bool, final: bool = True) -> RawDraws:
        chain = sampler.get_chain()  # (steps, walkers, d)
        lp = sampler.get_log_prob()
        keep = slice(min(tune, chain.shape[0]), chain.shape[0], thin)
        z = np.swapaxes(chain[keep], 0, 1)
        lps = np.swapaxes(lp[keep], 0, 1)
        try:
            if not final:
                raise ValueError("periodic checkpoint: no autocorrelation time yet")
            with np.errstate(all="ignore"), warnings.catch_warnings(), logging_off():
                warnings.simplefilter("ignore")  # emcee's "chain too short" notice: reported below
                tau = sampler.get_autocorr_time(discard=min(tune, chain.shape[0]), quiet=True)
        except Exception:  # noqa: BLE001 - too short chains
            tau = np.full(d, np.nan)
        return RawDraws(
            z=z, stats={"lp": lps}, n_grad=n_iter * walkers,
            n_grad_sampling=max(n_iter - tune, 0) * walkers,
            wall_time=time.perf_counter() - t0,
            sampling_time=time.perf_counter() - t_start,
            interrupted=interrupted,
            info={"walkers": walkers, "thin": thin,
                  "acceptance_fraction": float(np.mean(sampler.acceptance_fraction)),
                  "autocorr_time_max": float(np.nanmax(tau)) if np.any(np.isfinite(tau)) else None},
        )

    prog = progress_bar(progressbar, f"emcee, {walkers} walkers", total, unit="steps")

    def step(_) -> None:
        nonlocal n_iter
        n_iter += 1
        if prog is not None:
            prog.update(n_iter, "burn-in" if n_iter <= tune else "sampling")

    interrupted = sample_loop(sampler.sample(p0, iterations=total, store=True, progress=False),
                              step, prog=prog, on_checkpoint=on_checkpoint,
                              partial=lambda: collect(True, final=False))
    return collect(interrupted)

register(Sampler(
    "emcee", run, "emcee's ensemble sampler (walkers as chains)",
    options={"walkers": None, "emcee_init": 1.0, "thin": 1, "compile_mode": None,
             "on_checkpoint": None},
    compile_mode="JAX", ensemble=True,
))
