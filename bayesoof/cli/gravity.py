"""``bayesoof gravity BATCH_DIR | FILES...``: the elevation model with uncertainty."""

from __future__ import annotations

import sys
from pathlib import Path

from bayesoof.cli.common import Ticker, positive_int, save_plots, say, staged_run

NAME = "gravity"


def _stage1(args):
    """Stage-1 input from a campaign folder, or by batching FITS files first."""
    from bayesoof.campaign.table import NC_NAME, read_table, stage1_from_table

    inputs = [Path(p) for p in args.inputs]
    if len(inputs) == 1 and inputs[0].is_dir() and (inputs[0] / NC_NAME).is_file():
        folder = inputs[0]
    else:
        from bayesoof.campaign.dask_batch import BatchOptions, batch

        folder = Path(args.batch_out)
        say(f"fitting the observations first (bayesoof batch -> {folder})")
        opts = BatchOptions(telescope=args.telescope, order=args.order_value,
                            max_order=args.max_order)
        batch(args.inputs, folder, opts, n_workers=args.workers, scheduler=args.scheduler,
              progress=None if args.quiet else sys.stderr)
    table = read_table(folder)
    tel = sorted({t for t in table["telescope"].values.tolist() if t}) \
        if "telescope" in table else []
    return stage1_from_table(table), folder, (args.telescope or (tel[0] if len(tel) == 1
                                                                  else None))


def run(args) -> int:
    """Fit the hierarchical gravity model; a new run directory with its products."""
    from bayesoof.campaign.gravity import fit_gravity
    from bayesoof.cli.fit import order_arg

    args.order_value = order_arg(args.order) if args.order is not None else None
    s1, folder, telescope = _stage1(args)
    say(f"gravity model of {s1.n_obs} observations ({folder}), elevations "
        f"{s1.elevation.min():.1f}-{s1.elevation.max():.1f} deg, {s1.terms.size} terms, "
        f"stage 1 from each {s1.source}")
    with staged_run(args.out, "gravity") as (staging, finish):
        with Ticker(f"sampling the gravity model ({args.chains} chains x ({args.tune} tune + "
                    f"{args.draws} draws))", quiet=args.quiet):
            res = fit_gravity(s1, draws=args.draws, tune=args.tune, chains=args.chains,
                              seed=args.seed)
        built = staging / "gravity"
        built.mkdir()
        res.save(built, telescope=telescope)
        if not args.no_plots:
            from bayesoof.plots.campaign import gravity_figures

            with Ticker("plots", quiet=args.quiet):
                save_plots(gravity_figures(res), built, args.pdf)
        run_dir = finish(built)
    terms, scatter = res.records()
    say(f"{'term':>10s} {'coef':>4s} {'mean':>10s} {'sd':>9s} {'hdi_3%':>10s} {'hdi_97%':>10s}"
        "  [waves]")
    for r in terms:
        name = f"K({r['n']},{r['l']})"
        say(f"{name:>10s} {r['term']:>4s} {r['mean']:+10.5f} {r['sd']:9.5f} "
            f"{r['hdi_3%']:+10.5f} {r['hdi_97%']:+10.5f}")
    say("scatter scales tau (per-observation, waves): " + ", ".join(
        f"K({r['n']},{r['l']}) {r['mean']:.4f} [{r['hdi_3%']:.4f}, {r['hdi_97%']:.4f}]"
        for r in scatter))
    d = res.diagnostics()
    say(f"diagnostics: {'CONVERGED' if d['converged'] else 'NOT CONVERGED'} (R-hat max "
        f"{d['r_hat_max']:.3f}, bulk ESS min {d['ess_bulk_min']:.0f}, {d['divergences']} "
        f"divergences); {res.wall_time:.0f} s")
    say(f"run directory: {run_dir}")
    say(f"next: bayesoof surface {run_dir} --format effelsberg")
    return 0


def register(sub, fmt) -> None:
    """Add the ``gravity`` sub-parser to ``sub``."""
    p = sub.add_parser(
        "gravity", formatter_class=fmt,
        help="elevation (gravity) model K(el) = A sin el + B cos el + C with scatter",
        description="Hierarchical elevation model per Zernike term, K(el) = A sin(el) + "
                    "B cos(el) + C plus a per-observation scatter with its own scale per "
                    "term, fitted in two stages on each observation's Gaussian likelihood "
                    "of K. Input: a campaign folder written by 'bayesoof batch', or FITS "
                    "files/directories (batched first). Output: a run directory with "
                    "summary.json, gravity.nc (InferenceData), thermal.csv and plots.",
    )
    p.add_argument("inputs", nargs="+",
                   help="campaign folder (bayesoof batch), or FITS files / directories")
    p.add_argument("--out", default="bayesoof_runs", help="parent of the new run directory")
    p.add_argument("--batch-out", default="bayesoof_campaign",
                   help="with FITS inputs: the campaign folder the batch writes")
    p.add_argument("--telescope", default=None, help="with FITS inputs: telescope preset")
    p.add_argument("--order", default=None, help="with FITS inputs: Zernike order or 'auto'")
    p.add_argument("--max-order", type=positive_int, default=5,
                   help="with FITS inputs and --order auto: largest candidate order")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="with FITS inputs: local Dask workers")
    p.add_argument("--scheduler", default=None, help="with FITS inputs: Dask scheduler")
    p.add_argument("--draws", type=positive_int, default=1000, help="draws per chain")
    p.add_argument("--tune", type=positive_int, default=1000, help="tuning steps per chain")
    p.add_argument("--chains", type=positive_int, default=4, help="chains")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    p.add_argument("--pdf", action="store_true", help="also write PDF plots")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)

