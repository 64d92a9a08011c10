"""Helpers shared by the subcommands: errors, output, reading data, progress, run folders."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from bayesoof.inference.progress import Spinner

PROG = "bayesoof"


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""




def say(msg: str = "") -> None:
    """Print one line of the result on stdout (flushed)."""
    print(msg, flush=True)


def warn_line(message, category, filename, lineno, file=None, line=None):  # noqa: D103
    sys.stderr.write(f"{PROG}: warning: {' '.join(str(message).split())}\n")


def read_data(path, dz_mm=None, sigma_fraction: float | None = None):
    """Beam maps from one FITS file (either format, detected) or from GRASP ``.grd`` files.

    ``path`` is one path or a list of paths.  GRASP far fields (``*.grd``, one map per
    file) need ``dz_mm``, the sub-reflector offset of each file in mm; ``sigma_fraction``
    sets their nominal noise σ as a fraction of each map's peak (they are noise-free).
    """
    import numpy as np

    paths = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file")
    grd = [p.suffix.lower() == ".grd" for p in paths]
    if any(grd):
        if not all(grd):
            raise CLIError("GRASP .grd files and FITS files cannot be mixed; give one kind")
        if dz_mm is None or len(dz_mm) != len(paths):
            given = "no" if dz_mm is None else len(dz_mm)
            raise CLIError(
                f"{len(paths)} GRASP .grd file(s) need --dz with one offset (mm) per file in "
                f"the same order; got {given} value(s)"
            )
        from bayesoof.data.grasp import read_grasp

        return read_grasp(paths, np.asarray(dz_mm, float) * 1e-3, sigma_fraction=sigma_fraction)
    if len(paths) != 1:
        raise CLIError(
            f"{len(paths)} input files: expected one FITS file (several files are read only "
            "as GRASP .grd far fields, one per map)"
        )
    if dz_mm is not None:
        raise CLIError(f"{paths[0]}: --dz is for GRASP .grd input; a FITS file carries its DZ")
    from bayesoof.data.fitsio import read_beam_maps

    return read_beam_maps(paths[0])


def input_stem(path) -> str:
    """Name of the run for an input path or list of paths (the first file's stem)."""
    first = path if isinstance(path, (str, Path)) else path[0]
    return Path(first).stem


def add_grasp_options(p: argparse.ArgumentParser) -> None:
    """The options of GRASP .grd input: --dz and --sigma-fraction."""
    p.add_argument("--dz", type=float, nargs="+", default=None, metavar="MM",
                   help="GRASP .grd input: the sub-reflector offset d_z of each file, mm, in "
                        "the order of the files (bayesoof's sign convention)")
    p.add_argument("--sigma-fraction", type=float, default=1e-4, metavar="F",
                   help="GRASP .grd input (noise-free): nominal noise σ of each map as this "
                        "fraction of its peak (default 1e-4)")


def telescope_for(data, spec: str | None):
    """Return the telescope named on the command line, else the file's TELESC card."""
    from bayesoof.physics.telescope import get_telescope

    if spec is None:
        spec = data.meta.get("TELESC")
        if not spec:
            raise CLIError(
                f"{data.source}: the file does not name its telescope (no TELESC card); "
                "give --telescope NAME or --telescope PATH.toml"
            )
    return get_telescope(spec)




def positive_int(text: str) -> int:
    """Argparse type: an integer >= 1."""
    try:
        val = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if val < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {val}")
    return val


# the elapsed-time indicator of the subcommands: a live line on a terminal, log lines
# every 30 s otherwise; other output goes through its ``lines`` so that nothing glues
Ticker = Spinner


@contextlib.contextmanager
def staged_run(out: str, stem: str):
    """:func:`bayesoof.io.staged_run` with a one-line error naming ``--out``."""
    from bayesoof.io import staged_run as _staged

    if Path(out).exists() and not Path(out).is_dir():
        raise CLIError(f"--out {out}: exists and is not a directory")
    with _staged(out, stem) as pair:
        yield pair


def save_plots(figures: dict, run: Path, pdf: bool) -> list[Path]:
    """Write ``figures`` into ``run/plots`` (PNG, and PDF with ``pdf``)."""
    from bayesoof.plots import save_figures

    return save_figures(figures, run / "plots", pdf=pdf)


def shorten(text: str, width: int = 240) -> str:
    """``text`` cut to ``width`` characters (long lists of chains, for instance)."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 5] + " ..."


def num(val, fmt: str = ".6g") -> str:
    """Format a number, or ``n/a`` for None."""
    return "n/a" if val is None else format(val, fmt)


