"""Sampler runners, one module each, registered by name (contract: :mod:`.base`).

``numpyro`` (NUTS on JAX), ``pymc`` (PyMC's NUTS), ``emcee`` (ensemble), ``nutpie``
(nutpie's NUTS); ``"nuts"`` stands for numpyro when JAX is installed, else PyMC.
"""

from bayesoof.inference.samplers.base import (
    RawDraws,
    Sampler,
    available_samplers,
    get_sampler,
    register,
)

__all__ = ["RawDraws", "Sampler", "available_samplers", "get_sampler", "register"]
