"""Priors of the PyMC model: the preset (``bayesoof/presets/priors``) and one prior per block.

A prior is declarative: ``{"dist": ..., parameters..., "per": scale}``.  Distributions:
``uniform`` (lower, upper), ``normal`` (mu, sigma), ``truncated_normal`` (mu, sigma,
lower, upper), ``halfnormal`` (sigma), ``lognormal`` (mu, sigma of the log) and ``zernike``
(the Zernike coefficients: ``Normal(0, rms / mode_rms(n, l))`` per mode, ``tilt_rms`` for
the tilts).  ``scale`` is accepted for ``sigma``.  Numbers are in units of ``per``:

* ``data`` -- the largest |beam| over all maps (amplitudes, offsets, per-map σ),
* ``beam`` -- the beam width λ/(2R), rad (pointing),
* ``radius`` -- the dish radius R, m (the illumination-centre offsets x0, y0: configured
  in units of R everywhere, see :data:`bayesoof.physics.illumination.OFFSET_CENTRE`),

and of the block's unit when ``per`` is absent.  A block's prior is its
``default_prior`` (:class:`bayesoof.inference.params.Block`) updated by the preset's table
at the block's ``prior`` path (e.g. ``illumination.c_dB``).

The coordinate the samplers move is PyMC's default transform of the prior (log for a
positive one, logit for a bounded one).  A prior table may choose another with
``coordinate`` (only for a prior of finite support): ``"soft"`` moves the value itself,
linearly, with soft bounds (:class:`SoftBoundsTransform`); ``"pedestal"`` moves an edge
taper c_dB as its linear pedestal C = 10^(c_dB/20), with soft bounds
(:class:`PedestalTransform`).  The prior itself is the same in any coordinate (PyMC adds
the transform's log-Jacobian).  Measured on the q-c_dB ridge (issue 9,
:mod:`bayesoof.inference.nuisances`): neither removes the divergences there, so the
default stays PyMC's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform

from bayesoof.physics import zernike
from bayesoof.physics.illumination import available_illuminations
from bayesoof.presets.loader import available, merge, preset_text, read_preset, read_toml

__all__ = ["COORDINATES", "PedestalTransform", "SoftBoundsTransform", "available_priors",
           "block_prior", "load_priors", "prior_rv", "support"]

TILTS = (1, 2)  # OSA indices of K(1,-1) and K(1,1)
_SPEC_KEYS = {"dist", "mu", "sigma", "scale", "lower", "upper", "per", "coordinate"}


def available_priors() -> list[str]:
    """Names of the bundled prior presets (``bayesoof/presets/priors/*.toml``)."""
    return available("priors")


def load_priors(priors: str | Path | dict | None = None) -> dict:
    """Return the prior settings: the default preset, updated by ``priors``.

    ``priors`` is None (the default preset), a preset name, the path of a TOML file, or a
    dict (nested like the TOML file); entries it lacks keep their default.  Illumination
    coefficients the preset does not list take their model's default prior.  An entry the
    default lacks (a typo) raises ValueError naming the source and the entry.
    """
    default = read_toml(preset_text("priors", "default"), "bayesoof/presets/priors/default.toml")
    for model in available_illuminations().values():  # coefficients the TOML does not list
        for c in model.coefficients:
            default["illumination"].setdefault(c.name, dict(c.prior))
    if priors is None:
        return default
    if not isinstance(priors, dict) and not str(priors).endswith(".toml") \
            and preset_text("priors", str(priors)) is None and not Path(str(priors)).is_file():
        raise ValueError(f"unknown prior preset {str(priors)!r}; expected one of "
                         f"{available_priors()} or a TOML path")
    table, source = read_preset("priors", priors)
    return merge(default, table, source)


def _lookup(pri: dict, path: str) -> dict:
    node = pri
    for part in path.split(".") if path else []:
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node if isinstance(node, dict) else {}


def block_prior(block, pri: dict, scales: dict) -> dict:
    """The prior of ``block`` with absolute numbers in the block's unit.

    ``scales`` maps the names usable as ``per`` to their values (see the module
    docstring).  Unknown keys of a prior table raise ValueError naming the block.
    """
    spec = dict(block.default_prior)
    spec.update(_lookup(pri, block.prior))
    bad = set(spec) - _SPEC_KEYS - ({"rms", "tilt_rms"} if spec.get("dist") == "zernike" else set())
    if bad:
        raise ValueError(f"prior of {block.name} ('{block.prior}'): unknown entries {sorted(bad)}")
    if "scale" in spec:
        spec.setdefault("sigma", spec.pop("scale"))
    per = spec.pop("per", None)
    unit = 1.0 if per is None else float(scales[per])
    out = {"dist": spec.get("dist", "uniform")}
    for k, v in spec.items():
        if k == "dist":
            continue
        if k == "mu" and out["dist"] == "lognormal":
            out[k] = v + np.log(unit)
        elif k in ("mu", "sigma", "lower", "upper") and not (
                k == "sigma" and out["dist"] == "lognormal"):
            out[k] = v * unit
        else:
            out[k] = v
    return out


def zernike_sigma(nl, pri_zernike: dict) -> np.ndarray:
    """Prior sd of each K (waves): rms (tilt_rms for the tilts) / mode_rms(n, l)."""
    js = [zernike.nl_to_j(n, l) for n, l in nl]
    rms = np.array([pri_zernike["tilt_rms"] if j in TILTS else pri_zernike["rms"] for j in js])
    return rms / np.array([zernike.mode_rms(n, l) for n, l in nl])


def support(spec: dict) -> tuple[float, float]:
    """(lower, upper) support of a resolved prior."""
    kind = spec["dist"]
    if kind in ("uniform", "truncated_normal"):
        return spec["lower"], spec["upper"]
    if kind in ("halfnormal", "lognormal"):
        return 0.0, np.inf
    return -np.inf, np.inf


#: Sharpness of the soft bounds: the map from u to the bounded value bends over the last
#: 1/SOFT_SHARPNESS of the range at each end (slope ≥ 0.95 from 6 % of the range inside
#: either bound), and is linear (slope 1) in between.
SOFT_SHARPNESS = 50.0
PEDESTAL_SHARPNESS = SOFT_SHARPNESS  # (the pedestal coordinate's)


class SoftBoundsTransform(Transform):
    """Sampler coordinate u of a bounded value x: x itself, with soft bounds.

    ``x(u) = lo + [softplus(k (u - lo)) - softplus(k (u - hi))] / k`` maps the real line
    onto (lo, hi) with ``k = SOFT_SHARPNESS / (hi - lo)``: x = u (slope 1) away from the
    bounds, bending smoothly onto them within ~(hi - lo)/k.  No hard wall for a sampler to
    hit (unlike an identity coordinate), and no stretch of the coordinate near the bounds
    (unlike PyMC's logit interval transform, whose slope 1/((x - lo)(hi - x)) bends a ridge
    that runs linearly in x: the taper order q, whose posterior can span 1.1-1.7 of [1, 2]).
    The inverse is closed-form:
    ``u = lo + [log expm1(k (x - lo)) - log(-expm1(-k (hi - x)))] / k``.

    Parameters
    ----------
    lower, upper : float
        The prior's support.
    """

    name = "soft"
    ndim_supp = 0

    def __init__(self, lower: float, upper: float):
        if not (np.isfinite(lower) and np.isfinite(upper) and lower < upper):
            raise ValueError(f"{self.name} coordinate needs finite bounds lower < upper, got "
                             f"{lower}, {upper}")
        self.lo, self.hi = self._inner(float(lower)), self._inner(float(upper))
        self.k = SOFT_SHARPNESS / (self.hi - self.lo)

    # the value the coordinate is linear in, and back (identity here)
    @staticmethod
    def _inner(x):
        return x

    @staticmethod
    def _outer(y):
        return y

    @staticmethod
    def _log_outer_slope(y):
        return 0.0 * y

    def inner(self, u):
        """The soft-bounded value y(u) (tensor) that u is linear in."""
        k = self.k
        return self.lo + (pt.softplus(k * (u - self.lo)) - pt.softplus(k * (u - self.hi))) / k

    def forward(self, value, *inputs):
        """Value -> u."""
        k, y = self.k, self._inner(value)
        return self.lo + (pt.log(pt.expm1(k * (y - self.lo)))
                          - pt.log(-pt.expm1(-k * (self.hi - y)))) / k

    def backward(self, value, *inputs):
        """u -> value."""
        return self._outer(self.inner(value))

    def log_jac_det(self, value, *inputs):
        """log |d value / d u| = log |d value / d y| + log dy/du (stable form).

        dy/du = σ(a) - σ(b) with a = k (u - lo) > b = k (u - hi), written as
        σ(a) σ(-b) (1 - e^(b - a)).
        """
        k = self.k
        a, b = k * (value - self.lo), k * (value - self.hi)
        log_slope = (-pt.softplus(-a) - pt.softplus(b)
                     + np.log(-np.expm1(-k * (self.hi - self.lo))))
        return self._log_outer_slope(self.inner(value)) + log_slope


class PedestalTransform(SoftBoundsTransform):
    """Sampler coordinate u of an edge taper c_dB: the linear pedestal C = 10^(c_dB/20).

    :class:`SoftBoundsTransform` in C: C = u away from the bounds (the pedestals of the
    prior's bounds, dB), c_dB = 20 log10 C(u), log |d c_dB / dC| = log(20 / (ln 10 C)).
    """

    name = "pedestal"

    @staticmethod
    def _inner(x):
        return 10.0 ** (x / 20.0)

    @staticmethod
    def _outer(y):
        return 20.0 * pt.log10(y)

    @staticmethod
    def _log_outer_slope(y):
        return np.log(20.0 / np.log(10.0)) - pt.log(y)


#: coordinates a block may ask for (Block.coordinate), by name
COORDINATES = {"soft": SoftBoundsTransform, "pedestal": PedestalTransform}


def prior_rv(name: str, spec: dict, **kw):
    """Create the PyMC random variable of a resolved prior (inside a model context).

    ``spec["coordinate"]`` (:data:`COORDINATES`), when present and not '': "pedestal" moves
    the variable (an edge taper in dB) as its linear pedestal (:class:`PedestalTransform`),
    "soft" as itself with soft bounds (:class:`SoftBoundsTransform`); the prior must have
    finite support.  Otherwise PyMC's default transform is used.
    """
    kind = spec["dist"]
    coordinate = spec.get("coordinate", "")
    if coordinate:
        if coordinate not in COORDINATES:
            raise ValueError(f"prior of {name}: unknown coordinate {coordinate!r}; expected '' "
                             f"or one of {sorted(COORDINATES)}")
        lo, hi = support(spec)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"prior of {name}: coordinate {coordinate!r} needs a prior of "
                             f"finite support (uniform or truncated_normal), got {kind!r}")
        kw["default_transform"] = COORDINATES[coordinate](lo, hi)
    if kind == "uniform":
        return pm.Uniform(name, lower=spec["lower"], upper=spec["upper"], **kw)
    if kind in ("normal", "zernike"):
        return pm.Normal(name, mu=spec.get("mu", 0.0), sigma=spec["sigma"], **kw)
    if kind == "truncated_normal":
        return pm.TruncatedNormal(name, mu=spec.get("mu", 0.0), sigma=spec["sigma"],
                                  lower=spec["lower"], upper=spec["upper"], **kw)
    if kind == "halfnormal":
        return pm.HalfNormal(name, sigma=spec["sigma"], **kw)
    if kind == "lognormal":
        return pm.LogNormal(name, mu=spec["mu"], sigma=spec["sigma"], **kw)
    raise ValueError(
        f"prior of {name}: unknown dist {kind!r}; expected uniform, normal, "
        "truncated_normal, halfnormal or lognormal"
    )


def inside(value: float, lo: float, hi: float) -> float:
    """``value`` moved strictly inside (lo, hi) so that PyMC's transforms stay finite."""
    if np.isfinite(lo) and np.isfinite(hi):
        eps = 1e-3 * (hi - lo)
        return float(np.clip(value, lo + eps, hi - eps))
    if np.isfinite(lo):
        return float(max(value, lo + 1e-6 * max(abs(lo), 1.0)))
    return float(value)
