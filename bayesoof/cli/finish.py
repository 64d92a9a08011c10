"""``bayesoof finish RUN_DIR``: complete a run whose sampling ended but whose assembly failed."""

from __future__ import annotations

from pathlib import Path

from bayesoof.cli.common import CLIError, Ticker, say

NAME = "finish"


def run(args) -> int:
    """Assemble the raw draws kept in RUN_DIR into posterior.nc, products and summary."""
    from bayesoof.inference import checkpoint

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    if not (run_dir / checkpoint.RAW_FILE).is_file():
        raise CLIError(f"{run_dir}: no {checkpoint.RAW_FILE}; nothing to finish "
                       "(only 'bayesoof sample' keeps raw draws)")
    with Ticker(f"assembling the draws kept in {run_dir}", quiet=args.quiet):
        post = checkpoint.finish(run_dir)
    kept = post.idata.posterior.sizes["draw"] if post.idata is not None else 0
    say(f"{run_dir}: posterior assembled from {kept} kept draws per chain "
        f"({post.sampler}); {'CONVERGED' if post.converged else 'NOT CONVERGED'}")
    for p in post.problems:
        say(f"  - {p}")
    return 0


def register(sub, fmt) -> None:
    """Add the ``finish`` sub-parser to ``sub``."""
    p = sub.add_parser(
        "finish", formatter_class=fmt,
        help="complete a run whose sampling ended but whose assembly failed",
        description="Assemble the raw draws that 'bayesoof sample' kept in RUN_DIR "
                    "(raw_draws.npz, written as soon as sampling ended) into posterior.nc, "
                    "the posterior products and summary.json. The model is rebuilt from "
                    "the data file and settings recorded with the draws.",
    )
    p.add_argument("run_dir", help="run directory named in the error of 'bayesoof sample'")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)
