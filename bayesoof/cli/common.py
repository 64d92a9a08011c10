"""Helpers shared by the subcommands: errors, output, reading data, progress, run folders."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path

PROG = "bayesoof"


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""




def say(msg: str = "") -> None:
    """Print one line of the result on stdout (flushed)."""
    print(msg, flush=True)


def warn_line(message, category, filename, lineno, file=None, line=None):  # noqa: D103
    sys.stderr.write(f"{PROG}: warning: {' '.join(str(message).split())}\n")


def read_data(path: str):
    """Beam maps from a FITS file (either format, detected)."""
    from bayesoof.data.fitsio import read_beam_maps

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    return read_beam_maps(p)


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


class Ticker:
    """Elapsed-time indicator on stderr while a long step runs (only on a terminal)."""

    def __init__(self, label: str, stream=None, quiet: bool = False):
        self.label = label
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stop = threading.Event()
        self._thread = None

    def _run(self) -> None:
        t0 = time.perf_counter()
        spin = "|/-\\"
        k = 0
        while not self._stop.wait(0.25):
            el = time.perf_counter() - t0
            self.stream.write(f"\r{self.label} {spin[k % 4]} {el:6.0f} s")
            self.stream.flush()
            k += 1

    def __enter__(self):
        if self.live:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        elif not self.quiet:
            self.stream.write(f"{self.label} ...\n")
            self.stream.flush()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.stream.write("\r" + " " * (len(self.label) + 12) + "\r")
            self.stream.flush()
        return False



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
    from bayesoof.plots.figures import save_figures

    return save_figures(figures, run / "plots", pdf=pdf)


def shorten(text: str, width: int = 240) -> str:
    """``text`` cut to ``width`` characters (long lists of chains, for instance)."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 5] + " ..."


def num(val, fmt: str = ".6g") -> str:
    """Format a number, or ``n/a`` for None."""
    return "n/a" if val is None else format(val, fmt)


