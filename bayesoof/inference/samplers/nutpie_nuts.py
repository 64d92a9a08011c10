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
"""

from __future__ import annotations

import time

import numpy as np

from bayesoof.inference.samplers.base import NUTS_DRAWS, NUTS_TUNE, RawDraws, Sampler, register


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
        backend="pytensor", cores=None, target_accept=0.8) -> RawDraws:
    """Run nutpie on ``density``; nutpie adapts a diagonal mass matrix during ``tune``.

    ``backend``: 'pytensor' (C-compiled density, chains start at ``z ~ N(0, jitter² I)``),
    'jax' or 'numba' (nutpie compiles the density; its own jitter around ``z = 0``).
    ``cores``: chains run at once (threads; default all chains).  Ctrl-C stops the run
    without draws (nutpie returns none of a cancelled run).
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
    try:
        idata = nutpie.sample(
            compiled, draws=draws, tune=tune, chains=chains, cores=cores or chains,
            seed=int(seed), progress_bar=bool(progressbar), init_mean=np.zeros(d),
            save_warmup=True, target_accept=target_accept,
        )
    except KeyboardInterrupt:
        return RawDraws(z=np.zeros((chains, 0, d)), stats={}, n_grad=0, n_grad_sampling=0,
                        wall_time=time.perf_counter() - t0, sampling_time=0.0,
                        interrupted=True, info={"backend": backend})
    post = np.asarray(idata.posterior["z"].values, float)  # (chains, draws, d)
    ss = idata.sample_stats
    warm = getattr(idata, "warmup_sample_stats", None)

    def stat(name, fallback=None):
        return np.asarray(ss[name].values) if name in ss else fallback

    n_steps = stat("n_steps", np.ones(post.shape[:2], int))
    n_warm = int(np.sum(warm["n_steps"].values)) if warm is not None and "n_steps" in warm else 0
    depth = stat("depth", np.ceil(np.log2(n_steps + 1.0)).astype(int))
    stats = {
        "diverging": stat("diverging", np.zeros(post.shape[:2], bool)).astype(bool),
        "n_steps": n_steps,
        "tree_depth": depth,
        "energy": stat("energy", np.full(post.shape[:2], np.nan)),
        "lp": stat("logp", np.full(post.shape[:2], np.nan)),
        "acceptance_rate": stat("mean_tree_accept", np.full(post.shape[:2], np.nan)),
        "step_size": stat("step_size", np.full(post.shape[:2], np.nan)),
        "reached_max_treedepth": stat("maxdepth_reached", np.zeros(post.shape[:2], bool)),
    }
    return RawDraws(
        z=post, stats=stats, n_grad=n_warm + int(np.sum(n_steps)),
        n_grad_sampling=int(np.sum(n_steps)),
        wall_time=time.perf_counter() - t0, sampling_time=time.perf_counter() - t_start,
        interrupted=post.shape[1] < draws, info={"backend": backend},
    )


register(Sampler(
    "nutpie", run, "nutpie's NUTS (Rust) on the C-compiled density (or nutpie's jax/numba)",
    options={"backend": "pytensor", "cores": None, "target_accept": 0.8},
    available=_available, compile_mode="FAST_RUN",
    default_draws=NUTS_DRAWS, default_tune=NUTS_TUNE,
))
