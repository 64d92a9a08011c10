"""Feed illumination (taper) models: one object each, registered by name.

An :class:`Illumination` holds a pure tensor function ``E_a(x, y, radius, *coeffs,
module=None)`` (aperture coordinates x, y and radius in m; ``module`` NumPy or, by
default, ``pytensor.tensor``; relative amplitude, 1 at the illumination centre of an
untapered pedestal; nothing of PyMC) and everything the rest of bayesoof needs to know
about it: the names of its coefficients in order, their units, start values, fit bounds,
whether the quick fit frees them, and their default priors.  The parameter space, the fit
configuration, the PyMC priors, the simulator and the CLI read these objects, so adding
an illumination model is ONE new module in this folder that calls :func:`register`
(every module here is imported by :func:`available_illuminations`), plus its tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Illumination",
    "available_illuminations",
    "evaluate",
    "get_illumination",
    "illumination_params",
    "register",
    "tensor_module",
]

_REGISTRY: dict[str, Illumination] = {}


@dataclass(frozen=True)
class Illumination:
    """One illumination model.

    Attributes
    ----------
    name : str
        What ``fit.illumination``, ``--illumination`` and the telescope presets take.
    function : callable
        ``function(x, y, radius, *coeffs, module=pt)`` -> amplitude E_a.
    params : tuple of str
        Coefficient names, in the order ``function`` takes them.
    units : dict
        Unit of each coefficient ('dB', '', 'm').
    start : dict
        Start (and fixed) value of each coefficient in the quick fit, in its unit.
    bounds : dict
        (lower, upper) of each coefficient in the quick fit.
    fit_free : tuple of str
        Coefficients the quick fit frees by default.
    model_free : tuple of str
        Coefficients a PyMC model built without a quick fit samples by default.
    priors : dict
        Default prior of each coefficient (:mod:`bayesoof.inference.priors` form).
    description : str
    """

    name: str
    function: Callable
    params: tuple[str, ...]
    units: dict[str, str]
    start: dict[str, float]
    bounds: dict[str, tuple[float, float]]
    fit_free: tuple[str, ...] = ()
    model_free: tuple[str, ...] = ()
    priors: dict[str, dict] = field(default_factory=dict)
    description: str = ""

    def __call__(self, x, y, radius, coeffs: dict, module=None):
        """Evaluate with coefficients from the dict ``coeffs`` (every one of ``params``)."""
        missing = [n for n in self.params if n not in coeffs]
        if missing:
            raise ValueError(f"illumination {self.name!r} needs coefficients {missing}")
        return self.function(x, y, radius, *(coeffs[n] for n in self.params), module=module)


def tensor_module():
    """``pytensor.tensor``, imported on first use (the default ``module`` of the functions).

    Listing the models (``--help``) then imports no PyTensor.
    """
    import pytensor.tensor as pt

    return pt


def register(model: Illumination) -> Illumination:
    """Add ``model`` to the registry (a module of this folder does it on import)."""
    _REGISTRY[model.name] = model
    return model


def available_illuminations() -> dict[str, Illumination]:
    """Every registered illumination model by name (the modules of this folder)."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    return dict(sorted(_REGISTRY.items()))


def get_illumination(name: str) -> Illumination:
    """The registered model ``name``; ValueError naming the registered ones."""
    models = available_illuminations()
    if name not in models:
        raise ValueError(f"unknown illumination {name!r}; expected one of {sorted(models)}")
    return models[name]


def illumination_params(kind: str) -> tuple[str, ...]:
    """Names of the shape coefficients of an illumination model (amplitude excluded)."""
    return get_illumination(kind).params


def evaluate(kind: str, x, y, radius: float, coeffs: dict, module=None):
    """Evaluate illumination ``kind`` with coefficients from the dict ``coeffs``."""
    return get_illumination(kind)(x, y, radius, coeffs, module=module)
