"""Coverage of the posterior intervals over many simulated datasets.

For each dataset: draw a truth, simulate three maps, run the quick fit and the sampler,
and record whether each free parameter's truth lies inside its central 50% and 90%
posterior intervals (equal-tailed quantiles).  For calibrated posteriors the fractions
are 0.50 and 0.90 (the brief's target: nominal ± 3 points); the binomial standard error
of each fraction is printed (parameters of one dataset are correlated, so the real
spread is somewhat larger than the binomial one).

Truths: K from ``simulate.random_coefficients(order, 0.05, seed)`` (0.05 wave rms per
mode, tilts 0), c_dB uniform in [-18, -11] dB, amplitudes uniform in [50, 200], offsets
uniform in [-1, 1] (q = 1.4 is fixed in the default fit configuration, as in the
simulation).  Effelsberg, 9 mm, d_z = ±22 mm, SNR 200, 48 aperture pixels across the dish
for simulation and fit (an exact model: the study checks the inference).

Run:  python bench/coverage_study.py --datasets 60            (about 20-40 s per dataset)
      python bench/coverage_study.py --datasets 4 --n-grid 21  (smoke test)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np


def one_dataset(i: int, a) -> dict:
    from bayesoof.inference.fit import fit
    from bayesoof.inference.sample import sample
    from bayesoof.physics.aperture import ApertureGrid
    from bayesoof.simulate import random_coefficients, simulate

    rng = np.random.default_rng([a.seed, i])
    sampling = ApertureGrid.across(50.0, a.aperture)
    K = random_coefficients(a.order, scale=0.05, seed=int(rng.integers(2**31)))
    c_dB = float(rng.uniform(-18.0, -11.0))
    amp = rng.uniform(50.0, 200.0, 3)
    offset = rng.uniform(-1.0, 1.0, 3)
    illum = {"c_dB": c_dB, "q": 1.4, "x0": 0.0, "y0": 0.0}
    data = simulate("effelsberg", K, n_grid=a.n_grid, snr=200.0, seed=int(rng.integers(2**31)),
                    amp=amp, offset=offset, illumination=illum, sampling=sampling)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fr = fit(data, telescope="effelsberg", order=a.order, sampling=sampling)
        post = sample(data, telescope="effelsberg", order=a.order, fit_result=fr,
                      sampler=a.sampler, draws=a.draws, tune=a.tune, chains=a.chains,
                      seed=i, products=False)
    info = post.info
    truths = {"K": K[info.free_j], "c_dB": np.array([c_dB]), "amp": amp, "offset": offset}
    rec = {"dataset": i, "wall_s": time.perf_counter() - t0, "converged": post.converged,
           "problems": post.problems, "inside": {}, "n": {}}
    post_ds = post.primary_posterior()
    for name, tv in truths.items():
        if name not in post_ds:
            continue
        d = post_ds[name].values
        d = d.reshape(d.shape[0] * d.shape[1], -1)
        for p in a.levels:
            lo, hi = np.quantile(d, [(1 - p) / 2, (1 + p) / 2], axis=0)
            rec["inside"].setdefault(str(p), {})[name] = int(np.sum((lo <= tv) & (tv <= hi)))
        rec["n"][name] = int(tv.size)
    return rec


def summarise(records, levels) -> dict:
    out = {}
    for p in levels:
        for group in ("K", "all"):
            names = ["K"] if group == "K" else ["K", "c_dB", "amp", "offset"]
            k = sum(r["inside"][str(p)].get(nm, 0) for r in records for nm in names)
            n = sum(r["n"].get(nm, 0) for r in records for nm in names)
            frac = k / n if n else float("nan")
            out[f"{group}@{p}"] = {"inside": k, "n": n, "fraction": frac,
                                   "binomial_se": float(np.sqrt(p * (1 - p) / n)) if n else None,
                                   "within_3_points": bool(abs(frac - p) <= 0.03)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", type=int, default=60)
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--n-grid", type=int, default=31)
    p.add_argument("--aperture", type=int, default=48, help="aperture pixels across the dish")
    p.add_argument("--sampler", default="nuts")
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--tune", type=int, default=300)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--json", default=None, help="write every record and the summary here")
    a = p.parse_args(argv)
    a.levels = (0.5, 0.9)
    records = []
    t0 = time.perf_counter()
    try:
        for i in range(a.datasets):
            rec = one_dataset(i, a)
            records.append(rec)
            s = summarise(records, a.levels)
            print(f"dataset {i}: {rec['wall_s']:.1f} s, converged {rec['converged']}; running "
                  f"coverage all@0.5 {s['all@0.5']['fraction']:.3f}, all@0.9 "
                  f"{s['all@0.9']['fraction']:.3f}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: summarising the datasets done so far", flush=True)
    summary = summarise(records, a.levels)
    result = {"settings": {k: v for k, v in vars(a).items() if k != "levels"},
              "datasets_done": len(records), "wall_s": time.perf_counter() - t0,
              "not_converged": [r["dataset"] for r in records if not r["converged"]],
              "summary": summary}
    print(json.dumps(result, indent=1))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({**result, "records": records}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
