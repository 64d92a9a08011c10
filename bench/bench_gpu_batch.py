"""Benchmark of a batch of posteriors vectorised over observations (JAX; GPU when present).

One PyMC model (the quick fit of observation 0) is written as a JAX function of the
unconstrained parameters ``u`` AND the observed beams ``y`` (PyTensor's JAX linker on the
same graph the samplers use), so that one compiled program serves every observation of
the same geometry.  For N simulated observations (same telescope, maps and noise level;
Zernike coefficients varied around observation 0's, as between the scans of a campaign):

1. Laplace, batched: Newton steps from observation 0's MAP to each observation's mode
   (``vmap`` of the exact Hessian), then the whitening ``L_i = chol(-H_i⁻¹)``;
   (observations 1..N-1 are drawn from the model's own mean at observation 0's MAP with
   K varied, so that they need no CPU simulation; see :func:`observations`);
2. NUTS, batched: numpyro's NUTS kernel, ``vmap`` over observations × chains, in the
   whitened coordinates ``u = u_i + L_i z`` (what :mod:`bayesoof.inference.sample` does for
   one observation);
3. per observation: R-hat and bulk ESS of the K coefficients (ArviZ, on the host), the
   distance of the posterior mean of K from the truth in posterior sd.

Printed per N: compile s, Laplace s, sampling s, gradient evaluations, posteriors per
second, worst R-hat, smallest ESS, and the coverage of the 90 % intervals of K.
Also printed: value + gradient of the batched density (ms per call, per observation).

    JAX_PLATFORMS=cuda python bench/bench_gpu_batch.py --observations 1 16 128
    python bench/bench_gpu_batch.py --no-fit ...   # without the quick fit of observation 0
    python bench/bench_gpu_batch.py --observations 1 4 --n-grid 41 --order 3   # CPU check

The simulation and the quick fit of observation 0 run on the CPU (PyTensor's C backend);
everything timed in the table runs on JAX's default device.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def build(order: int, n_grid: int, snr: float, seed: int, quick_fit: bool = True):
    """Observation 0 (simulated), its PyMC model (known σ) and status; the truth's K.

    With ``quick_fit`` the model is built from the quick fit of observation 0 (as
    ``bayesoof sample`` does); without, from its forward model at the configuration's start
    values (quicker to set up; the observations are drawn from the model's mean).
    """
    import bayesoof
    from bayesoof.inference.model import build_model
    from bayesoof.physics.forward import ForwardModel
    from bayesoof.simulate import random_coefficients, simulate

    K0 = random_coefficients(order, scale=0.05, seed=seed)
    illum = {"c_dB": -14.0, "q": 1.5, "x0": 0.0, "y0": 0.0}
    data0 = simulate("effelsberg", K0, illumination=illum, n_grid=n_grid, snr=snr, seed=seed)
    if not quick_fit:
        return K0, build_model(ForwardModel(data0, "effelsberg", order)), "no quick fit"
    fit0 = bayesoof.fit(data0, telescope="effelsberg", order=order)
    return K0, build_model(fit0), fit0.status


def observations(mean, u0, k_slice, free_j, K0, sigma, n: int, seed: int, spread: float):
    """n observations from the model's own mean beams (the one forward graph, on JAX).

    Observation i: the parameters of observation 0's MAP with K = K0 + N(0, spread²) per
    coefficient (K0 for i = 0), plus Gaussian noise of the known per-sample σ.
    Returns the true K (n, J), the true parameters (n, d) and the beams (n, samples).
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed + 1)
    Ks = K0 + rng.normal(0.0, spread, (n, K0.size)) * (np.arange(n) > 0)[:, None]
    us = np.repeat(u0[None, :], n, axis=0)
    us[:, k_slice] = Ks[:, free_j]
    mu = np.asarray(jax.jit(jax.vmap(mean))(jnp.asarray(us)))
    ys = mu + sigma * rng.normal(size=mu.shape)
    return Ks, us, ys


