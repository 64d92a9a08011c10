"""Misspecification study of the POSTERIOR: coverage and phase error of ``bayesoof.sample``.

The datasets are those of :mod:`bench.misspec_study` (same truths, noise seeds and effects,
made by its :func:`make_data`): each is fitted with the DEFAULT quick fit
(``bayesoof.fit(data, "effelsberg")``, as that study does) and then sampled with the DEFAULT
posterior (``bayesoof.sample(..., fit_result=fit)`` as ``bayesoof sample`` calls it:
default sampler ``"nuts"``, 4 chains, its default stopping rule, the misfit handling the
quick fit chose, the leg geometry and q sampled or held as the model decides).

Per dataset it records the central 90 % posterior interval (5 % and 95 % quantiles of the
draws of the primary chains) of every free K and whether it holds the truth, the z of
the posterior mean ((mean - truth) / sd), the posterior-mean phase error (plain rms of
K_mean - K without piston and tilts, as the quick-fit study defines it), R-hat max,
bulk/tail ESS min, divergences, whether the run converged, the adequacy verdicts (quick
fit's and posterior's), the nuisances' posterior (c_dB, q, legs: mean, sd, interval,
truth) and the wall/CPU time of the fit and of the posterior.  The quick fit's own record
(:func:`bench.misspec_study._record`) is kept beside it, so both sides are paired.

The table per setting: coverage of the 90 % intervals (target 0.90 ± 0.05, binomial se in
brackets), rms z (1 if calibrated), phase-error rms and its paired ratio to the baseline
(median over datasets and ratio of the rms; target ≤ 1.5), converged fraction, total and
per-dataset-max divergences, median CPU s of the posterior, the number of datasets whose
K draws were carried onto the quick fit's misfit covariance (bayesoof.inference.misfit_adjust,
on when the fit flagged a misfit) and the coverage of the draws before that adjustment.
Datasets whose baseline quick fit missed the optimum (reduced χ² > 1.5) are left out, as in
the quick-fit study.  A second table gives, per setting and nuisance (c_dB, q, leg
half-width, shade angle), the coverage of the 90 % intervals, rms z and mean z of the
posterior (where it has draws of it: sampled, or a held parameter carried over,
bayesoof.inference.held_marginal) and of the quick fit (estimate ± 1.645 reported sd).

Run:  nice python bench/misspec_posterior.py --datasets 50 --settings baseline all \\
          --n-grid 31 --rows /tmp/post.jsonl --resume
      python bench/misspec_posterior.py --table-from /tmp/post.jsonl
Parallel runs use dask.distributed (a LocalCluster of --workers processes, one thread
each, each with its own PyTensor compile directory), as bench/misspec_study.py does, also
for ``--workers 1`` (the default): inside a dask worker (a daemonic process) the 4 chains
run in threads of that worker (nutpie_chains.default_processes), so one worker uses one
core.  ``--workers 0`` runs in this process (chains in forked processes, one per chain).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import misspec_study as ms  # noqa: E402 - the quick-fit study's simulation, reused

NUISANCES = ("c_dB", "q", "leg_half_width", "shade_half_angle")


def _truths(t: dict, eff: dict) -> dict:
    """True values of the nuisances recorded (the preset's legs: half-width 1 m, 20°)."""
    return {"c_dB": t["c_dB"], "q": eff.get("q", 1.4), "leg_half_width": 1.0,
            "shade_half_angle": eff.get("shade", 20.0)}


def _interval_record(draws: np.ndarray, truth: float) -> dict:
    lo, hi = np.quantile(draws, [0.05, 0.95])
    return {"mean": float(draws.mean()), "sd": float(draws.std(ddof=1)), "q05": float(lo),
            "q95": float(hi), "truth": float(truth), "inside90": bool(lo <= truth <= hi)}


def posterior_record(post, t: dict, eff: dict) -> dict:
    """Coverage, z and phase error of the posterior's K, diagnostics and nuisances."""
    from bayesoof.physics import zernike
    from bayesoof.products.rms import plain_rms

    info = post.info
    K = post.K_draws()  # (S, J) primary chains, fixed entries broadcast
    J = K.shape[1]
    J_all = max(J, t["K"].size)
    true_K = np.zeros(J_all)
    true_K[: t["K"].size] = t["K"]
    free = np.asarray(info.free_j, int)
    lo, hi = np.quantile(K[:, free], [0.05, 0.95], axis=0)
    tk = true_K[free]
    inside = (lo <= tk) & (tk <= hi)
    mean, sd = K[:, free].mean(axis=0), K[:, free].std(axis=0, ddof=1)
    z = (mean - tk) / np.where(sd > 0, sd, np.nan)
    K_mean = np.zeros(J_all)
    K_mean[:J] = K.mean(axis=0)
    err = plain_rms(K_mean - true_K, zernike.nl_list(zernike.j_to_nl(J_all - 1)[0]))
    d = post.diagnostics or {}
    post_adequacy = (post.products or {}).get("adequacy")
    rec = {
        "inside90": int(inside.sum()), "n": int(free.size), "z2": float(np.nansum(z * z)),
        "z_max": float(np.nanmax(np.abs(z))), "phase_err": float(err),
        "K_free_j": free.tolist(), "K_q05": lo.tolist(), "K_q95": hi.tolist(),
        "K_inside": inside.astype(int).tolist(), "K_true": tk.tolist(),
        "K_mean": mean.tolist(), "K_sd": sd.tolist(),
        "converged": bool(post.converged), "problems": list(post.problems),
        "r_hat_max": d.get("r_hat_max"), "ess_bulk_min": d.get("ess_bulk_min"),
        "ess_tail_min": d.get("ess_tail_min"), "divergences": d.get("divergences"),
        "tree_depth_mean": d.get("tree_depth_mean"),
        "draws_per_chain": d.get("draws_per_chain"),
        "n_grad": (post.timing or {}).get("n_grad_sampling"),
        "sampler": post.sampler, "likelihood": info.likelihood,
        "held": sorted(getattr(info, "held", {}) or {}),
        "post_adequate": None if post_adequacy is None else bool(post_adequacy.adequate),
        "post_adequacy": None if post_adequacy is None else post_adequacy.line(),
    }
    pp = post.primary_posterior()
    rec["adjusted"] = post.adjustment is not None  # K carried onto the fit's misfit cov
    if "K_noise_only" in pp:  # the draws before that adjustment
        K0 = info.full_K(pp["K_noise_only"].values.reshape(-1, free.size))[:, free]
        lo0, hi0 = np.quantile(K0, [0.05, 0.95], axis=0)
        rec["noise_only_inside90"] = int(((lo0 <= tk) & (tk <= hi0)).sum())
    ill = post.illumination_draws()
    truths = _truths(t, eff)
    for name in NUISANCES:
        if name in pp:  # sampled
            x = pp[name].values.reshape(-1)
        elif name in ill and name in info.free_illum:
            x = ill[name]
        else:
            continue
        rec[f"post_{name}"] = _interval_record(np.asarray(x, float), truths[name])
    return rec


def quick_nuisances(res, t: dict, eff: dict) -> dict:
    """The quick fit's nuisance intervals (estimate ± 1.645 reported sd), as the posterior's."""
    sd = res.last.full_sd()
    names = res.last.space.names
    out = {}
    for name, truth in _truths(t, eff).items():
        if name not in names or not res.last.space.free_of(name).all():
            continue
        i = names.index(name)
        v, s = float(res.last.space.values[i]), float(sd[i])
        out[f"quick_{name}"] = {"mean": v, "sd": s, "q05": v - 1.645 * s,
                                "q95": v + 1.645 * s, "truth": float(truth),
                                "inside90": bool(abs(v - truth) <= 1.645 * s)}
    return out


def nuisance_table(rows: list[dict]) -> list[dict]:
    """Per setting and nuisance: coverage of the 90 % interval and rms z, both sides."""
    out = []
    for s in dict.fromkeys(r["setting"] for r in rows):
        for name in NUISANCES:
            for side in ("post", "quick"):
                recs = [r[f"{side}_{name}"] for r in rows
                        if r["setting"] == s and f"{side}_{name}" in r]
                if not recs:
                    continue
                z = np.array([(x["mean"] - x["truth"]) / x["sd"] for x in recs if x["sd"] > 0])
                out.append({"setting": s, "nuisance": name, "side": side, "n": len(recs),
                            "cover90": float(np.mean([x["inside90"] for x in recs])),
                            "z_rms": float(np.sqrt(np.mean(z**2))) if z.size else float("nan"),
                            "z_mean": float(np.mean(z)) if z.size else float("nan")})
    return out


def print_nuisances(table: list[dict]) -> None:
    """The nuisance table (:func:`nuisance_table`)."""
    print(f"{'setting':<9s} {'nuisance':<17s} {'side':<6s} {'N':>3s} {'cover90':>8s} "
          f"{'z_rms':>6s} {'z_mean':>7s}")
    for r in table:
        print(f"{r['setting']:<9s} {r['nuisance']:<17s} {r['side']:<6s} {r['n']:3d} "
              f"{r['cover90']:8.3f} {r['z_rms']:6.2f} {r['z_mean']:7.2f}")


def one(setting: str, i: int, a) -> list[dict]:
    """Quick fit and posterior of dataset i of ``setting``; one row."""
    from bayesoof.inference.fit import fit
    from bayesoof.inference.sample import sample

    data, t = ms.make_data(setting, i, a)
    eff = ms.SETTINGS[setting]
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(data, "effelsberg", order=a.order)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    quick = ms._record("default", res.last.space, res.last.full_sd(), t, res.space.nl)
    plain = res.exact_model_last or res.plain_last or res.last  # noise-only, exact model
    J = len(res.space.nl)
    base = {"setting": setting, "dataset": i, "method": "posterior",
            "fit_misfit": not res.adequacy.adequate,
            "reduced_chi2": plain.reduced_chi2,
            "fit_s": fit_s, "fit_cpu_s": fit_cpu,
            "quick_inside90": quick["inside90"], "quick_n": quick["n"],
            "quick_z2": quick["z2"], "quick_phase_err": quick["phase_err"],
            "quick_legs": {k: ms._opt(res.params, k)
                           for k in ("leg_half_width", "shade_half_angle")},
            # per coefficient (all J; the posterior's free ones are K_free_j): the quick
            # fit's estimate, its reported sd (HAC when flagged) and its noise-only sd
            "quick_K": res.last.space.values[:J].tolist(),
            "quick_K_sd": res.last.full_sd()[:J].tolist(),
            "noise_only_K_sd": plain.full_sd()[:J].tolist()}
    base |= quick_nuisances(res, t, eff)
    t1, c1 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = sample(data, telescope="effelsberg", order=res.order, fit_result=res,
                      seed=a.sample_seed, progressbar=False)
    base |= {"post_s": time.perf_counter() - t1, "post_cpu_s": time.process_time() - c1}
    if post.idata is None:
        return [base | {"error": "no draws"}]
    return [base | posterior_record(post, t, eff)]


def summarise(rows: list[dict]) -> list[dict]:
    """One line per setting (posterior) and the quick fit's line on the same datasets."""
    ok = [r for r in rows if "n" in r]
    bad = {r["dataset"] for r in ok if r["setting"] == "baseline"
           and r.get("reduced_chi2", 0) > ms.FAILED_BASELINE_CHI2}
    table = []
    for s in dict.fromkeys(r["setting"] for r in rows):
        rr = [r for r in ok if r["setting"] == s and r["dataset"] not in bad]
        failed = sum(1 for r in rows if r["setting"] == s and "n" not in r)
        if not rr:
            continue
        for side, pre in (("posterior", ""), ("quick fit", "quick_")):
            base = {r["dataset"]: r[pre + "phase_err"] for r in ok
                    if r["setting"] == "baseline"}
            k = sum(r[pre + "inside90"] for r in rr)
            n = sum(r[pre + "n"] for r in rr)
            err = float(np.sqrt(np.mean([r[pre + "phase_err"] ** 2 for r in rr])))
            paired = [r[pre + "phase_err"] / base[r["dataset"]] for r in rr
                      if r["dataset"] in base]
            b_rms = [base[r["dataset"]] for r in rr if r["dataset"] in base]
            line = {"setting": s, "method": side, "datasets": len(rr), "coverage90": k / n,
                    "binomial_se": float(np.sqrt(0.09 / n)),
                    "z_rms": float(np.sqrt(sum(r[pre + "z2"] for r in rr) / n)),
                    "phase_err_rad": err,
                    "phase_ratio": float(np.median(paired)) if paired else float("nan"),
                    "phase_ratio_rms": (err / float(np.sqrt(np.mean(np.square(b_rms))))
                                        if b_rms else float("nan")),
                    "excluded": len(bad), "failed": failed}
            if side == "posterior":
                div = [r.get("divergences") or 0 for r in rr]
                line |= {"converged": float(np.mean([r["converged"] for r in rr])),
                         "divergences": int(sum(div)), "div_max": int(max(div)),
                         "with_div": int(sum(d > 0 for d in div)),
                         "cpu_s": float(np.median([r["post_cpu_s"] for r in rr])),
                         # datasets whose K draws were carried onto the quick fit's misfit
                         # covariance, and the coverage the draws had before that
                         "adjusted": int(sum(bool(r.get("adjusted")) for r in rr)),
                         "noise_only_coverage90": sum(r.get("noise_only_inside90",
                                                            r["inside90"]) for r in rr) / n}
            table.append(line)
    return table


def print_table(table: list[dict]) -> None:
    """The study table (columns: see :func:`summarise`)."""
    if table:
        print(f"excluded datasets (baseline fit missed the optimum, reduced chi2 > "
              f"{ms.FAILED_BASELINE_CHI2}): {table[0]['excluded']}")
    print(f"{'setting':<9s} {'method':<10s} {'N':>3s} {'cover90':>8s} {'(se)':>7s} "
          f"{'z_rms':>6s} {'phase err':>10s} {'ratio':>6s} {'rms ratio':>9s} {'conv':>5s} "
          f"{'div (sets, max)':>16s} {'CPU s':>6s} {'adjusted':>8s} {'noise-only cover90':>18s}")
    for r in table:
        extra = (f" {r['converged']:5.2f} {r['divergences']:5d} ({r['with_div']:2d}, "
                 f"{r['div_max']:3d}) {r['cpu_s']:6.0f} {r['adjusted']:8d} "
                 f"{r['noise_only_coverage90']:18.3f}" if "converged" in r else "")
        print(f"{r['setting']:<9s} {r['method']:<10s} {r['datasets']:3d} "
              f"{r['coverage90']:8.3f} ({r['binomial_se']:.3f}) {r['z_rms']:6.2f} "
              f"{r['phase_err_rad']:10.4f} {r['phase_ratio']:6.2f} "
              f"{r['phase_ratio_rms']:9.2f}" + extra
              + (f"  ({r['failed']} failed)" if r["failed"] else ""))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", type=int, default=50)
    p.add_argument("--settings", nargs="+", default=["baseline", "all"],
                   choices=list(ms.SETTINGS))
    p.add_argument("--n-grid", type=int, default=31)
    p.add_argument("--order", type=int, default=None, help="fit order (default: the config's)")
    p.add_argument("--snr", type=float, default=300.0)
    p.add_argument("--seed", type=int, default=2026, help="the datasets' seed (as the study)")
    p.add_argument("--sample-seed", type=int, default=0, help="bayesoof.sample's seed")
    p.add_argument("--workers", type=int, default=1,
                   help="dask LocalCluster worker processes (one thread each; their chains "
                        "run in threads); 0: in this process (chains in forked processes)")
    p.add_argument("--compiledir", default=None,
                   help="parent of the per-worker PyTensor compile directories")
    p.add_argument("--rows", default=None,
                   help="append every row to this JSON-lines file as it completes")
    p.add_argument("--resume", action="store_true",
                   help="skip the (setting, dataset) pairs already in the --rows file")
    p.add_argument("--first", type=int, default=None,
                   help="with --table-from: only datasets 0 .. first-1")
    p.add_argument("--table-from", default=None, help="only print the table of a --rows file")
    a = p.parse_args(argv)
    if a.table_from:
        with open(a.table_from) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        if a.first is not None:
            rows = [r for r in rows if r["dataset"] < a.first]
        print_table(summarise(rows))
        print_nuisances(nuisance_table(rows))
        return 0
    jobs = [(s, i) for i in range(a.datasets) for s in a.settings]  # interleaved
    if a.rows and a.resume:
        try:
            with open(a.rows) as fh:
                done = {(r["setting"], r["dataset"]) for r in map(json.loads, filter(
                    str.strip, fh)) if "n" in r}
        except FileNotFoundError:
            done = set()
        jobs = [j for j in jobs if j not in done]
        print(f"resuming: {len(done)} datasets already in {a.rows}, {len(jobs)} to run",
              flush=True)
    t0 = time.perf_counter()
    sink = open(a.rows, "a") if a.rows else None  # noqa: SIM115 - closed below
    rows = []
    try:
        source = (ms._parallel(jobs, a, run=one) if a.workers > 0
                  else (ms._job(j, a, run=one) for j in jobs))
        for (s, i), recs in source:
            rows.extend(recs)
            if sink:
                sink.write("".join(json.dumps(r) + "\n" for r in recs))
                sink.flush()
            r = recs[0]
            print(f"{s} {i}: " + (f"{r['inside90']}/{r['n']} inside, phase err "
                                  f"{r['phase_err']:.4f}, converged {r['converged']}, "
                                  f"div {r['divergences']}, CPU {r['post_cpu_s']:.0f} s"
                                  if "n" in r else r.get("error", "?")), flush=True)
    finally:
        if sink:
            sink.close()
    print(f"posterior misspecification study: {a.datasets} datasets per setting, n_grid "
          f"{a.n_grid}, SNR {a.snr:g}, fit order {a.order or 'default'}; "
          f"{time.perf_counter() - t0:.0f} s")
    print_table(summarise(rows))
    print_nuisances(nuisance_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
