"""Feed illumination (taper) models: one object each, registered by name.

An :class:`Illumination` holds a pure tensor function ``E_a(x, y, radius, *coeffs,
module=None)`` (aperture coordinates x, y and radius in m; ``module`` NumPy or, by
default, ``pytensor.tensor``; relative amplitude, 1 at the illumination centre of an
untapered pedestal; nothing of PyMC) and everything the rest of bayesoof needs to know
about it: its :class:`Coefficient` s in order (unit, start value, fit bounds, default
prior) and which of them the quick fit and a model built without a fit free.  The
parameter space, the fit configuration, the PyMC priors, the simulator and the CLI read
these objects, so adding
an illumination model is ONE new module in this folder that calls :func:`register`
(every module here is imported by :func:`available_illuminations`), plus its tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CENTRE_BOUND",
    "EDGE_TAPER",
    "OFFSET_CENTRE",
    "TAPER_ORDER",
    "Coefficient",
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
class Coefficient:
    """One illumination coefficient: unit, start value and bounds of the fit, default prior.

    ``unit`` is the unit of the coefficient inside bayesoof and in every result.  ``per``
    names the unit of the CONFIGURED numbers (``start``, ``bounds``, the fit configuration's
    ``[illumination.<name>]`` table and the prior): '' for ``unit`` itself, ``"radius"`` for
    fractions of the dish radius R (the illumination-centre offsets; :meth:`factor` turns
    them into ``unit``).  ``prior`` is in the form of :mod:`bayesoof.inference.priors`.
    """

    name: str
    unit: str
    start: float
    bounds: tuple[float, float]
    prior: dict
    description: str = ""
    per: str = ""

    def factor(self, radius: float) -> float:
        """Factor from the configured numbers to ``unit`` (R for ``per = "radius"``, else 1)."""
        return float(radius) if self.per == "radius" else 1.0

    @property
    def config_unit(self) -> str:
        """Unit of the configured numbers, for messages ('R' for fractions of the radius)."""
        return "R" if self.per == "radius" else self.unit


#: coefficients shared by the bundled models (a new model may define its own)
EDGE_TAPER = Coefficient("c_dB", "dB", -14.5, (-25.0, -1.0),
                         {"dist": "uniform", "lower": -25.0, "upper": -1.0},
                         "edge taper, dB (PHYSICS.md range [-25, -1])")
TAPER_ORDER = Coefficient("q", "", 1.4, (1.0, 2.0),
                          {"dist": "uniform", "lower": 1.0, "upper": 2.0}, "taper order")
#: THE rule of the illumination-centre offsets x0, y0: configured (fit bounds and start,
#: prior) in units of the dish radius R, in m inside and in results; the quick fit keeps them
#: within ±0.2 R and the prior is uniform over the same ±0.2 R (±10 m at Effelsberg).
CENTRE_BOUND = 0.2
_CENTRE = {"dist": "uniform", "lower": -CENTRE_BOUND, "upper": CENTRE_BOUND, "per": "radius"}
OFFSET_CENTRE = tuple(
    Coefficient(name, "m", 0.0, (-CENTRE_BOUND, CENTRE_BOUND), _CENTRE,
                f"illumination-centre offset along {axis}, configured in units of R",
                per="radius")
    for name, axis in (("x0", "x"), ("y0", "y")))


@dataclass(frozen=True)
class Illumination:
    """One illumination model.

    Attributes
    ----------
    name : str
        What ``fit.illumination``, ``--illumination`` and the telescope presets take.
    function : callable
        ``function(x, y, radius, *coeffs, module=None)`` -> amplitude E_a.
    coefficients : tuple of Coefficient
        In the order ``function`` takes them.
    fit_free : tuple of str
        Coefficients the quick fit frees by default.
    model_free : tuple of str
        Coefficients a PyMC model built without a quick fit samples by default.
    description : str
    """

    name: str
    function: Callable
    coefficients: tuple[Coefficient, ...]
    fit_free: tuple[str, ...] = ("c_dB",)
    model_free: tuple[str, ...] = ("c_dB",)
    description: str = ""

    @property
    def params(self) -> tuple[str, ...]:
        """Coefficient names, in the order ``function`` takes them."""
        return tuple(c.name for c in self.coefficients)

    @property
    def units(self) -> dict[str, str]:
        """Unit of each coefficient."""
        return {c.name: c.unit for c in self.coefficients}

    @property
    def start(self) -> dict[str, float]:
        """Start (and fixed) value of each coefficient in the quick fit, configured units."""
        return {c.name: c.start for c in self.coefficients}

    def start_values(self, radius: float) -> dict[str, float]:
        """Start value of each coefficient in its ``unit`` (x0, y0 in m) for a dish radius."""
        return {c.name: c.start * c.factor(radius) for c in self.coefficients}

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        """(lower, upper) of each coefficient in the quick fit, configured units (``per``)."""
        return {c.name: c.bounds for c in self.coefficients}

    def coefficient(self, name: str) -> Coefficient:
        """The coefficient called ``name`` (KeyError naming the model's coefficients)."""
        for c in self.coefficients:
            if c.name == name:
                return c
        raise KeyError(f"illumination {self.name!r} has no coefficient {name!r}; "
                       f"it has {list(self.params)}")

    @property
    def priors(self) -> dict[str, dict]:
        """Default prior of each coefficient."""
        return {c.name: c.prior for c in self.coefficients}

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
