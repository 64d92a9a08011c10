"""The ``bayesoof`` command line (:mod:`bayesoof.cli.app`; one module per subcommand)."""

from bayesoof.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
