"""bayesoof: Bayesian out-of-focus holography of radio telescopes."""

__version__ = "0.1.0"
