"""``bayesoof plot RUN_DIR``: (re)make every plot of a run directory."""

from __future__ import annotations

from pathlib import Path

from bayesoof.cli.common import CLIError, Ticker, save_plots, say

NAME = "plot"


def run(args) -> int:
    """Remake every plot of a run directory into RUN_DIR/plots."""
    from bayesoof.io.run import read_run
    from bayesoof.plots import fit_figures, posterior_figures

    run = Path(args.run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run}: no such run directory")
    if not run.is_dir():
        raise CLIError(f"{run}: not a directory; expected a run directory from 'bayesoof fit'")
    with Ticker(f"plots of {run}"):
        record = read_run(run)
        figs = fit_figures(record)
        if record.has_posterior:
            figs.update(posterior_figures(record))
        written = save_plots(figs, run, args.pdf)
    for path in written:
        say(str(path))
    return 0


def register(sub, fmt) -> None:
    """Add the ``plot`` sub-parser to ``sub``."""
    p = sub.add_parser(
        "plot", formatter_class=fmt, help="(re)make all plots of a run",
        description="(Re)make all plots of a run directory in RUN_DIR/plots.",
    )
    p.add_argument("run_dir", help="run directory written by 'bayesoof fit' or 'sample'")
    p.add_argument("--pdf", action="store_true", help="also write PDF files")
    p.set_defaults(func=run)
