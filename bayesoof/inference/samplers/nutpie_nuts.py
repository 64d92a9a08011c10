"""nutpie's NUTS (Rust) on the same whitened log density, compiled by nutpie from PyMC."""

from __future__ import annotations

import time

import numpy as np

from bayesoof.inference.samplers.base import RawDraws, Sampler, register


def _available() -> str | None:
    try:
        import nutpie  # noqa: F401
    except ImportError:
        return "needs nutpie (pip install nutpie)"
    return None


def run(density, *, draws, tune, chains, seed, jitter=0.1, progressbar=False,
        backend=None, cores=None) -> RawDraws:
    """Run nutpie on ``density``: chains start around ``z = 0`` (nutpie's own jitter).

    The whitened density becomes a PyMC model of one flat vector ``z`` with the density
    as a potential, compiled by ``nutpie.compile_pymc_model`` (``backend`` 'jax' when JAX
    is installed, else 'numba').  nutpie adapts a diagonal mass matrix during ``tune``.
    Ctrl-C stops the run without draws (nutpie returns none of a cancelled run).
    """
    import nutpie
    import pymc as pm
    from pytensor.graph.replace import graph_replace

    from bayesoof.inference.density import have_jax

    t0 = time.perf_counter()
    d = density.dim
    backend = backend or ("jax" if have_jax() else "numba")

    def build():
        with pm.Model() as zmodel:
            z = pm.Flat("z", shape=d)
            pm.Potential("logp", graph_replace(density.logp_graph, {density.z: z},
                                               strict=False))
        return nutpie.compile_pymc_model(zmodel, backend=backend, gradient_backend=backend)

    compiled = density.cached(("nutpie", backend), build)
    t_start = time.perf_counter()
    try:
        idata = nutpie.sample(
            compiled, draws=draws, tune=tune,
            chains=chains, cores=cores or chains, seed=int(seed), progress_bar=progressbar,
            init_mean=np.zeros(d), save_warmup=False,
        )
    except KeyboardInterrupt:
        return RawDraws(z=np.zeros((chains, 0, d)), stats={}, n_grad=0, n_grad_sampling=0,
                        wall_time=time.perf_counter() - t0, sampling_time=0.0,
                        interrupted=True, info={"backend": backend})
    post = np.asarray(idata.posterior["z"].values, float)  # (chains, draws, d)
    ss = idata.sample_stats

    def stat(name, fallback=None):
        return np.asarray(ss[name].values) if name in ss else fallback

    n_steps = stat("n_steps", np.ones(post.shape[:2], int))
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
        z=post, stats=stats, n_grad=int(np.sum(n_steps)), n_grad_sampling=int(np.sum(n_steps)),
        wall_time=time.perf_counter() - t0, sampling_time=time.perf_counter() - t_start,
        interrupted=post.shape[1] < draws, info={"backend": backend},
    )


register(Sampler(
    "nutpie", run, "nutpie's NUTS (Rust; numba or JAX backend)",
    options={"backend": None, "cores": None}, available=_available,
    compile_mode="FAST_RUN",
))
