"""Throughput of ``bayesoof.campaign.batch`` per worker, and its scaling from 1 to 2 workers.

Simulates N observations of one geometry, then batches them on a LocalCluster of
processes with 1 and with 2 single-threaded workers (fresh clusters, fresh output
folders), and prints per run: wall time, observations per minute, compile time paid per
worker (the compiled model is reused across observations of the same geometry), the
median fit time of the observations that reused it, and the speed-up 1 → 2.

    python bench/bench_batch.py --n-obs 8 --order 3 --n-grid 31

Beyond 2 workers: each observation is independent and workers share nothing but the
scheduler (paths in, ~10 kB rows out), so throughput grows with the number of cores
until the per-worker compile (paid once per geometry and worker) and the file system
dominate; with W workers and N observations of one geometry the wall time is about
compile + ceil(N / W) × fit.
"""

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def run(files_dir, out, workers, order):
    from bayesoof.campaign.dask_batch import batch

    t0 = time.perf_counter()
    rows = batch(files_dir, out, order=order, n_workers=workers, progress=None)
    wall = time.perf_counter() - t0
    ok = [r for r in rows if r["status"] == "ok"]
    compiled = [r for r in ok if r["compile_time_s"] > 0]
    reused = [r["wall_time_s"] for r in ok if r["compile_time_s"] == 0]
    return {
        "workers": workers, "n_obs": len(rows), "fitted": len(ok), "wall_s": wall,
        "obs_per_min": 60 * len(ok) / wall,
        "compiles": len(compiled),
        "compile_s_median": statistics.median([r["compile_time_s"] for r in compiled])
        if compiled else 0.0,
        "fit_s_median_reused": statistics.median(reused) if reused else float("nan"),
        "workers_seen": sorted({r["worker"] for r in ok}),
    }


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-obs", type=int, default=8)
    ap.add_argument("--order", type=int, default=3)
    ap.add_argument("--n-grid", type=int, default=31)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    from bayesoof.campaign.simulate import random_gravity, simulate_campaign, write_campaign

    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    beta, tau = random_gravity(a.order, 0.03, 0.005, seed=2)
    maps, _ = simulate_campaign(np.linspace(15, 85, a.n_obs), beta, tau, n_grid=a.n_grid,
                                extent=7.0, snr=300, seed=2)
    write_campaign(maps, root / "fits")
    results = [run(root / "fits", root / f"out{w}", w, a.order) for w in (1, 2)]
    for r in results:
        print(f"{r['workers']} worker(s): {r['fitted']}/{r['n_obs']} fitted in "
              f"{r['wall_s']:.1f} s = {r['obs_per_min']:.2f} obs/min; {r['compiles']} "
              f"compile(s) of ~{r['compile_s_median']:.1f} s; fit with a reused model "
              f"~{r['fit_s_median_reused']:.1f} s")
    speedup = results[0]["wall_s"] / results[1]["wall_s"]
    print(f"speed-up 1 -> 2 workers: {speedup:.2f}x (machine shared with other jobs: "
          "timings are noisy)")
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": results, "speedup": speedup}, indent=2))


if __name__ == "__main__":
    main()
