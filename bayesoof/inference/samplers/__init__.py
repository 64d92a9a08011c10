"""Sampler runners, one module each, registered by name (contract: :mod:`.base`).

``numpyro`` (NUTS on JAX), ``pymc`` (PyMC's NUTS), ``emcee`` (ensemble), ``nutpie``
(nutpie's NUTS); ``"nuts"`` stands for the first of :data:`~.base.NUTS_PREFERENCE` that
can run here (:func:`~.base.default_nuts`).
"""

from bayesoof.inference.samplers.base import (
    NUTS_PREFERENCE,
    RawDraws,
    Sampler,
    available_samplers,
    default_nuts,
    get_sampler,
    register,
)

__all__ = ["NUTS_PREFERENCE", "RawDraws", "Sampler", "available_samplers", "default_nuts",
           "get_sampler", "register"]
