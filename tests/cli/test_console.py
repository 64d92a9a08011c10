"""What a command-line user sees: native text kept away, one-line library warnings, signals."""

from __future__ import annotations

import logging
import os
import signal
import sys

import numpy as np
import pytest

from bayesoof.cli import console


def test_lapack_text_never_reaches_the_user(capfd):
    """LAPACK's xerbla writes '** On entry to DLASCL ...' straight to fd 1; it is captured."""
    with console.native_output_captured() as sink:
        print("result line")  # Python output still reaches the terminal
        sys.stderr.write("progress line\n")
        with pytest.raises(np.linalg.LinAlgError):
            np.linalg.lstsq(np.full((5, 3), np.nan), np.ones(5), rcond=None)
        os.write(2, b"native stderr\n")
    out, err = capfd.readouterr()
    assert out == "result line\n"
    assert err == "progress line\n"
    del sink  # closed on exit
    # the descriptors are restored afterwards
    os.write(1, b"after\n")
    assert capfd.readouterr().out == "after\n"


def test_library_logs_are_quiet_or_one_line(capfd):
    with console.quiet_library_loggers("bayesoof"):
        logging.getLogger("pytensor.tensor.blas").warning(
            "Using NumPy C-API based implementation for BLAS functions.")
        logging.warning("emcee says:\n  tau: [1 2 3]")
    err = capfd.readouterr().err
    assert "BLAS" not in err
    assert err == "bayesoof: warning: emcee says: tau: [1 2 3]\n"
    assert logging.getLogger("pytensor").level != logging.ERROR  # restored


def test_sigterm_becomes_an_interrupt():
    with console.signals_as_interrupt(), pytest.raises(console.Terminated):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
    assert signal.getsignal(signal.SIGTERM) is not None
    assert issubclass(console.Terminated, KeyboardInterrupt)
