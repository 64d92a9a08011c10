"""Benchmark of the full-posterior samplers: NUTS (nutpie, numpyro, PyMC) against emcee.

Case: Effelsberg, 9 mm, order 5 (21 Zernike terms, piston fixed), three 127 × 127 maps
(3 × 16 129 samples; d_z = -22, 0, +22 mm), SNR 200, the default aperture sampling and
fit configuration (c_dB, amplitudes and offsets free: 27 free parameters), or
``--scattered N`` on-the-fly samples per map (bench/otf_scan.py).  All samplers share the
same log-density (the PyMC model of bayesoof.inference.model, whitened around the
posterior mode with the quick fit's Laplace covariance); nutpie runs on the C-compiled
density by default (``--nutpie-backend``).

Each NUTS sampler runs once per warm-up length (``--tune`` list) with the largest of
``--draws``; the first n draws of that run ARE the run of n draws (after warm-up NUTS does
not depend on how many draws follow), so each row reports them at every n of ``--draws``:

* R-hat max and bulk ESS min over K (4 chains; converged = R-hat <= 1.01, ESS >= 400,
  no divergence), divergences;
* gradient evaluations, warm-up included, and the warm-up's alone;
* sampling s (kept draws), wall s and CPU s of the run (Laplace, compilation, warm-up and
  sampling; CPU = this process + PyMC's worker processes) scaled to the row's gradients;
* per run: ms of CPU per gradient (everything included) and the load average.

emcee runs for a fixed number of steps (``--emcee-steps``, after ``--emcee-burn``); its ESS
is ArviZ's bulk ESS over walkers-as-chains and, for comparison, walkers × steps / τ_max
with τ emcee's integrated autocorrelation time.

Run:  python bench/bench_sample.py --samplers pymc,nutpie,numpyro --tune 100
                                    (the sampler comparison; PyMC first: its worker
                                     processes need fork() before JAX starts)
      python bench/bench_sample.py --samplers nutpie --tune 100,200,300 --draws 250,500,1000
                                    (the warm-up study)
      python bench/bench_sample.py --quick    (31 × 31 maps, order 3: a smoke test)
      python bench/bench_sample.py --scattered 10000   (3 × 10 000 on-the-fly samples)

At the end: the whole process's wall and CPU time and its peak RSS (quick fit + all
posteriors; PyMC's largest worker process apart).
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

T_START = time.perf_counter()

def _setup_devices(n: int) -> None:
    """One JAX CPU device per core (must run before JAX starts)."""
    flag = f"--xla_force_host_platform_device_count={n}"
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()


def k_stats(result, n_draws: int | None = None) -> dict:
    """R-hat max and bulk ESS min over K (primary chains; the first ``n_draws`` draws)."""
    import arviz as az

    post = result.primary_posterior()[["K"]]
    if n_draws is not None:
        post = post.isel(draw=slice(0, n_draws))
    ess = az.ess(post, method="bulk")["K"].values
    rhat = az.rhat(post)["K"].values
    return {"ess_bulk_min_K": float(np.min(ess)), "r_hat_max_K": float(np.max(rhat))}


def cpu_seconds() -> float:
    """CPU time (user + sys) of this process and of its finished children (PyMC's workers)."""
    import resource

    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def prefix_rows(res, draws_list, wall, cpu) -> list[dict]:
    """One row per number of kept draws: the first ``n`` draws of each chain of one run.

    NUTS after warm-up does not depend on how many draws follow (same seed, same warm-up),
    so the first n draws of a run of N are the run of n draws.  Its gradients are the
    warm-up's plus the first n draws'; its sampling and wall times are scaled from the
    run's by gradients (compilation and Laplace are in the run's wall time once).
    """
    n_steps = np.asarray(res.idata.sample_stats["n_steps"].values)
    div = np.asarray(res.idata.sample_stats["diverging"].values)
    t = res.timing
    n_warm = t["n_grad"] - t["n_grad_sampling"]
    # numpyro's "sampling" time counts the kept draws only; PyMC's and nutpie's count the
    # warm-up too (the chains run in other processes / threads: one span)
    counted = t["n_grad_sampling"] if res.sampler == "numpyro" else t["n_grad"]
    per_grad = t["sampling"] / max(counted, 1)
    fixed = wall - per_grad * t["n_grad"]
    rows = []
    for n in draws_list:
        grads = n_warm + int(n_steps[:, :n].sum())
        rows.append({
            "draws": n, **k_stats(res, n), "divergences": int(div[:, :n].sum()),
            "n_grad": grads, "n_grad_warmup": int(n_warm),
            "sampling_s": per_grad * int(n_steps[:, :n].sum()),
            "warmup_and_sampling_s": per_grad * grads,
            "wall_s_est": fixed + per_grad * grads,
            "cpu_s_est": cpu * grads / max(t["n_grad"], 1),
        })
    for r in rows:
        r["converged_K"] = (r["r_hat_max_K"] <= 1.01 and r["ess_bulk_min_K"] >= 400
                            and r["divergences"] == 0)
    return rows


def run_nuts(model, sampler, draws_list, tune, chains, seed, options=None):
    """One run of ``max(draws_list)`` kept draws, reported at every prefix of draws_list."""
    from bayesoof.inference.sample import sample_model

    draws = max(draws_list)
    t0, c0 = time.perf_counter(), cpu_seconds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sample_model(model, sampler=sampler, draws=draws, tune=tune, chains=chains,
                           seed=seed, products=False, **(options or {}))
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    t = res.timing
    d = res.diagnostics
    return {
        "sampler": res.sampler + (f" ({t['backend']})" if t.get("backend") else ""),
        "chains": chains,
        "tune": tune,
        "draws": draws,
        "rows": prefix_rows(res, sorted(draws_list), wall, cpu),
        "diagnostics_all_parameters": {k: d.get(k) for k in (
            "r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "tree_depth_mean",
            "converged")},
        "wall_s": wall,
        "cpu_s": cpu,
        "laplace_s": t["laplace"],
        "sampler_wall_s": t["sampler_wall"],
        "sampling_s": t["sampling"],
        "n_grad": t["n_grad"],
        "n_grad_sampling": t["n_grad_sampling"],
        "ms_per_grad_cpu": 1e3 * cpu / max(t["n_grad"], 1),
        "load_average": os.getloadavg(),
        "extra": {k: t.get(k) for k in ("chain_method", "devices", "cores", "compile_mode",
                                         "first_chunk_time", "backend")},
    }


#: (first, every) stopping grids evaluated by --stop-study (draws per chain)
STOP_GRIDS = ((200, 50), (250, 50), (300, 50), (300, 100), (400, 100))


def stop_study(model, seeds, tune, cap, chains, max_tree_depth=None) -> list[dict]:
    """Draws to convergence of nutpie (the default NUTS) over several seeds.

    One run of ``cap`` draws per seed; the stopping rule of the runners
    (bayesoof.inference.sample.convergence_rule: the final verdict's R-hat <= 1.01, bulk
    and tail ESS >= 400 over every free parameter of the primary mode) is evaluated on
    the first n draws of each chain for n = 50, 100, ... cap -- what a run that stops when
    converged checks at those n (NUTS after warm-up does not depend on what follows).
    Per seed: the first converged n of every grid of STOP_GRIDS, its gradients (warm-up
    included), the verdict at 750 draws (the former fixed default), and how far the
    posterior mean and sd of every parameter at the stop lie from those of the whole run
    (in posterior sd of the whole run: the optional-stopping check).  ``max_tree_depth``:
    nutpie's cap (None: its default, samplers.base.NUTPIE_MAX_DEPTH).
    """
    from bayesoof.inference.sample import convergence_rule, sample_model

    out = []
    for seed in seeds:
        t0, c0 = time.perf_counter(), cpu_seconds()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            depth = {} if max_tree_depth is None else {"max_tree_depth": max_tree_depth}
            res = sample_model(model, sampler="nutpie", draws=cap, tune=tune, chains=chains,
                               seed=seed, products=False, **depth)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        z, t = res.z_draws, res.timing
        lp = np.asarray(res.idata.sample_stats["lp"].values)
        n_steps = np.asarray(res.idata.sample_stats["n_steps"].values)
        n_warm = t["n_grad"] - t["n_grad_sampling"]
        rule = convergence_rule(res.density)
        grid = list(range(50, cap + 1, 50))
        ok = {n: rule.converged(z[:, :n], {"lp": lp[:, :n]}) for n in grid}
        post = res.idata.posterior
        names = [v.name for v in model.free_RVs]

        def moments(n, post=post, names=names):
            sub = post[names].isel(draw=slice(0, n))
            return ({k: sub[k].mean(("chain", "draw")).values for k in names},
                    {k: sub[k].std(("chain", "draw")).values for k in names})

        m_all, s_all = moments(cap)
        stops = {}
        for first, every in STOP_GRIDS:
            n = next((n for n in range(first, cap, every) if ok.get(n)), None)
            row = {"stop_draws": n}
            if n is not None:
                m, sd = moments(n)
                row["gradients"] = int(n_warm + n_steps[:, :n].sum())
                row["max_mean_shift_sd"] = float(max(
                    np.max(np.abs(m[k] - m_all[k]) / s_all[k]) for k in names))
                row["max_sd_ratio_dev"] = float(max(
                    np.max(np.abs(sd[k] / s_all[k] - 1)) for k in names))
            stops[f"{first}+{every}k"] = row
        r = {"seed": seed, "tune": tune, "max_tree_depth": max_tree_depth, "cap": cap,
             "wall_s": wall, "cpu_s": cpu, "steps_per_draw": float(n_steps.mean()),
             "n_grad": t["n_grad"], "n_grad_warmup": n_warm,
             "ms_per_grad_cpu": 1e3 * cpu / max(t["n_grad"], 1),
             "load_average": os.getloadavg(),
             "converged_at": [n for n in grid if ok[n]],
             "verdict_750": ok.get(750), "stops": stops,
             "diagnostics_cap": {k: res.diagnostics.get(k) for k in (
                 "r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences")}}
        print(json.dumps(r, default=str), flush=True)
        out.append(r)
    for key in (f"{f}+{e}k" for f, e in STOP_GRIDS):
        ns = [r["stops"][key]["stop_draws"] for r in out]
        print(f"grid {key}: stop at {ns} draws per chain (tune {tune}, max tree depth "
              f"{max_tree_depth or 'default'}); gradients "
              f"{[r['stops'][key].get('gradients') for r in out]}", flush=True)
    return out


def print_rows(key, r) -> None:
    print(f"{key}: wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s (incl. Laplace "
          f"{r['laplace_s']:.1f} s wall, compilation), {r['ms_per_grad_cpu']:.2f} ms CPU/"
          f"gradient, load {r['load_average'][0]:.1f}")
    print(f"  {'draws':>5s} {'R-hat max K':>11s} {'ESS min K':>9s} {'div':>3s} {'gradients':>9s}"
          f" {'warm-up':>7s} {'sampling s':>10s} {'wall s':>7s} {'CPU s':>6s}  converged")
    for w in r["rows"]:
        print(f"  {w['draws']:5d} {w['r_hat_max_K']:11.4f} {w['ess_bulk_min_K']:9.0f} "
              f"{w['divergences']:3d} {w['n_grad']:9d} {w['n_grad_warmup']:7d} "
              f"{w['sampling_s']:10.1f} {w['wall_s_est']:7.1f} {w['cpu_s_est']:6.1f}  "
              f"{w['converged_K']}", flush=True)


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
    p.add_argument("--samplers", default="pymc,nutpie,numpyro,emcee",
                   help="run in this order (PyMC first: its worker processes need fork() "
                        "before JAX starts)")
    p.add_argument("--order", type=int, default=5)
    p.add_argument("--n-grid", type=int, default=127)
    p.add_argument("--draws", default="250,500,1000",
                   help="kept draws per chain: one run of the largest, reported at each "
                        "(the first n draws of a run are the run of n draws)")
    p.add_argument("--tune", default="100",
                   help="warm-up steps; a comma-separated list runs each NUTS sampler once per"
                        " value (the warm-up study)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--emcee-steps", type=int, default=4000)
    p.add_argument("--emcee-burn", type=int, default=1000)
    p.add_argument("--walkers", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--devices", type=int, default=os.cpu_count() or 1,
                   help="JAX CPU devices (one per core) for parallel numpyro chains")
    p.add_argument("--nutpie-backend", default="pytensor",
                   help="nutpie's density: 'pytensor' (the C-compiled one), 'jax' or 'numba'")
    p.add_argument("--quick", action="store_true", help="31 x 31 maps, order 3")
    p.add_argument("--scattered", type=int, default=0, metavar="N",
                   help="N scattered samples per map (an on-the-fly scan, bench/otf_scan.py)"
                        " instead of the n_grid lattice")
    p.add_argument("--stop-study", default=None, metavar="SEEDS",
                   help="comma-separated seeds: draws to convergence of nutpie per seed and "
                        "--tune value (one run of max(--draws) each; see stop_study)")
    p.add_argument("--max-tree-depth", default="", metavar="D[,D...]",
                   help="with --stop-study: nutpie's tree-depth caps to compare (default: its "
                        "default only)")
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
    draws_list = [int(n) for n in str(a.draws).split(",")]
    if a.stop_study:
        seeds = [int(x) for x in a.stop_study.split(",")]
        depths = [int(d) for d in a.max_tree_depth.split(",") if d] or [None]
        for tune in tunes:
            for depth in depths:
                results[f"stop_study/tune={tune}/depth={depth}"] = stop_study(
                    model, seeds, tune, max(draws_list), a.chains, depth)
        a.samplers = ""
    for s in filter(None, a.samplers.split(",")):
        for tune in tunes if s != "emcee" else [None]:
            if s == "emcee":
                r = run_emcee(model, a.emcee_steps, a.emcee_burn, a.seed, a.walkers)
            else:
                opts = {"backend": a.nutpie_backend} if s == "nutpie" else {}
                r = run_nuts(model, s, draws_list, tune, a.chains, a.seed, opts)
            key = s if len(tunes) == 1 or s == "emcee" else f"{s}/tune={tune}"
            results[key] = r
            if s == "emcee":
                print(json.dumps({key: r}, indent=1, default=str), flush=True)
            else:
                print_rows(key, r)
    nuts = [results[s] for s in ("numpyro", "pymc") if s in results]
    if nuts and "emcee" in results:
        e = results["emcee"]
        for r in nuts:
            w = r["rows"][-1]
            gain = w["ess_bulk_min_K"] / w["sampling_s"] / e["ess_per_s_sampling"]
            print(f"{r['sampler']}: ESS/s (sampling) {w['ess_bulk_min_K'] / w['sampling_s']:.2f}"
                  f" vs emcee {e['ess_per_s_sampling']:.3f} -> x{gain:.0f}")
    import resource

    results["load_average_end"] = os.getloadavg()
    results["process_wall_s"] = time.perf_counter() - T_START
    results["process_cpu_s"] = cpu_seconds()
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["peak_rss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"whole process: wall {results['process_wall_s']:.1f} s, CPU (incl. worker "
          f"processes) {results['process_cpu_s']:.1f} s, load average at the end "
          f"{results['load_average_end'][0]:.1f}")
    print(f"peak RSS of this process (fit + posteriors): {results['peak_rss_mb']:.0f} MB; "
          f"largest worker process (PyMC's chains): {results['peak_rss_children_mb']:.0f} MB")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
