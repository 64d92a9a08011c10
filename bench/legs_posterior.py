"""NUTS on the posterior with the leg geometry sampled: curved against affine whitening.

    python bench/legs_posterior.py [--seeds 40 41 42] [--order 2] [--n-grid 21]
        [--sampler pymc] [--chains 2] [--draws 300] [--tune 300]
        [--whitening curved affine held] [--rows ROWS.jsonl]

The simulated cases of the posterior tests (tests/inference/sample_cases.py: Effelsberg,
48-pixel aperture, SNR 200; seeds 40-42 at order 2 on 21 × 21 maps are the calibration
test's datasets), the default quick fit, then PyMC's NUTS (or another sampler) on the
default model three ways: ``curved`` (the default: legs sampled, the sampler's map
following their physical values, density.AffineDensity), ``affine`` (legs sampled, the
plain ``u = u_MAP + chol z`` of sessions 1-6) and ``held`` (``sample_legs=False``).  One
JSON row per dataset and way: divergences and the leg values where they happened, R-hat,
bulk / tail ESS (min over the variables), mean tree depth and leapfrog steps, step size,
gradients, CPU and wall time of the sampling (Laplace and compile included), and the leg
posterior (mean, sd) beside the quick fit's value and sd.  Session 7 figures:
/work/notes/s7-legs.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

LEGS = ("leg_half_width", "shade_half_angle")


def one(seed: int, how: str, a) -> dict:
    import bayesoof.inference.sample as smp
    from bayesoof.inference.model import build_model

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "inference"))
    from sample_cases import quick_fit, simulated

    truth, data = simulated(a.order, seed=seed, n_grid=a.n_grid)
    fr = quick_fit(data, a.order)
    model = build_model(fr, sample_legs=how != "held")
    plain = smp._whitening
    if how == "affine":  # the map before session 7
        smp._whitening = lambda cov, curved: (smp._chol(cov), None)
    kw = {"cores": 1} if a.sampler == "pymc" else {}
    c0, t0 = time.process_time(), time.perf_counter()
    try:
        post = smp.sample_model(model, sampler=a.sampler, draws=a.draws, tune=a.tune,
                                chains=a.chains, seed=seed, products=False, **kw)
    finally:
        smp._whitening = plain
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    d, ss = post.diagnostics, post.idata.sample_stats
    row = {"seed": seed, "whitening": how, "order": a.order, "n_grid": a.n_grid,
           "sampler": a.sampler, "chains": a.chains, "draws": a.draws,
           "divergences": int(d["divergences"]), "r_hat_max": float(d["r_hat_max"]),
           "ess_bulk_min": float(d["ess_bulk_min"]), "ess_tail_min": float(d["ess_tail_min"]),
           "tree_depth_mean": float(ss["tree_depth"].mean()),
           "n_steps_mean": float(ss["n_steps"].mean()),
           "step_size": float(ss["step_size"].mean()),
           "n_grad": int(post.timing["n_grad"]), "cpu_s": cpu, "wall_s": wall,
           "held": sorted(model.bayesoof.held)}
    names = list(fr.last.space.free_names)
    diverging = ss["diverging"].values.astype(bool)
    for n in LEGS:
        if n in names:
            row[f"fit_{n}"] = [float(fr.params[n]), float(np.asarray(fr.last.sd)[names.index(n)])]
        if n in post.idata.posterior:
            v = post.idata.posterior[n].values
            row[n] = [float(v.mean()), float(v.std())]
            row[f"divergent_{n}"] = [float(x) for x in v[diverging]]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[40, 41, 42])
    p.add_argument("--order", type=int, default=2)
    p.add_argument("--n-grid", type=int, default=21)
    p.add_argument("--sampler", default="pymc")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--draws", type=int, default=300)
    p.add_argument("--tune", type=int, default=300)
    p.add_argument("--whitening", nargs="+", default=["curved", "affine"],
                   choices=["curved", "affine", "held"])
    p.add_argument("--rows", help="append the JSON rows to this file")
    a = p.parse_args()
    warnings.simplefilter("ignore")
    for seed in a.seeds:
        for how in a.whitening:
            row = one(seed, how, a)
            print(json.dumps(row), flush=True)
            if a.rows:
                with open(a.rows, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