def jax_density(model):
    """JAX ``f(u, y) -> logp`` of the model (``u`` flat unconstrained, ``y`` the beams)."""
    import pytensor
    import pytensor.tensor as pt
    from pymc.sampling.jax import get_jaxified_graph

    import bayesoof.physics.jax_ops  # noqa: F401  (JAX versions of bayesoof's Ops)

    ip = model.initial_point()
    names = [v.name for v in model.value_vars]
    shapes = [np.shape(ip[n]) for n in names]
    u = pt.vector("u", dtype="float64")
    repl, i = {}, 0
    for v, shp in zip(model.value_vars, shapes, strict=True):
        size = int(np.prod(shp, dtype=int))
        repl[v] = pt.specify_shape(u[i : i + size].reshape(shp) if shp else u[i], shp)
        i += size
    (obs_rv,) = model.observed_RVs
    data_var = model.rvs_to_values[obs_rv]
    y = pt.vector("y", dtype="float64")
    repl[data_var] = y
    logp = pytensor.clone_replace(model.logp(jacobian=True), replace=repl)
    f = get_jaxified_graph(inputs=[u, y], outputs=[logp])
    (mu,) = model.replace_rvs_by_values([model.bayesoof.mu])
    mean = get_jaxified_graph(inputs=[u], outputs=[pytensor.clone_replace(mu, replace=repl)])
    u0 = np.concatenate([np.ravel(np.asarray(ip[n], float)) for n in names])
    k_slice = None
    j = 0
    for n, shp in zip(names, shapes, strict=True):
        size = int(np.prod(shp, dtype=int))
        if n == "K":
            k_slice = slice(j, j + size)
        j += size
    return ((lambda uu, yy: f(uu, yy)[0]), (lambda uu: mean(uu)[0]), u0, k_slice,
            model.bayesoof.free_j)


def batched_laplace(f, u0, ys, steps: int):
    """Damped Newton from u0 (observation 0's truth) to each observation's mode.

    Returns the modes, chol(-H⁻¹) and |grad| at the modes.
    """
    import jax
    import jax.numpy as jnp

    grad = jax.grad(f)
    hess = jax.hessian(f)

    steps_tried = jnp.array([1.0, 0.5, 0.25, 0.125, 0.0])  # 0: stay (never worse)

    def newton(y):
        def body(u, _):
            dx = jnp.linalg.solve(hess(u, y), grad(u, y))
            cands = u[None, :] - steps_tried[:, None] * dx[None, :]
            vals = jax.vmap(lambda c: f(c, y))(cands)
            vals = jnp.where(jnp.isfinite(vals), vals, -jnp.inf)
            return cands[jnp.argmax(vals)], None

        u, _ = jax.lax.scan(body, jnp.asarray(u0), None, length=steps)
        H = hess(u, y)
        cov = jnp.linalg.inv(-H)
        cov = 0.5 * (cov + cov.T)
        return u, jnp.linalg.cholesky(cov), jnp.linalg.norm(grad(u, y))

    return jax.jit(jax.vmap(newton))(jnp.asarray(ys))


