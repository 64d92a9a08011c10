"""The ``bayesoof`` command line: the parser built from one module per subcommand.

Subcommands (``bayesoof SUBCOMMAND --help`` for each):

* ``simulate OUT``     beam maps from a telescope preset and Zernike coefficients -> FITS
* ``fit FILE``         quick fit (MAP + Laplace covariance) of orders 1..N -> run directory
* ``sample FILE``      posterior with NUTS or emcee -> run directory, diagnostics verdict
* ``finish RUN_DIR``   complete a run whose sampling ended but whose assembly failed
* ``plot RUN_DIR``     (re)make all plots of a run
* ``info FILE|RUN``    what is in a beam-map file or a run directory
* ``convert IN OUT``   between the pyoof and Nikolic FITS formats
* ``batch FILES|DIR``  fit many observations on Dask -> campaign folder and table
* ``gravity CAMPAIGN`` elevation model K(el) = A sin el + B cos el + C with scatter
* ``surface RUN_DIR``  active-surface commands (Effelsberg table, GBT Zernike, CSV) with sd

Exit status: 0 on success; 1 with a one-line ``bayesoof: error: ...`` on stderr for bad
input (missing or non-FITS file, unknown telescope, malformed configuration, ...); 2 for
command-line usage errors (argparse); 130 when interrupted.  ``--debug`` shows the
traceback instead.  Outputs are written atomically: a failed command leaves nothing
half-written.

Units on the command line: wavelength and d_z in mm (astronomers' habit), K in waves.

Adding a subcommand is one module in this folder with ``NAME``, ``register(sub, fmt)``
(adds its sub-parser, ``set_defaults(func=run)``) and ``run(args) -> int``, listed in
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings

from bayesoof.cli.common import PROG, CLIError, warn_line

__all__ = ["COMMANDS", "build_parser", "main"]

#: subcommand modules, in the order of ``bayesoof --help``
COMMANDS = ("simulate", "fit", "sample", "finish", "plot", "info", "convert", "batch",
            "gravity", "surface")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``bayesoof`` (one sub-parser per subcommand)."""
    from bayesoof._version import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bayesian out-of-focus (OOF) holography of radio telescopes.",
        epilog="Run 'bayesoof SUBCOMMAND --help' for the options of each subcommand.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for name in COMMANDS:
        importlib.import_module(f"bayesoof.cli.{name}").register(sub, DefaultsOnce)
    return parser


class DefaultsOnce(argparse.ArgumentDefaultsHelpFormatter):
    """Show each option's default once: not when the help already says it, nor None/False."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Called as the process's command (``argv`` None), the objects left at the end are moved
    out of the garbage collector's reach (``gc.freeze``): the interpreter's exit then does
    not walk PyTensor's caches (up to seconds), it frees them all the same.
    """
    try:
        return _main(argv)
    finally:
        if argv is None:
            import gc

            gc.freeze()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug
    from bayesoof.cli import console

    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message=r".*BLAS.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"pytensor\..*")
        # PyTensor's JAX backend drops assertions such as sigma > 0 (the model keeps them
        # true by construction): an internal notice, not the user's concern
        warnings.filterwarnings("ignore", message=r"Skipping .* Op \(assertion")
        stack.enter_context(console.signals_as_interrupt())
        if not debug:
            warnings.showwarning = warn_line
            stack.enter_context(console.quiet_library_loggers(PROG))
            stack.enter_context(console.native_output_captured())
        try:
            return int(args.func(args) or 0)
        except BrokenPipeError:  # e.g. 'bayesoof info RUN | head': the reader left
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return 0
        except console.Terminated:
            sys.stderr.write(f"{PROG}: terminated (SIGTERM); finished outputs are kept, "
                             "nothing half-written is left\n")
            return 143
        except KeyboardInterrupt:
            sys.stderr.write(f"{PROG}: interrupted; finished outputs are kept, nothing "
                             "half-written is left\n")
            return 130
        except Exception as exc:
            if debug:
                raise
            sys.stderr.write(f"{PROG}: error: {_one_line(exc)}\n")
            return 1


def _one_line(exc: BaseException) -> str:
    """Format ``exc`` on one line (with its type when the exception is unexpected)."""
    from bayesoof.data.containers import DataError
    from bayesoof.physics.telescope import TelescopeError

    msg = " ".join(str(exc).split()) or type(exc).__name__
    expected = (CLIError, DataError, TelescopeError, OSError, ValueError, KeyError)
    if isinstance(exc, expected):
        if isinstance(exc, KeyError):
            return f"missing key {msg}"
        return msg
    return f"{type(exc).__name__}: {msg} (rerun with --debug for the traceback)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
