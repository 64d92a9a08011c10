"""bayesoof: Bayesian out-of-focus holography of radio telescopes."""

__version__ = "0.1.0"

try:  # register JAX implementations of pytensor's FFT Ops when JAX is available
    from bayesoof import jax_ops as _jax_ops  # noqa: F401
except ImportError:  # pragma: no cover - JAX is optional
    pass
