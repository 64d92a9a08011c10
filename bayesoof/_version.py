"""The version of bayesoof (one place; imported by the package and the run writers)."""

__version__ = "0.1.0"
