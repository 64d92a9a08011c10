"""Misspecification study: coverage and phase error when the data hold what the model lacks.

Data are simulated from bayesoof's simulator with one real-observation effect switched on
at a time, then all together, and fitted with the DEFAULT quick-fit settings
(``bayesoof.fit(data, "effelsberg")``: order 5, σ estimated from the map edges since the
maps carry none, the adequacy test and its misfit remedy as configured).  Per dataset
the noise-only fit is also kept, and the misfit likelihoods of
:mod:`bayesoof.inference.likelihood` are applied to it one by one (``--candidates``), so
the candidates are compared on the same data.

Effects (``SETTINGS``): a defocused map's effective d_z 3.5 % off the commanded one; a
quarter-beam (0.25 λ/D) pointing offset of the plus map; taper order q = 1.8 with the
illumination centre at (0.3, -0.2) m (the fit's default starts q at 1.4, x0 = y0 at 0); leg
shade half-angle 12° (the preset's is 20°); per-map gain drift (±3 % across the map) and
baseline drift (±0.5 % of the peak) along the scan; a coarse point-sampled aperture (60
pixels across the dish, no anti-aliasing) with samples on its FFT grid, as pyoof makes its
maps; and all of these together.  Every setting reuses the truths and noise seeds of the
baseline (no effect), so the phase-error ratio is paired.

Truth: K from ``random_coefficients(5, 0.04, seed)`` (tilts 0), c_dB uniform in
[-16, -12] dB, per-map amplitudes uniform in [800, 1200] and offsets in [20, 80]
(baselines), in-focus peak SNR 300, Effelsberg at 9 mm, d_z = ±22 mm, ``--n-grid``²
samples per map over ±9.5 λ/D.

Per method and setting it prints: the fraction of the free K inside their 90 % intervals
(target 0.90 ± 0.05; binomial se in brackets), the rms of (K̂ - K)/sd (1 if calibrated),
the phase-error rms (rad, illumination-independent plain rms of K̂ - K without piston and
tilts) as sqrt(mean err²), its paired ratio to the baseline setting's (median over
datasets, and the ratio of the rms; target ≤ 1.5), and the fraction of datasets the
adequacy test flagged (on the baseline: the false-alarm rate).  Datasets whose baseline
fit missed the optimum are left out (counted).

Run:  python bench/misspec_study.py --datasets 50 --workers 2 --per-k
      python bench/misspec_study.py --datasets 3 --settings baseline pointing --n-grid 31
Parallel runs (--workers > 1) use dask.distributed (a LocalCluster of --workers processes,
one thread each), each worker with its own PyTensor compile directory (under --compiledir).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings

import numpy as np

Z90 = 1.6448536269514722  # two-sided 90 % normal quantile

SETTINGS = {
    "baseline": {},
    "dz": {"dz_error": 0.035},
    "pointing": {"pointing": 0.25},
    "taper": {"q": 1.8, "x0": 0.3, "y0": -0.2},
    "legs": {"shade": 12.0},
    "drift": {"gain_drift": 0.03, "baseline_drift": 0.005},
    "coarse": {"coarse": 60},
}
SETTINGS["all"] = {k: v for s in list(SETTINGS.values()) for k, v in s.items()}

CANDIDATES = {
    "noise_per_map": {"kind": "noise_per_map"},
    "student_t": {"kind": "student_t"},
    "disc_gls": {"kind": "discrepancy", "covariance": "gls", "envelope_power": 0.5},
    "disc_sandwich": {"kind": "discrepancy", "covariance": "sandwich", "envelope_power": 0.5},
    "hac2": {"kind": "hac", "hac_bandwidth": 2.0},
    "hac4": {"kind": "hac", "hac_bandwidth": 4.0},
    "disc_gls_e0": {"kind": "discrepancy", "covariance": "gls", "envelope_power": 0.0},
    "disc_gls_c2": {"kind": "discrepancy", "covariance": "gls", "envelope_power": 0.5,
                    "correlation": 2.0},
    "disc_sandwich_e0": {"kind": "discrepancy", "covariance": "sandwich",
                         "envelope_power": 0.0},
    "disc_sandwich_c2": {"kind": "discrepancy", "covariance": "sandwich",
                         "envelope_power": 0.5, "correlation": 2.0},
}


def truth(i: int, seed: int) -> dict:
    """Truth of dataset i (the same in every setting)."""
    from bayesoof.simulate import random_coefficients

    rng = np.random.default_rng([seed, i])
    return {
        "K": random_coefficients(5, 0.04, seed=int(rng.integers(2**31))),
        "c_dB": float(rng.uniform(-16.0, -12.0)),
        "amp": rng.uniform(800.0, 1200.0, 3),
        "offset": rng.uniform(20.0, 80.0, 3),
        "noise_seed": int(rng.integers(2**31)),
    }


def make_data(setting: str, i: int, a):
    """Simulated beam maps of dataset i with the effects of ``setting`` (no σ in the maps)."""
    from bayesoof.data.containers import BeamMap, BeamMaps
    from bayesoof.physics.aperture import ApertureGrid
    from bayesoof.physics.telescope import get_telescope
    from bayesoof.simulate import beam_grid, simulate

    eff = SETTINGS[setting]
    t = truth(i, a.seed)
    tel = get_telescope("effelsberg")
    wl, R = 0.009, tel.radius
    d_z = np.array([-0.022, 0.0, 0.022])
    bw = wl / (2 * R)  # λ/D, rad
    if "shade" in eff:
        tel = dataclasses.replace(
            tel, blockage=dataclasses.replace(tel.blockage, shade_half_angle=eff["shade"]))
    sampling = None
    u = v = None
    if "coarse" in eff:  # pyoof: point-sampled aperture, samples on the FFT grid
        blk = tel.blockage
        tel = dataclasses.replace(tel, blockage_func=lambda x, y: blk.mask(x, y, R))
        sampling = ApertureGrid.across(R, eff["coarse"], supersample=1)
        step = 2 * 9.5 * bw / (a.n_grid - 1)
        n_fft = int(round(wl / (step * sampling.dx)))
        du = wl / (n_fft * sampling.dx)
        ax = (np.arange(a.n_grid) - (a.n_grid - 1) / 2) * du
        uu, vv = np.meshgrid(ax, ax, indexing="xy")
        u, v = [uu.ravel()] * 3, [vv.ravel()] * 3
    actual = d_z.copy()
    if "dz_error" in eff:
        actual[2] *= 1.0 + eff["dz_error"]
    pointing = np.zeros((3, 2))
    if "pointing" in eff:
        pointing[2, 0] = eff["pointing"] * bw
    illum = {"c_dB": t["c_dB"], "q": eff.get("q", 1.4), "x0": eff.get("x0", 0.0),
             "y0": eff.get("y0", 0.0)}
    if u is None:
        gu, gv = beam_grid(wl, R, a.n_grid, 9.5)
        u, v = [gu] * 3, [gv] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = simulate(tel, t["K"], wl, actual, illumination=illum, u=u, v=v, amp=t["amp"],
                       offset=t["offset"], pointing=pointing, snr=a.snr,
                       seed=t["noise_seed"], sampling=sampling)
    rng = np.random.default_rng([a.seed, i, 7])
    maps = []
    for k, m in enumerate(sim.maps):
        beam = m.beam.copy()
        if "gain_drift" in eff or "baseline_drift" in eff:
            span = np.ptp(m.v) or 1.0
            ramp = (m.v - m.v.min()) / span - 0.5  # scan time: rows along v
            g = rng.uniform(-1, 1) * eff.get("gain_drift", 0.0)
            b = rng.uniform(-1, 1) * eff.get("baseline_drift", 0.0) * t["amp"][1]
            beam = (beam - t["offset"][k]) * (1 + g * ramp) + t["offset"][k] + b * ramp
        maps.append(BeamMap(m.u, m.v, beam, float(d_z[k]), None, m.name))
    return BeamMaps(tuple(maps), wl, {"OBJECT": f"misspec {setting} {i}"}), t


def _record(name, rec_space, sd_full, t, nl) -> dict:
    from bayesoof.physics import zernike
    from bayesoof.products.rms import plain_rms

    J = len(nl)
    K = rec_space.values[:J]
    free = rec_space.free[:J]
    J_all = max(J, t["K"].size)
    true_K, fit_K = np.zeros(J_all), np.zeros(J_all)
    true_K[: t["K"].size], fit_K[:J] = t["K"], K
    z = (K[free] - true_K[:J][free]) / np.where(sd_full[:J][free] > 0, sd_full[:J][free],
                                                 np.nan)
    err = plain_rms(fit_K - true_K, zernike.nl_list(zernike.j_to_nl(J_all - 1)[0]))
    z_of = {f"{n},{l}": float(zz) for (n, l), zz in zip(np.asarray(nl)[free], z, strict=True)}
    return {"method": name, "inside90": int(np.sum(np.abs(z) <= Z90)), "n": int(free.sum()),
            "z2": float(np.nansum(z * z)), "phase_err": float(err), "z_K": z_of}


def _taper_record(res, t: dict, eff: dict) -> dict:
    """The fitted taper (c_dB, q) and leg geometry with the quick fit's sd (None when
    fixed) and their truths."""
    sd = {k: float(v) for k, v in zip(res.free_names, res.sd, strict=True)}
    p = res.params
    return {"c_dB": float(p["c_dB"]), "c_dB_sd": sd.get("c_dB"), "c_dB_true": t["c_dB"],
            "q": float(p["q"]) if "q" in p else None, "q_sd": sd.get("q"),
            "q_true": eff.get("q", 1.4),
            # the leg geometry (None where fixed), its truth (the preset's half-width 1 m)
            "leg_half_width": _opt(p, "leg_half_width"), "leg_half_width_sd":
                sd.get("leg_half_width"), "leg_half_width_true": 1.0,
            "shade_half_angle": _opt(p, "shade_half_angle"), "shade_half_angle_sd":
                sd.get("shade_half_angle"), "shade_half_angle_true": eff.get("shade", 20.0)}


def _opt(params: dict, name: str):
    """``params[name]`` as a float, None when absent."""
    return float(params[name]) if name in params else None


def one(setting: str, i: int, a) -> list[dict]:
    """Fit dataset i of ``setting``: the default fit, noise-only and each candidate."""
    from bayesoof.inference.fit import fit, misfit_refit

    data, t = make_data(setting, i, a)
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(data, "effelsberg", order=a.order, config=getattr(a, "config", None))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    nl = res.space.nl
    # the noise-only, exact-model fit: before the model error and the misfit covariance
    plain = res.exact_model_last or res.plain_last or res.last
    me = res.model_error or {}
    out = []
    base = {"setting": setting, "dataset": i, "misfit": not res.adequacy.adequate,
            "reduced_chi2": plain.reduced_chi2, "fit_s": wall, "fit_cpu_s": cpu,
            "model_error_sd_ratio": me.get("K_sd_ratio_median"),
            "model_error_shift_sd": me.get("K_shift_max_sd"),
            **_taper_record(res, t, SETTINGS[setting])}
    out.append(base | _record("default", res.last.space, res.last.full_sd(), t, nl))
    out.append(base | _record("noise_only", plain.space, plain.full_sd(), t, nl))
    res.orders[-1] = plain  # candidates start from the noise-only, exact-model solution
    res.exact_model_last = res.model_error = None
    for name in a.candidates:
        opts = dict(CANDIDATES[name])
        kind = opts.pop("kind")
        t1 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec, _ = misfit_refit(res, kind, **opts)
        except Exception as err:  # noqa: BLE001 - a failed candidate is reported, not fatal
            out.append(base | {"method": name, "error": repr(err)})
            continue
        out.append(base | _record(name, rec.space, rec.full_sd(), t, nl)
                   | {"method_s": time.perf_counter() - t1})
    return out


FAILED_BASELINE_CHI2 = 1.5  # baseline (exact-model) fit this far above 1: optimum missed


def _auto_rows(rows: list[dict]) -> list[dict]:
    """Rows 'auto_<candidate>': the candidate where the adequacy test flagged a misfit, the
    noise-only fit where it did not (what the default policy ``remedy = "auto"`` does with
    that candidate as the misfit model)."""
    plain = {(r["setting"], r["dataset"]): r for r in rows if r["method"] == "noise_only"}
    out = []
    for r in rows:
        if r["method"] in ("default", "noise_only") or "n" not in r:
            continue
        p = plain.get((r["setting"], r["dataset"]))
        if p is not None:
            out.append({**(r if r["misfit"] else p), "method": f"auto_{r['method']}"})
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """One line per (setting, method).

    Datasets whose *baseline* fit missed the optimum (reduced χ² > 1.5 on data from the
    model itself: a failure of the optimiser, not of the uncertainty) are left out of every
    setting (paired) and counted in ``excluded``.  ``phase_ratio`` is the median over
    datasets of the paired ratio err(setting) / err(baseline); ``phase_ratio_rms`` the ratio
    of the rms errors.
    """
    table = []
    rows = rows + _auto_rows(rows)
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    bad = {r["dataset"] for r in rows if r["setting"] == "baseline"
           and r.get("reduced_chi2", 0) > FAILED_BASELINE_CHI2}
    base = {(r["method"], r["dataset"]): r["phase_err"] for r in rows
            if r["setting"] == "baseline" and "phase_err" in r}
    for s in settings:
        for m in methods:
            rr = [r for r in rows if r["setting"] == s and r["method"] == m and "n" in r
                  and r["dataset"] not in bad]
            if not rr:
                continue
            k, n = sum(r["inside90"] for r in rr), sum(r["n"] for r in rr)
            err = float(np.sqrt(np.mean([r["phase_err"] ** 2 for r in rr])))
            paired = [r["phase_err"] / base[m, r["dataset"]] for r in rr
                      if (m, r["dataset"]) in base]
            base_rms = [base[m, r["dataset"]] for r in rr if (m, r["dataset"]) in base]
            table.append({
                "setting": s, "method": m, "datasets": len(rr), "coverage90": k / n,
                "binomial_se": float(np.sqrt(0.09 / n)),
                "z_rms": float(np.sqrt(sum(r["z2"] for r in rr) / n)),
                "phase_err_rad": err,
                "phase_ratio": float(np.median(paired)) if paired else float("nan"),
                "phase_ratio_rms": (err / float(np.sqrt(np.mean(np.square(base_rms))))
                                    if base_rms else float("nan")),
                "flagged": float(np.mean([r["misfit"] for r in rr])),
                "excluded": len(bad),
                "fit_cpu_s": float(np.median([r.get("fit_cpu_s", np.nan) for r in rr])),
                "failed": sum(1 for r in rows if r["setting"] == s and r["method"] == m
                              and "error" in r),
            })
    return table


def per_coefficient(rows: list[dict], method: str = "default") -> dict:
    """{setting: {"n,l": (rms z, mean z, datasets)}} of one method's free K: which
    coefficients carry a setting's miscoverage (rows written before the per-K z were
    recorded are skipped)."""
    out: dict = {}
    for r in rows:
        if r["method"] == method and "z_K" in r:
            for k, z in r["z_K"].items():
                out.setdefault(r["setting"], {}).setdefault(k, []).append(z)
    return {s: {k: (float(np.sqrt(np.nanmean(np.square(v)))), float(np.nanmean(v)), len(v))
                for k, v in d.items()} for s, d in out.items()}


def print_per_coefficient(per_k: dict) -> None:
    """rms z of each free K (n,l) per setting (1 if calibrated; se ≈ 1/sqrt(2 N)), and
    the mean z (bias in sd; se ≈ 1/sqrt(N))."""
    keys = list(dict.fromkeys(k for d in per_k.values() for k in d))
    print("per coefficient: rms z (mean z) of the default fit, by setting")
    print(f"{'n,l':<6s}" + "".join(f"{s:>14s}" for s in per_k))
    for k in keys:
        cells = [per_k[s].get(k) for s in per_k]
        print(f"{k:<6s}" + "".join(f"{c[0]:7.2f} ({c[1]:+.2f})" if c else f"{'':>14s}"
                                   for c in cells))


def print_table(table: list[dict]) -> None:
    """The study table (see :func:`summarise` for the columns)."""
    if table:
        print(f"excluded datasets (baseline fit missed the optimum, reduced chi2 > "
              f"{FAILED_BASELINE_CHI2}): {table[0]['excluded']}")
    print(f"{'setting':<9s} {'method':<14s} {'N':>3s} {'cover90':>8s} {'(se)':>7s} "
          f"{'z_rms':>6s} {'phase err':>10s} {'ratio':>6s} {'rms ratio':>9s} {'flagged':>8s} "
          f"{'fit CPU s':>9s}")
    for r in table:
        print(f"{r['setting']:<9s} {r['method']:<14s} {r['datasets']:3d} {r['coverage90']:8.3f} "
              f"({r['binomial_se']:.3f}) {r['z_rms']:6.2f} {r['phase_err_rad']:10.4f} "
              f"{r['phase_ratio']:6.2f} {r['phase_ratio_rms']:9.2f} {r['flagged']:8.2f} "
              f"{r['fit_cpu_s']:9.1f}"
              + (f"  ({r['failed']} failed)" if r["failed"] else ""))


def _own_compiledir(base: str) -> None:
    """Give this worker process its own PyTensor compile directory and bayesoof cache.

    Worker processes sharing one compile directory wait on its lock, and under load a wait
    can time out (it stopped a run of the previous session); with one directory each,
    every worker compiles its objectives once (1–2 CPU-minutes) and never waits on another.
    Takes effect only before the worker's first import of PyTensor (its first job).
    """
    import os

    if "pytensor" in sys.modules:
        return
    k = os.getpid()
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        f for f in (os.environ.get("PYTENSOR_FLAGS", ""),
                    f"base_compiledir={base}/pytensor-{k}") if f)
    os.environ["BAYESOOF_CACHE_DIR"] = f"{base}/bayesoof-{k}"


def _job(job, a, base=None, run=None):
    """``run(setting, dataset, a)`` (default :func:`one`) -> (job, rows); an error row if
    it raises."""
    if base is not None:
        _own_compiledir(base)
    try:  # one failed job must not end the run
        return job, (run or one)(job[0], job[1], a)
    except Exception as err:  # noqa: BLE001
        return job, [{"setting": job[0], "dataset": job[1], "method": "job",
                      "error": repr(err)[:300]}]


def _parallel(jobs, a, run=None):
    """Run the jobs (``run``, default :func:`one`) on a dask.distributed LocalCluster of
    ``a.workers`` processes (one thread each; dask's nanny limits BLAS/OpenMP to one
    thread); yield (job, rows) as they end."""
    import os
    import tempfile

    from dask.distributed import Client, LocalCluster, as_completed

    base = a.compiledir or tempfile.mkdtemp(prefix="misspec-compile-")
    os.makedirs(base, exist_ok=True)
    with LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        futures = [client.submit(_job, job, a, base, run, pure=False) for job in jobs]
        for fut in as_completed(futures):
            yield fut.result()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", type=int, default=50)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--candidates", nargs="*", default=[], choices=list(CANDIDATES),
                   help="misfit likelihoods also applied to each noise-only fit (each adds "
                        "its cost); the default fit and the noise-only one are always kept")
    p.add_argument("--n-grid", type=int, default=41)
    p.add_argument("--order", type=int, default=None, help="fit order (default: the config's)")
    p.add_argument("--config", default=None,
                   help="fit configuration instead of the default (a preset name or a TOML "
                        "file, e.g. one with [legs] free = false for the previous default)")
    p.add_argument("--snr", type=float, default=300.0)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--workers", type=int, default=1,
                   help="dask LocalCluster worker processes (one thread each)")
    p.add_argument("--compiledir", default=None,
                   help="parent of the per-worker PyTensor compile directories (default: a "
                        "new temporary one); reuse it to skip the compiles in a later run")
    p.add_argument("--json", default=None, help="write every record and the table here")
    p.add_argument("--rows", default=None,
                   help="append every record to this JSON-lines file as it completes")
    p.add_argument("--resume", action="store_true",
                   help="skip the (setting, dataset) pairs already in the --rows file")
    p.add_argument("--first", type=int, default=None,
                   help="with --table-from: only datasets 0 .. first-1")
    p.add_argument("--table-from", default=None,
                   help="only print the table of a --rows file (e.g. of a run still going)")
    p.add_argument("--per-k", action="store_true",
                   help="also print the rms and mean z of each free K per setting")
    a = p.parse_args(argv)
    if a.table_from:
        with open(a.table_from) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        if a.first is not None:  # e.g. to compare with a shorter run on the same datasets
            rows = [r for r in rows if r["dataset"] < a.first]
        print_table(summarise(rows))
        if a.per_k:
            print_per_coefficient(per_coefficient(rows))
        return 0
    # datasets interleaved across settings, so that a partial run covers every setting
    jobs = [(s, i) for i in range(a.datasets) for s in a.settings]
    if a.rows and a.resume:
        try:
            with open(a.rows) as fh:
                done = {(r["setting"], r["dataset"]) for r in map(json.loads, filter(
                    str.strip, fh)) if r.get("method") == "default"}
        except FileNotFoundError:
            done = set()
        jobs = [j for j in jobs if j not in done]
        print(f"resuming: {len(done)} datasets already in {a.rows}, {len(jobs)} to run")
    t0 = time.perf_counter()
    sink = open(a.rows, "a") if a.rows else None  # noqa: SIM115 - closed below
    rows = []

    def keep(recs):
        rows.extend(recs)
        if sink:
            sink.write("".join(json.dumps(r) + "\n" for r in recs))
            sink.flush()

    try:
        if a.workers > 1:
            for _, recs in _parallel(jobs, a):
                keep(recs)
        else:
            for s, i in jobs:
                keep(one(s, i, a))
    finally:
        if sink:
            sink.close()
    table = summarise(rows)
    print(f"misspecification study: {a.datasets} datasets per setting, n_grid {a.n_grid}, "
          f"SNR {a.snr:g}, fit order {a.order or 'default'}; "
          f"{time.perf_counter() - t0:.0f} s")
    print_table(table)
    if a.per_k:
        print_per_coefficient(per_coefficient(rows))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"args": vars(a), "table": table, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
