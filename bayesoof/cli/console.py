"""What a command-line user sees: native library chatter kept off the terminal, signals.

* :func:`native_output_captured` -- C and Fortran libraries (LAPACK's ``xerbla``: ``** On
  entry to DLASCL parameter number 4 had an illegal value``; XLA's start-up notices) write
  straight to file descriptors 1 and 2, past Python.  While a command runs, those
  descriptors point at a temporary file; Python's ``sys.stdout`` / ``sys.stderr`` keep
  writing to the terminal through duplicates of the original descriptors.
* :func:`quiet_library_loggers` -- PyTensor's BLAS notice and similar internal log records
  below ERROR are not shown; others become one ``bayesoof: warning:`` line.
* :func:`signals_as_interrupt` -- SIGTERM (batch schedulers, ``timeout``, ``kill``) is
  turned into :class:`KeyboardInterrupt` like SIGINT, so that the samplers keep what
  they finished and every ``finally`` (staging clean-up) runs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import tempfile
import threading

__all__ = ["native_output_captured", "quiet_library_loggers", "signals_as_interrupt"]

#: loggers of libraries whose notices mean nothing to a user of the command line
QUIET_LOGGERS = ("pytensor", "pymc", "jax", "numpyro", "arviz", "emcee", "h5py", "matplotlib")


def _fd_of(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return None


@contextlib.contextmanager
def native_output_captured():
    """Send what native code writes to fds 1 and 2 into a temporary file (yielded).

    Python-level output is unaffected: a ``sys.stdout`` / ``sys.stderr`` writing to fd 1 /
    fd 2 is replaced for the duration by a stream on a duplicate of that descriptor; any
    other stream object (pytest's capture, a notebook's) is left alone.
    """
    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    sink = tempfile.TemporaryFile()
    saved: dict[int, int] = {}
    replaced: dict[str, object] = {}
    try:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            try:
                saved[fd] = os.dup(fd)
            except OSError:  # descriptor closed (daemon): nothing to protect
                continue
            stream = getattr(sys, name)
            if _fd_of(stream) == fd:
                dup = os.dup(saved[fd])
                new = open(dup, "w", buffering=1, encoding=getattr(stream, "encoding", None)  # noqa: SIM115
                           or "utf-8", errors="backslashreplace", closefd=True)
                replaced[name] = stream
                setattr(sys, name, new)
            os.dup2(sink.fileno(), fd)
        yield sink
    finally:
        for name, original in replaced.items():
            current = getattr(sys, name)
            with contextlib.suppress(Exception):
                current.flush()
            setattr(sys, name, original)
            with contextlib.suppress(Exception):
                current.close()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        sink.close()


class _OneLine(logging.Handler):
    def __init__(self, prog: str):
        super().__init__(logging.WARNING)
        self.prog = prog

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = " ".join(record.getMessage().split())
        except Exception:  # noqa: BLE001 - a broken record is not worth a traceback
            return
        sys.stderr.write(f"{self.prog}: warning: {msg}\n")


@contextlib.contextmanager
def quiet_library_loggers(prog: str = "bayesoof"):
    """Library log records below ERROR hidden; the rest (and root warnings) one line each."""
    saved = []
    for name in QUIET_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level, lg.propagate, list(lg.handlers)))
        lg.setLevel(logging.ERROR)
    root = logging.getLogger()
    handler = _OneLine(prog)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for lg, level, propagate, handlers in saved:
            lg.setLevel(level)
            lg.propagate = propagate
            lg.handlers[:] = handlers


class Terminated(KeyboardInterrupt):
    """SIGTERM received: handled like Ctrl-C (a KeyboardInterrupt), but told apart."""


@contextlib.contextmanager
def signals_as_interrupt():
    """SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread.

    SIGINT already raises KeyboardInterrupt.  Outside the main thread nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise Terminated(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
