"""bayesoof: Bayesian out-of-focus holography of radio telescopes."""

__version__ = "0.1.0"

try:  # register JAX implementations of pytensor's FFT Ops when JAX is available
    from bayesoof import jax_ops as _jax_ops  # noqa: F401
except ImportError:  # pragma: no cover - JAX is optional
    pass

# the quick fit at the top level: ``bayesoof.fit(data, telescope=..., order=...)``.  This
# binds the name ``bayesoof.fit`` to the function (import the module's other names with
# ``from bayesoof.fit import ...``).
from bayesoof.fit import FitResult, fit  # noqa: E402

__all__ = ["FitResult", "__version__", "fit"]

# full posteriors at the top level: ``bayesoof.sample(data, telescope=..., order=...,
# sampler="nuts")`` -> PosteriorResult.  As for ``fit``, this binds ``bayesoof.sample`` to
# the function (``from bayesoof.sample import ...`` still reaches the module's names).
from bayesoof.posterior import PosteriorResult  # noqa: E402
from bayesoof.sample import sample  # noqa: E402

__all__ += ["PosteriorResult", "sample"]
