"""Acceptance run of a simulated campaign: batch (Dask) + gravity model, truth coverage.

Simulates N observations at elevations spread over 15-85 deg from a known gravity model
(A, B, C per Zernike term and a per-observation scatter τ), writes them as FITS, runs
``bayesoof.campaign.batch`` on a LocalCluster and ``fit_gravity`` on the table, and
prints: wall time of each stage, the share of A, B, C whose 94 % HDI holds the truth,
and per term whether τ's 94 % HDI holds the truth.

    python bench/campaign_acceptance.py --n-obs 12 --order 4 --n-grid 41 --workers 2
"""

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-obs", type=int, default=12)
    ap.add_argument("--order", type=int, default=4)
    ap.add_argument("--n-grid", type=int, default=41)
    ap.add_argument("--extent", type=float, default=7.0)
    ap.add_argument("--snr", type=float, default=300.0)
    ap.add_argument("--scale", type=float, default=0.03, help="gravity β scale, waves rms/mode")
    ap.add_argument("--scatter", type=float, default=0.005, help="τ, waves rms per mode")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--folder", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    from bayesoof.campaign.dask_batch import batch
    from bayesoof.campaign.gravity import fit_gravity
    from bayesoof.campaign.simulate import random_gravity, simulate_campaign, write_campaign
    from bayesoof.campaign.table import read_table, stage1_from_table
    from bayesoof.physics import zernike

    folder = Path(a.folder or tempfile.mkdtemp(prefix="bayesoof-acceptance-"))
    beta, tau = random_gravity(a.order, a.scale, a.scatter, seed=a.seed)
    el = np.linspace(15, 85, a.n_obs)
    t0 = time.perf_counter()
    maps, truth = simulate_campaign(el, beta, tau, n_grid=a.n_grid, extent=a.extent,
                                    snr=a.snr, seed=a.seed)
    write_campaign(maps, folder / "fits")
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = batch(folder / "fits", folder / "campaign", order=a.order, n_workers=a.workers,
                 progress=sys.stdout)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    s1 = stage1_from_table(read_table(folder / "campaign"))
    res = fit_gravity(s1, draws=a.draws, tune=a.tune, chains=a.chains, seed=a.seed)
    t_grav = time.perf_counter() - t0
    terms, scatter = res.records()
    hits = [r["hdi_3%"] <= beta["ABC".index(r["term"]), zernike.nl_to_j(r["n"], r["l"])]
            <= r["hdi_97%"] for r in terms]
    t_hits = [r["hdi_3%"] <= tau[zernike.nl_to_j(r["n"], r["l"])] <= r["hdi_97%"]
              for r in scatter]
    d = res.diagnostics()
    out = {
        "n_obs": a.n_obs, "order": a.order, "n_grid": a.n_grid, "snr": a.snr,
        "workers": a.workers, "fitted": sum(r["status"] == "ok" for r in rows),
        "time_simulate_s": t_sim, "time_batch_s": t_batch, "time_gravity_s": t_grav,
        "time_batch_plus_gravity_min": (t_batch + t_grav) / 60,
        "abc_coverage_94": float(np.mean(hits)), "n_abc": len(hits),
        "abc_missed": [f"{r['term']} K({r['n']},{r['l']})" for r, h in zip(terms, hits,
                                                                            strict=True) if not h],
        "tau_in_94": int(np.sum(t_hits)), "n_tau": len(t_hits),
        "tau_missed": [f"K({r['n']},{r['l']}) truth {tau[zernike.nl_to_j(r['n'], r['l'])]:.4f}"
                       f" hdi [{r['hdi_3%']:.4f}, {r['hdi_97%']:.4f}]"
                       for r, h in zip(scatter, t_hits, strict=True) if not h],
        "diagnostics": d, "folder": str(folder),
    }
    print(json.dumps(out, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
