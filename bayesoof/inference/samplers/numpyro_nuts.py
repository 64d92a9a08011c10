"""numpyro's NUTS on the JAX backend (the log density jaxified by PyTensor)."""

from __future__ import annotations

import time

import numpy as np

from bayesoof.inference.samplers.base import (
    NUTS_DRAWS,
    NUTS_TUNE,
    RawDraws,
    Sampler,
    progress_bar,
    register,
    sample_loop,
)


def _available() -> str | None:
    from bayesoof.inference.density import have_jax

    return None if have_jax() else "needs jax and numpyro (pip install bayesoof[jax])"


def _prepare() -> None:
    from bayesoof.inference.density import host_devices

    host_devices()


def run(density, *, draws, tune, chains, seed, jitter=0.1, progressbar=None,
        target_accept=0.8, max_tree_depth=10, chain_method="auto", chunk=50,
        on_checkpoint=None) -> RawDraws:
    """Chains start at ``z ~ N(0, jitter² I)``; see :func:`_run_numpyro`."""
    z0 = np.random.default_rng(seed).normal(0.0, jitter, size=(chains, density.dim))
    return _run_numpyro(density, z0, draws, tune, seed, target_accept, max_tree_depth,
                        chain_method, chunk, progressbar, on_checkpoint)


def _run_numpyro(density, z0, draws, tune, seed, target_accept, max_tree_depth,
                 chain_method, chunk, progressbar=None, on_checkpoint=None) -> RawDraws:
    """numpyro's NUTS kernel driven in fixed-size chunks of iterations.

    One jitted function advances every chain by ``chunk`` iterations (``lax.scan`` of
    numpyro's ``sample_kernel``; warm-up adaptation is part of the kernel state), so the
    graph is compiled once for warm-up and sampling alike, and Ctrl-C between chunks
    keeps every finished iteration.  Chains are vectorised (``vmap``); with several JAX
    devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``) they are also split
    across devices (``pmap``), i.e. across CPU cores.
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc import hmc

    t0 = time.perf_counter()
    chains, d = z0.shape
    n_dev = jax.local_device_count()
    if chain_method == "auto":
        chain_method = "parallel" if n_dev > 1 and chains > 1 else "vectorized"
    groups = min(n_dev, chains) if chain_method == "parallel" else 1
    if chains % groups:
        groups = 1
    chain_method = "parallel" if groups > 1 else "vectorized"
    shape = (groups, chains // groups) if groups > 1 else (chains,)
    key = ("nuts", shape, tune, chunk, target_accept, max_tree_depth)

    def build():  # compiled once per density and settings
        f = density.jax_logp()
        init_kernel, sample_kernel = hmc(potential_fn=lambda z: -f(z), algo="NUTS")

        def init_one(z, key):
            return init_kernel(z, tune, step_size=1.0, target_accept_prob=target_accept,
                               max_tree_depth=max_tree_depth, rng_key=key)

        def advance(state):
            def body(s, _):
                s = sample_kernel(s)
                return s, (s.z, s.diverging, s.num_steps, s.energy, s.potential_energy,
                           s.accept_prob, s.adapt_state.step_size)

            return jax.lax.scan(body, state, None, length=chunk)

        if groups > 1:
            return jax.pmap(jax.vmap(init_one)), jax.pmap(jax.vmap(advance))
        return jax.jit(jax.vmap(init_one)), jax.jit(jax.vmap(advance))

    init_fn, step_fn = density.cached(key, build)
    keys = jax.random.split(jax.random.PRNGKey(int(seed)), chains)
    state = init_fn(jnp.asarray(z0).reshape(shape + (d,)), keys.reshape(shape + keys.shape[1:]))
    total = tune + draws
    out: list = []
    t_compiled = None
    def collect(interrupted: bool) -> RawDraws:
        wall = time.perf_counter() - t0
        names = ("z", "diverging", "num_steps", "energy", "potential_energy", "accept_prob",
                 "step_size")
        if out:
            cols = {n: np.concatenate([o[k] for o in out], axis=1)[:, :total]
                    for k, n in enumerate(names)}
        else:
            cols = {n: np.zeros((chains, 0) + ((d,) if n == "z" else ())) for n in names}
        n_steps_all = cols["num_steps"]
        keep = slice(min(tune, n_steps_all.shape[1]), None)
        n_steps = n_steps_all[:, keep]
        depth = np.ceil(np.log2(n_steps + 1.0)).astype(int)
        stats = {
            "diverging": cols["diverging"][:, keep].astype(bool),
            "n_steps": n_steps,
            "tree_depth": depth,
            "energy": cols["energy"][:, keep],
            "lp": -cols["potential_energy"][:, keep],
            "acceptance_rate": cols["accept_prob"][:, keep],
            "step_size": cols["step_size"][:, keep],
            "reached_max_treedepth": depth >= max_tree_depth,
        }
        per_iter = (wall - ((t_compiled or t0) - t0)) / max(len(out) - 1, 1) / chunk
        return RawDraws(
            z=cols["z"][:, keep], stats=stats, n_grad=int(np.sum(n_steps_all)),
            n_grad_sampling=int(np.sum(n_steps)), wall_time=wall,
            sampling_time=per_iter * max(n_steps.shape[1], 0),
            interrupted=interrupted or n_steps.shape[1] < draws,
            info={"chain_method": chain_method, "devices": int(groups), "chunk": int(chunk),
                  "first_chunk_time": (t_compiled - t0) if t_compiled else None},
        )

    prog = progress_bar(progressbar, f"numpyro NUTS, {chains} chains", chains * total)

    def step(first: int) -> None:
        nonlocal state, t_compiled
        state, got = step_fn(state)
        got = [np.asarray(g).reshape((chains, chunk) + np.shape(g)[len(shape) + 1 :])
               for g in got]
        out.append(got)
        done = first + chunk
        if t_compiled is None:
            t_compiled = time.perf_counter()
        if prog is not None:
            prog.update(chains * min(done, total), "warm-up" if done <= tune else "sampling")

    interrupted = sample_loop(range(0, total, chunk), step, prog=prog,
                              on_checkpoint=on_checkpoint, partial=lambda: collect(True))
    return collect(interrupted)

register(Sampler(
    "numpyro", run, "numpyro's NUTS on JAX (chains in parallel across CPU devices)",
    options={"target_accept": 0.8, "max_tree_depth": 10, "chain_method": "auto", "chunk": 50,
             "on_checkpoint": None},
    available=_available, compile_mode="JAX", prepare=_prepare,
    default_draws=NUTS_DRAWS, default_tune=NUTS_TUNE,
))
