"""``bayesoof batch FILES... | DIR``: fit every observation on Dask -> campaign folder."""

from __future__ import annotations

import sys

from bayesoof.cli.common import CLIError, positive_int, say

NAME = "batch"


def run(args) -> int:
    """Fit all observations (quick fit, optionally the posterior) and write the table."""
    from bayesoof.campaign.dask_batch import BatchOptions, batch
    from bayesoof.cli.fit import order_arg

    order = order_arg(args.order) if args.order is not None else None
    sample_kwargs = {"draws": args.draws, "tune": args.tune, "chains": args.chains,
                     "seed": args.seed}
    opts = BatchOptions(telescope=args.telescope, order=order, max_order=args.max_order,
                        config=args.config, sample=args.sample, sample_kwargs=sample_kwargs)
    if args.scheduler and args.workers:
        raise CLIError("--workers sizes a local cluster; it cannot be used with --scheduler")
    rows = batch(args.inputs, args.out, opts, scheduler=args.scheduler,
                 n_workers=args.workers, progress=None if args.quiet else sys.stderr)
    ok = [r for r in rows if r["status"] == "ok"]
    say(f"{len(ok)} of {len(rows)} observations fitted; campaign folder {args.out}")
    say(f"next: bayesoof gravity {args.out}")
    return 0 if ok else 1


def register(sub, fmt) -> None:
    """Add the ``batch`` sub-parser to ``sub``."""
    p = sub.add_parser(
        "batch", formatter_class=fmt,
        help="fit many observations on Dask -> campaign folder and table",
        description="Quick fit (and with --sample the posterior) of every observation, on "
                    "a dask.distributed cluster: a local cluster of processes (one worker "
                    "per core) by default, or --scheduler ADDRESS (Dask's configuration, "
                    "TLS included, is honoured). One run directory per observation in "
                    "OUT/runs, the table OUT/campaign.csv and OUT/campaign.nc. Re-running "
                    "into the same OUT skips finished observations; a failing observation "
                    "is reported and does not stop the others.",
    )
    p.add_argument("inputs", nargs="+", help="FITS files and/or directories of FITS files")
    p.add_argument("--out", default="bayesoof_campaign", help="campaign folder")
    p.add_argument("--telescope", default=None,
                   help="preset name or telescope TOML path (default: each file's TELESC)")
    p.add_argument("--order", default=None,
                   help="Zernike order N, or 'auto' (chosen per observation by the evidence)")
    p.add_argument("--max-order", type=positive_int, default=5,
                   help="with --order auto: the largest candidate order")
    p.add_argument("--config", default=None, help="fit configuration (preset or TOML file)")
    p.add_argument("--sample", action="store_true",
                   help="also sample each posterior (NUTS); the table then holds posterior "
                        "means and sd")
    p.add_argument("--draws", type=positive_int, default=None,
                   help="with --sample (default: the sampler's)")
    p.add_argument("--tune", type=positive_int, default=None,
                   help="with --sample (default: the sampler's)")
    p.add_argument("--chains", type=positive_int, default=4, help="with --sample")
    p.add_argument("--seed", type=int, default=0, help="with --sample")
    p.add_argument("--scheduler", default=None,
                   help="address of an existing dask.distributed scheduler "
                        "(e.g. tls://host:8786); default: a local cluster")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="workers of the local cluster (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)
