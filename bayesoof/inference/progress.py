"""Progress of long steps (sampling, fits, plots) on stderr, in every context.

Two ways of showing it, chosen from the stream:

* **live** (a terminal, or a Jupyter notebook): one line rewritten in place, at most every
  :data:`REDRAW` s, and ended by a newline (or cleared) when the step ends, so that the
  next line never glues onto it;
* **log** (a file, a pipe, a batch job): a plain line whenever another
  :data:`LOG_FRACTION` of the work is done or :data:`LOG_INTERVAL` s have passed since the
  last line, and a final line.

The Python API shows progress only in notebooks by default (:func:`wanted`); the command
line always does unless ``--quiet``.
"""

from __future__ import annotations

import sys
import threading
import time

__all__ = ["LOG_FRACTION", "LOG_INTERVAL", "Progress", "Spinner", "in_notebook", "wanted"]

#: log mode: a line at least every this fraction of the total ...
LOG_FRACTION = 0.1
#: ... or after this many seconds without a line
LOG_INTERVAL = 30.0
#: live mode: the line is redrawn at most this often, s
REDRAW = 0.25


def in_notebook() -> bool:
    """Whether the code runs in a Jupyter kernel (IPython's ZMQ shell)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - an odd IPython: assume a script
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def wanted(progressbar) -> bool:
    """Resolve a ``progressbar`` argument: None means on in a notebook, off in a script."""
    return in_notebook() if progressbar is None else bool(progressbar)


def _is_live(stream) -> bool:
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        tty = False
    return tty or in_notebook()


def _seconds(t: float) -> str:
    if t < 120:
        return f"{t:.0f} s"
    if t < 7200:
        return f"{t / 60:.1f} min"
    return f"{t / 3600:.1f} h"


class Progress:
    """Report ``done`` of ``total`` units of a long step on ``stream`` (default stderr).

    Parameters
    ----------
    label : str
        What is running, e.g. ``"numpyro NUTS, 4 chains"``.
    total : int
        Units of work (iterations of all chains together).
    stream : file-like, optional
        Default ``sys.stderr`` (looked up when the object is made).
    live : bool, optional
        Force live (True) or log (False) mode; default from the stream (:func:`_is_live`).
    clock : callable
        Seconds, monotonic (a fake clock in tests).
    unit : str
        Name of the units in the lines.
    """

    def __init__(self, label: str, total: int, stream=None, live: bool | None = None,
                 clock=time.monotonic, unit: str = "iterations"):
        self.label = label
        self.total = max(int(total), 1)
        self.stream = stream if stream is not None else sys.stderr
        self.live = _is_live(self.stream) if live is None else bool(live)
        self.clock = clock
        self.unit = unit
        self.t0 = clock()
        self.done = 0
        self.note = ""
        self._last_time = self.t0  # of the last line written
        self._last_step = 0  # log mode: index of the last LOG_FRACTION step reported
        self._width = 0  # live mode: length of the line on screen
        self._closed = False

    # ---------------------------------------------------------------- text
    def line(self) -> str:
        """The progress line for the current state (no newline)."""
        el = self.clock() - self.t0
        pct = 100.0 * self.done / self.total
        text = f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:.0f} %)"
        if self.note:
            text += f", {self.note}"
        text += f", {_seconds(el)}"
        if 0 < self.done < self.total and el > 0:
            text += f", about {_seconds(el * (self.total - self.done) / self.done)} left"
        return text

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stream: progress is not worth dying
            pass

    # ---------------------------------------------------------------- updates
    def update(self, done: int, note: str = "") -> None:
        """Set the units done so far (and an optional note, e.g. ``"warm-up"``)."""
        self.done = min(max(int(done), 0), self.total)
        if note:
            self.note = note
        now = self.clock()
        if self.live:
            if now - self._last_time >= REDRAW or self.done == self.total:
                self._draw()
                self._last_time = now
            return
        step = int(self.done / (LOG_FRACTION * self.total) + 1e-9)
        if step > self._last_step or now - self._last_time >= LOG_INTERVAL:
            self._write(self.line() + "\n")
            self._last_step = step
            self._last_time = now

    def _draw(self) -> None:
        text = self.line()
        pad = " " * max(self._width - len(text), 0)
        self._write("\r" + text + pad)
        self._width = len(text)

    def close(self, note: str = "") -> None:
        """End the report: the final line, followed by a newline (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if note:
            self.note = note
        if self.live:
            self._draw()
            self._write("\n")
        elif self._last_step * LOG_FRACTION < 1.0 - 1e-9 or note:
            self._write(self.line() + "\n")  # the last state, unless already logged

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close("interrupted" if exc_type is KeyboardInterrupt else "")
        return False


class _LineSink:
    """File-like that writes whole lines through a :class:`Spinner` (clearing it first)."""

    def __init__(self, spinner: Spinner):
        self._spinner = spinner
        self._buf = ""

    def write(self, text: str) -> int:
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._spinner.print(line)
        return len(text)

    def flush(self) -> None:
        if self._buf:
            self._spinner.print(self._buf)
            self._buf = ""

    def isatty(self) -> bool:
        return False


class Spinner:
    """Elapsed time of a step of unknown length, on stderr.

    Live: ``label | 12 s`` redrawn in place, cleared at the end.  Log: ``label ...`` at the
    start, ``label: still running, 30 s`` every :data:`LOG_INTERVAL` s, nothing at the end
    (the caller prints the outcome).  Text other code prints while it runs goes through
    :attr:`lines` (a file-like), which clears the live line first: nothing glues.
    """

    def __init__(self, label: str, stream=None, quiet: bool = False, live: bool | None = None,
                 interval: float = LOG_INTERVAL):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.live = (not quiet) and (_is_live(self.stream) if live is None else bool(live))
        self.interval = interval
        self.lines = _LineSink(self)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = ""  # live text on screen now
        self._t0 = time.monotonic()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _clear(self) -> None:
        if self._shown:
            self._write("\r" + " " * len(self._shown) + "\r")
            self._shown = ""

    def print(self, text: str) -> None:
        """Write one line of other output without gluing it to the live line."""
        with self._lock:
            self._clear()
            self._write(text + "\n")

    def _run(self) -> None:
        spin = "|/-\\"
        k = 0
        wait = REDRAW if self.live else self.interval
        while not self._stop.wait(wait):
            el = time.monotonic() - self._t0
            with self._lock:
                if self.live:
                    self._clear()
                    self._shown = f"{self.label} {spin[k % 4]} {_seconds(el)}"
                    self._write(self._shown)
                else:
                    self._write(f"{self.label}: still running, {_seconds(el)}\n")
            k += 1

    def __enter__(self) -> Spinner:
        self._t0 = time.monotonic()
        if self.quiet:
            return self
        if not self.live:
            self._write(f"{self.label} ...\n")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> bool:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self.lines.flush()
        with self._lock:
            self._clear()
        return False