def batched_nuts(f, centers, chols, ys, chains, tune, draws, seed, max_tree_depth=10):
    """numpyro NUTS vmapped over observations × chains; z draws (n, chains, draws, d)."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc import hmc

    n, d = centers.shape

    def run_one(c, L, y, z0, key):
        init_kernel, sample_kernel = hmc(potential_fn=lambda z: -f(c + L @ z, y), algo="NUTS")
        state = init_kernel(z0, tune, step_size=1.0, target_accept_prob=0.8,
                            max_tree_depth=max_tree_depth, rng_key=key)

        def body(s, _):
            s = sample_kernel(s)
            return s, (s.z, s.num_steps, s.diverging)

        _, out = jax.lax.scan(body, state, None, length=tune + draws)
        return out

    per_obs = jax.vmap(run_one, in_axes=(None, None, None, 0, 0))  # chains
    fn = jax.jit(jax.vmap(per_obs))  # observations
    rng = np.random.default_rng(seed)
    z0 = jnp.asarray(rng.normal(0.0, 0.1, (n, chains, d)))
    keys = jax.random.split(jax.random.PRNGKey(seed), n * chains).reshape(n, chains, -1)
    return fn, (centers, chols, jnp.asarray(ys), z0, keys)


def k_diagnostics(zs, centers, chols, k_slice, free_j, truth, tune):
    """Worst R-hat, least bulk ESS over K per observation; coverage of 90 % intervals."""
    import arviz as az

    rhat, ess, cover, zabs = [], [], [], []
    for i in range(zs.shape[0]):
        z = np.asarray(zs[i])[:, tune:, :]
        u = centers[i] + z @ np.asarray(chols[i]).T
        K = u[..., k_slice]
        ds = az.convert_to_dataset({"K": K})
        rhat.append(float(az.rhat(ds)["K"].max()))
        ess.append(float(az.ess(ds, method="bulk")["K"].min()))
        flat = K.reshape(-1, K.shape[-1])
        lo, hi = np.quantile(flat, [0.05, 0.95], axis=0)
        t = truth[i][free_j]
        cover.append(np.mean((t >= lo) & (t <= hi)))
        zabs.append(np.abs(flat.mean(0) - t) / flat.std(0))
    return np.array(rhat), np.array(ess), np.array(cover), np.concatenate(zabs)


def stage(text: str) -> None:
    """One progress line (the table row of N comes after its stages)."""
    print(f"  .. {text}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--observations", type=int, nargs="+", default=[1, 16, 128])
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--n-grid", type=int, default=97)
    ap.add_argument("--snr", type=float, default=300.0)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--tune", type=int, default=200)
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--spread", type=float, default=0.01, help="K spread between scans, waves")
    ap.add_argument("--newton", type=int, default=6, help="Newton steps of the batched Laplace")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--no-fit", action="store_true",
                    help="build the model without a quick fit (see build)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    K0, model, status = build(args.order, args.n_grid, args.snr, args.seed, not args.no_fit)
    print(f"observation 0: model built (CPU) in {time.perf_counter() - t0:.1f} s, order "
          f"{args.order}, 3 maps x {args.n_grid}^2, {status}")
    import jax

    f, mean, u0, k_slice, free_j = jax_density(model)
    dev = jax.devices()[0]
    print(f"JAX {jax.__version__} on {dev.platform}: {dev.device_kind}; "
          f"{u0.size} unconstrained parameters; load average {os.getloadavg()[0]:.2f}")
    n_max = max(args.observations)
    t1 = time.perf_counter()
    truth, us, ys_all = observations(mean, u0, k_slice, free_j, K0, model.bayesoof.sigma, n_max,
                                     args.seed, args.spread)
    print(f"simulated {n_max} observations in {time.perf_counter() - t1:.1f} s (JAX)")

    import jax.numpy as jnp

    vg = jax.jit(jax.vmap(jax.value_and_grad(f), in_axes=(None, 0)))
    print(f"\n{'N':>5s} {'vg ms':>8s} {'vg ms/obs':>9s} {'compile s':>9s} {'laplace s':>9s}"
          f" {'|grad| max':>10s} {'sample s':>9s} {'grads':>10s} {'post/s':>7s}"
          f" {'R-hat max':>9s} {'ESS min':>8s} {'cover90':>7s} {'div':>5s}")
    for n in args.observations:
        ys = jnp.asarray(ys_all[:n])
        jax.block_until_ready(vg(jnp.asarray(u0), ys))
        times = []
        for _ in range(args.rounds):
            s = time.perf_counter()
            jax.block_until_ready(vg(jnp.asarray(u0), ys))
            times.append(time.perf_counter() - s)
        vg_ms = 1e3 * float(np.median(times))
        s = time.perf_counter()
        stage(f"N={n}: value+gradient {vg_ms:.2f} ms")
        centers, chols, gnorm = jax.block_until_ready(batched_laplace(f, us[0], ys,
                                                                      args.newton))
        t_lap = time.perf_counter() - s  # includes its compilation
        stage(f"N={n}: batched Laplace {t_lap:.1f} s (incl. compilation)")
        fn, fargs = batched_nuts(f, centers, chols, ys, args.chains, args.tune, args.draws,
                                 args.seed)
        s = time.perf_counter()
        compiled = fn.lower(*fargs).compile()
        t_comp = time.perf_counter() - s
        stage(f"N={n}: NUTS compiled in {t_comp:.1f} s")
        s = time.perf_counter()
        zs, steps, div = jax.block_until_ready(compiled(*fargs))
        t_samp = time.perf_counter() - s
        stage(f"N={n}: sampled in {t_samp:.1f} s")
        rhat, ess, cover, _ = k_diagnostics(np.asarray(zs), np.asarray(centers),
                                            np.asarray(chols), k_slice, free_j, truth[:n],
                                            args.tune)
        grads = int(np.sum(np.asarray(steps)))
        print(f"{n:5d} {vg_ms:8.2f} {vg_ms / n:9.3f} {t_comp:9.1f} {t_lap:9.1f}"
              f" {float(np.max(gnorm)):10.2e} {t_samp:9.1f} {grads:10d} {n / t_samp:7.2f}"
              f" {rhat.max():9.4f} {ess.min():8.0f} {cover.mean():7.3f}"
              f" {int(np.sum(np.asarray(div)[:, :, args.tune:])):5d}")
    print(f"\n({args.chains} chains x ({args.tune} warm-up + {args.draws} draws) per observation;"
          f" 'sample s' excludes compilation; 'laplace s' includes it; cover90: fraction of K"
          f" inside the 90 % intervals, mean over observations)")
    try:
        import resource

        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
