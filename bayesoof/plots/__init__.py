"""Figures of fits and posteriors (matplotlib)."""

from bayesoof.plots.figures import *  # noqa: F403
from bayesoof.plots.figures import __all__  # noqa: F401
