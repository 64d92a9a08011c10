"""Coverage study through the batch machinery: 90 % interval coverage per coefficient.

Simulates ``--n-datasets`` observations at order 5 (random K, ``--scale`` wave of rms
phase per mode, peak S/N ``--snr``), writes them as FITS, fits them all with
``bayesoof.campaign.batch`` (Dask, ``--workers``), and from the campaign table counts per
Zernike coefficient how often the truth lies inside the quick fit's 90 % interval
(K ± 1.645 sd, Laplace).  A calibrated interval covers 90 %; with D datasets the binomial
sd of a coverage is sqrt(0.09 / D) (0.021 at D = 200).  A bench, not a test:

    python bench/coverage_batch.py --n-datasets 200 --order 5 --n-grid 41 --workers 2
"""

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-datasets", type=int, default=200)
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--n-grid", type=int, default=41)
    ap.add_argument("--snr", type=float, default=300.0)
    ap.add_argument("--scale", type=float, default=0.03)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--folder", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    from bayesoof.campaign.dask_batch import batch
    from bayesoof.campaign.simulate import _Simulator
    from bayesoof.data.fitsio import write_nikolic
    from bayesoof.physics import zernike
    from bayesoof.simulate import random_coefficients

    folder = Path(a.folder or tempfile.mkdtemp(prefix="bayesoof-coverage-"))
    (folder / "fits").mkdir(parents=True, exist_ok=True)
    sim = _Simulator("effelsberg", a.order, n_grid=a.n_grid, extent=7.0)
    truths = []
    t0 = time.perf_counter()
    for i in range(a.n_datasets):
        K = random_coefficients(a.order, a.scale, seed=1000 + i)
        truths.append(K)
        path = folder / "fits" / f"cov{i:04d}.fits"
        if not path.exists():
            write_nikolic(sim(K, snr=a.snr, seed=1000 + i), path)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = batch(folder / "fits", folder / "campaign", order=a.order, n_workers=a.workers)
    t_batch = time.perf_counter() - t0
    truths = np.array(truths)
    ok = np.array([r["status"] == "ok" for r in rows])
    K = np.array([r["K"] for r, g in zip(rows, ok, strict=True) if g])
    sd = np.array([r["K_sd"] for r, g in zip(rows, ok, strict=True) if g])
    tr = truths[ok]
    free = sd[0] > 0
    z = np.where(free, (K - tr) / np.where(free, sd, 1.0), 0.0)
    inside = np.abs(z) <= 1.6449
    names = zernike.coeff_names(a.order)
    cover = {names[j]: float(inside[:, j].mean()) for j in np.flatnonzero(free)}
    binom = float(np.sqrt(0.09 / ok.sum()))
    out = {"n_datasets": a.n_datasets, "fitted": int(ok.sum()), "order": a.order,
           "n_grid": a.n_grid, "snr": a.snr, "simulate_s": t_sim, "batch_s": t_batch,
           "coverage_90": cover, "mean_coverage": float(np.mean(list(cover.values()))),
           "binomial_sd": binom,
           "outside_3_binomial_sd": [k for k, v in cover.items() if abs(v - 0.9) > 3 * binom],
           "z_sd_per_coefficient": {names[j]: float(np.std(z[:, j]))
                                    for j in np.flatnonzero(free)}}
    print(json.dumps(out, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
