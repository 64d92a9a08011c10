"""The ``bayesoof`` command line."""

from bayesoof.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
