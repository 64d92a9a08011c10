"""Benchmark of the full-posterior samplers: NUTS (numpyro on JAX, PyMC) against emcee.

Case: Effelsberg, 9 mm, order 5 (21 Zernike terms, piston fixed), three 97 × 97 maps
(d_z = -22, 0, +22 mm), SNR 200, the default aperture sampling and fit configuration
(c_dB, amplitudes and offsets free).  All samplers share the same log-density (the PyMC
model of bayesoof.inference.model, whitened around the posterior mode).

Reported per sampler:

* wall time to a converged posterior: quick fit excluded (reported apart); Laplace,
  compilation, warm-up and sampling included; "converged" = 4 chains, R-hat <= 1.01 and
  min bulk ESS >= 400 over every K (plus no divergences for NUTS).  If a run is not
  converged the draws are doubled and the run repeated (up to ``--max-doublings``);
* ESS per second: min bulk ESS over K divided by the sampling time (warm-up and
  compilation excluded), and divided by the whole wall time;
* gradient (NUTS) or density (emcee) evaluations per effective sample, warm-up included.

emcee runs for a fixed number of steps (``--emcee-steps``, after ``--emcee-burn``); its ESS
is ArviZ's bulk ESS over walkers-as-chains and, for comparison, walkers × steps / τ_max
with τ emcee's integrated autocorrelation time.

Run:  python bench/bench_sample.py            (all samplers, the full case; ~12 min)
      python bench/bench_sample.py --quick    (31 × 31 maps, order 3: a smoke test)
      python bench/bench_sample.py --samplers numpyro,nutpie --tune 100,200,300
                                              (the warm-up study, nutpie beside numpyro)
      python bench/bench_sample.py --scattered 10000   (3 × 10 000 on-the-fly samples)

The peak RSS of the process (quick fit + all posteriors) is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

import numpy as np


def _setup_devices(n: int) -> None:
    """One JAX CPU device per core (must run before JAX starts)."""
    flag = f"--xla_force_host_platform_device_count={n}"
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()


def k_stats(result) -> dict:
    import arviz as az

    post = result.primary_posterior()[["K"]]
    ess = az.ess(post, method="bulk")["K"].values
    rhat = az.rhat(post)["K"].values
    return {"ess_bulk_min_K": float(np.min(ess)), "r_hat_max_K": float(np.max(rhat))}


def run_nuts(model, sampler, draws, tune, chains, seed, max_doublings):
    from bayesoof.inference.sample import sample_model

    total = 0.0
    attempts = []
    for _ in range(max_doublings + 1):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sample_model(model, sampler=sampler, draws=draws, tune=tune, chains=chains,
                               seed=seed, products=False)
        wall = time.perf_counter() - t0
        total += wall
        ks = k_stats(res)
        d = res.diagnostics
        ok = (ks["r_hat_max_K"] <= 1.01 and ks["ess_bulk_min_K"] >= 400
              and d.get("divergences", 0) == 0)
        attempts.append({"draws": draws, "wall_s": wall, **ks,
                         "divergences": d.get("divergences"), "converged_K": ok})
        if ok:
            break
        draws *= 2
    t = res.timing
    samp = t["sampling"]
    return {
        "sampler": res.sampler,
        "chains": chains,
        "tune": tune,
        "draws": draws,
        "converged_K": ok,
        "attempts": attempts,
        "diagnostics_all_parameters": {k: d.get(k) for k in (
            "r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "tree_depth_mean",
            "converged")},
        **ks,
        "wall_to_converged_s": total,
        "wall_last_run_s": wall,
        "laplace_s": t["laplace"],
        "sampler_wall_s": t["sampler_wall"],
        "sampling_s": samp,
        "n_grad": t["n_grad"],
        "n_grad_sampling": t["n_grad_sampling"],
        "ess_per_s_sampling": ks["ess_bulk_min_K"] / samp,
        "ess_per_s_wall": ks["ess_bulk_min_K"] / wall,
        "grad_per_ess": t["n_grad"] / ks["ess_bulk_min_K"],
        "ms_per_grad": 1e3 * samp / max(t["n_grad_sampling"], 1),
        "extra": {k: t.get(k) for k in ("chain_method", "devices", "cores", "compile_mode",
                                         "first_chunk_time")},
    }


def run_nutpie(model, draws, tune, chains, seed):
    """nutpie (JAX backend: bayesoof's kernel Ops have JAX versions, no Numba ones) on the
    un-whitened model; nutpie adapts its own mass matrix during ``tune``."""
    import arviz as az
    import nutpie

    import bayesoof.physics.jax_ops  # noqa: F401  (JAX versions of the transform Ops)

    t0 = time.perf_counter()
    # nutpie takes the start as initial_points, not as the model's initial values (the MAP)
    initvals = dict(model.rvs_to_initial_values)
    start = {rv.name: val for rv, val in initvals.items() if val is not None}
    model.rvs_to_initial_values = dict.fromkeys(initvals)
    try:
        compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax",
                                             initial_points=start or None)
    finally:
        model.rvs_to_initial_values = initvals
    t_compile = time.perf_counter() - t0
    t1 = time.perf_counter()
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                          progress_bar=False)
    t_sample = time.perf_counter() - t1
    post = idata.posterior[[v for v in idata.posterior.data_vars if v.startswith("K")]]
    ess = np.concatenate([np.ravel(v) for v in az.ess(post, method="bulk").data_vars.values()])
    rhat = np.concatenate([np.ravel(v) for v in az.rhat(post).data_vars.values()])
    ess, rhat = ess[np.isfinite(ess)], rhat[np.isfinite(rhat)]  # fixed (constant) terms
    n_steps = int(idata.sample_stats["n_steps"].sum()) if "n_steps" in idata.sample_stats else None
    div = int(idata.sample_stats["diverging"].sum())
    return {"sampler": "nutpie (jax)", "chains": chains, "tune": tune, "draws": draws,
            "ess_bulk_min_K": float(ess.min()), "r_hat_max_K": float(rhat.max()),
            "divergences": div, "compile_s": t_compile, "sampling_s": t_sample,
            "wall_s": time.perf_counter() - t0, "n_grad_sampling": n_steps,
            "converged_K": bool(rhat.max() <= 1.01 and ess.min() >= 400 and div == 0)}


def run_emcee(model, steps, burn, seed, walkers):
    from bayesoof.inference.sample import sample_model

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sample_model(model, sampler="emcee", draws=steps, tune=burn, seed=seed,
                           products=False, walkers=walkers)
    wall = time.perf_counter() - t0
    ks = k_stats(res)
    t = res.timing
    tau = t.get("autocorr_time_max")
    n_w = t.get("walkers")
    ess_tau = (n_w * steps / tau) if tau else None
    return {
        "sampler": "emcee",
        "walkers": n_w,
        "burn": burn,
        "steps": steps,
        **ks,
        "autocorr_time_max": tau,
        "ess_walkers_x_steps_over_tau": ess_tau,
        "acceptance_fraction": t.get("acceptance_fraction"),
        "wall_s": wall,
        "sampling_s": t["sampling"],
        "n_logp": t["n_grad"],
        "ess_per_s_sampling": ks["ess_bulk_min_K"] / t["sampling"],
        "ess_per_s_wall": ks["ess_bulk_min_K"] / wall,
        "logp_per_ess": t["n_grad"] / ks["ess_bulk_min_K"],
        "converged_K": ks["r_hat_max_K"] <= 1.01 and ks["ess_bulk_min_K"] >= 400,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samplers", default="pymc,numpyro,emcee",
                   help="run in this order (PyMC first: its worker processes need fork() "
                        "before JAX starts)")
    p.add_argument("--order", type=int, default=5)
    p.add_argument("--n-grid", type=int, default=97)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", default="300",
                   help="warm-up steps; a comma-separated list runs each NUTS sampler once per"
                        " value (the warm-up study)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--max-doublings", type=int, default=2)
    p.add_argument("--emcee-steps", type=int, default=4000)
    p.add_argument("--emcee-burn", type=int, default=1000)
    p.add_argument("--walkers", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--devices", type=int, default=os.cpu_count() or 1,
                   help="JAX CPU devices (one per core) for parallel numpyro chains")
    p.add_argument("--quick", action="store_true", help="31 x 31 maps, order 3")
    p.add_argument("--scattered", type=int, default=0, metavar="N",
                   help="N scattered samples per map (an on-the-fly scan, bench/otf_scan.py)"
                        " instead of the n_grid lattice")
    p.add_argument("--json", default=None, help="also write the results to this file")
    a = p.parse_args(argv)
    if a.quick:
        a.order, a.n_grid = 3, 31
    _setup_devices(a.devices)

    from bayesoof.inference import fit as fit_module  # noqa: F401  (the quick fit)
    from bayesoof.inference.fit import fit
    from bayesoof.inference.model import build_model
    from bayesoof.simulate import random_coefficients, simulate

    truth = random_coefficients(a.order, scale=0.05, seed=a.seed)
    if a.scattered:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from otf_scan import otf_positions

        rng = np.random.default_rng(a.seed)
        pos = [otf_positions(a.scattered, rng) for _ in range(3)]
        data = simulate("effelsberg", truth, wavelength=0.0093685, u=[q[0] for q in pos],
                        v=[q[1] for q in pos], snr=200.0, seed=a.seed, amp=1000.0, offset=2.0,
                        method="auto")
    else:
        data = simulate("effelsberg", truth, wavelength=0.009, n_grid=a.n_grid, snr=200.0,
                        seed=a.seed, amp=1000.0, offset=2.0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fr = fit(data, telescope="effelsberg", order=a.order)
    t_fit = time.perf_counter() - t0
    model = build_model(fr)
    header = {
        "case": f"effelsberg 9 mm, order {a.order}, 3 maps of "
                + (f"{a.scattered} scattered samples" if a.scattered
                   else f"{a.n_grid}x{a.n_grid}") + ", SNR 200",
        "forward": fr.forward.describe(),
        "free_parameters": len(fr.free_names),
        "quick_fit_s": t_fit,
        "cpu": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "load_average": os.getloadavg(),
    }
    print(json.dumps(header, indent=1), flush=True)
    results = {"header": header}
    tunes = [int(t) for t in str(a.tune).split(",")]
    for s in a.samplers.split(","):
        for tune in tunes if s != "emcee" else [None]:
            if s == "emcee":
                r = run_emcee(model, a.emcee_steps, a.emcee_burn, a.seed, a.walkers)
            elif s == "nutpie":
                r = run_nutpie(model, a.draws, tune, a.chains, a.seed)
            else:
                r = run_nuts(model, s, a.draws, tune, a.chains, a.seed, a.max_doublings)
            key = s if len(tunes) == 1 or s == "emcee" else f"{s}/tune={tune}"
            results[key] = r
            print(json.dumps({key: r}, indent=1, default=str), flush=True)
    nuts = [results[s] for s in ("numpyro", "pymc") if s in results]
    if nuts and "emcee" in results:
        e = results["emcee"]
        for r in nuts:
            gain_s = r["ess_per_s_sampling"] / e["ess_per_s_sampling"]
            gain_w = r["ess_per_s_wall"] / e["ess_per_s_wall"]
            print(f"{r['sampler']}: ESS/s (sampling) {r['ess_per_s_sampling']:.2f} vs emcee "
                  f"{e['ess_per_s_sampling']:.3f} -> x{gain_s:.0f}; ESS/s (wall) "
                  f"{r['ess_per_s_wall']:.2f} vs {e['ess_per_s_wall']:.3f} -> x{gain_w:.0f}")
    results["load_average_end"] = os.getloadavg()
    import resource

    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (fit + posteriors): {results['peak_rss_mb']:.0f} MB")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
