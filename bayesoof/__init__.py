"""bayesoof: Bayesian out-of-focus holography of radio telescopes.

The package is layered (each folder imports only from the layers listed before it)::

    units, io/          run directories, atomic writers, the summary.json schema
    data/               containers, FITS and GRASP readers, noise estimates
    physics/            Zernike, telescope, aperture, illumination, transforms, forward model
    simulate, testing   simulated beam maps from the forward model; test factories
    products/           phase and surface maps, rms, Ruze efficiency
    inference/          likelihood, parameter space, quick fit, PyMC model, samplers
    plots/, cli/        figures, the command line (one module per subcommand)

``bayesoof.fit`` (the quick fit) and ``bayesoof.sample`` (the posterior) are loaded on first
use, so ``import bayesoof`` does not import PyTensor, PyMC or JAX.
"""

from __future__ import annotations

from bayesoof._lazy import defer_imports, lazy_getattr
from bayesoof._version import __version__

# PyTensor imports its signal-processing Ops (and with them scipy.signal, ~0.5 s) eagerly;
# bayesoof uses none of them: their module runs on first use instead
defer_imports("pytensor.tensor.signal")

# public name -> module that defines it (imported on first attribute access)
_LAZY = {
    "fit": "bayesoof.inference.fit",
    "FitResult": "bayesoof.inference.fit",
    "sample": "bayesoof.inference.sample",
    "PosteriorResult": "bayesoof.inference.posterior",
    "read_grasp": "bayesoof.data.grasp",
}

__all__ = ["FitResult", "PosteriorResult", "__version__", "fit", "read_grasp", "sample"]


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
