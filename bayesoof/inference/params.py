"""Quick-fit configuration and the parameter vector (free, fixed, bounded).

The configuration is declarative TOML: ``bayesoof/presets/fit/default.toml`` (installed as the
resource ``bayesoof.models``) holds every entry; a preset name (``"pyoof"``), a user TOML
file or a dict overrides any subset.  Unknown keys, wrong types, bounds that exclude the
start and configurations with nothing free raise :class:`FitConfigError` naming the
source, the field and what was expected.

The full parameter vector, in this order (plain floats, fixed units)::

    K (J,) waves | c_dB dB, q, x0 m, y0 m (those of the illumination) |
    amp (n_maps,) data units | offset (n_maps,) data units | pointing u, v (n_maps, 2) rad

``theta`` holds the free entries only.  :meth:`ParameterSpace.unpack` maps a tensor
``theta`` to the keyword arguments of :func:`bayesoof.inference.likelihood.predict`: the one mapping
used by the MAP fit, NUTS and emcee.
"""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pytensor.tensor as pt

from bayesoof.physics import zernike
from bayesoof.physics.illumination import illumination_params

__all__ = [
    "FitConfigError",
    "ParameterSpace",
    "available_presets",
    "load_fit_config",
]

ILLUM_UNITS = {"c_dB": "dB", "q": "", "x0": "m", "y0": "m"}
RESIDUALS = ("likelihood", "pyoof")
NOISE_SOURCES = ("auto", "file", "estimate")
COV_SCALES = ("none", "chi2")

# the schema: section -> key -> accepted python types
_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "fit": {
        "order": (int,),
        "illumination": (str,),
        "fit_previous": (bool,),
        "residual": (str,),
        "n_starts": (int,),
        "start_scale": (int, float),
        "seed": (int,),
        "max_nfev": (int,),
        "chi2_tol": (int, float),
        "chi2_tol_intermediate": (int, float),
        "ftol": (int, float),
        "xtol": (int, float),
        "gtol": (int, float),
        "covariance_scale": (str,),
        "blas_threads": (int,),
    },
    "noise": {"source": (str,), "outer_fraction": (int, float)},
    "zernike": {
        "init": (int, float), "lower": (int, float), "upper": (int, float), "fixed": (dict,),
    },
    "amplitude": {"free": (bool,)},
    "offset": {"free": (bool,)},
    "pointing": {"free": (bool,), "limit": (int, float)},
    "misfit": {"remedy": (str,), "model": (str,), "correlation": (int, float),
               "envelope_power": (int, float), "nu": (int, float), "iterations": (int,),
               "covariance": (str,), "hac_bandwidth": (int, float)},
}
MISFIT_REMEDIES = ("auto", "always", "never")
_ILLUM_KEYS = {"free": (bool,), "value": (int, float), "lower": (int, float), "upper": (int, float)}


class FitConfigError(ValueError):
    """Bad quick-fit configuration; the message names the source, the field and the expectation."""


# ------------------------------------------------------------------ loading
def _preset_dir():
    return resources.files("bayesoof.presets").joinpath("fit")


def available_presets() -> list[str]:
    """Names of the bundled fit configurations (``bayesoof/presets/fit/*.toml``)."""
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".toml"))


def _read_toml(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise FitConfigError(f"{source}: not valid TOML ({err})") from err


def _merge(base: dict, over: dict, source: str, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, val in over.items():
        where = f"{path}{key}"
        if key not in base:
            known = ", ".join(sorted(base)) or "none"
            raise FitConfigError(f"{source}: unknown entry '{where}' (known here: {known})")
        if isinstance(base[key], dict) and key != "fixed":
            if not isinstance(val, dict):
                raise FitConfigError(f"{source}: '{where}' must be a table, got {val!r}")
            out[key] = _merge(base[key], val, source, where + ".")
        else:
            out[key] = copy.deepcopy(val)
    return out


def load_fit_config(config=None, **overrides) -> dict:
    """Load and validate the fit configuration: defaults, ``config``, then ``overrides``.

    Parameters
    ----------
    config : None, str, Path or dict
        A preset name (:func:`available_presets`), the path of a TOML file, or a dict of the
        same structure; None for the defaults.
    **overrides
        Entries of the ``[fit]`` table (e.g. ``order=3``, ``n_starts=4``); None is ignored.

    Returns
    -------
    dict
        The merged configuration, with ``"source"`` naming where it came from.
    """
    default_text = _preset_dir().joinpath("default.toml").read_text()
    cfg = _read_toml(default_text, "bayesoof/presets/fit/default.toml")
    source = "defaults"
    if config is not None:
        if isinstance(config, dict):
            user, source = config, "<dict config>"
        else:
            spec = str(config)
            preset = _preset_dir().joinpath(f"{spec}.toml")
            if not spec.endswith(".toml") and preset.is_file():
                user, source = _read_toml(preset.read_text(), f"preset {spec}"), f"preset {spec}"
            else:
                path = Path(spec)
                if not path.is_file():
                    raise FitConfigError(
                        f"fit configuration {spec!r}: no such file, and not a preset "
                        f"({', '.join(available_presets())})"
                    )
                user, source = _read_toml(path.read_text(), str(path)), str(path)
        cfg = _merge(cfg, user, source)
    extra = {k: v for k, v in overrides.items() if v is not None}
    if extra:
        cfg = _merge(cfg, {"fit": extra}, "arguments")
    validate_config(cfg, source)
    cfg["source"] = source
    return cfg


def _check_type(val, types, source: str, where: str) -> None:
    # bool is an int in Python: refuse it where a number is expected
    ok = isinstance(val, types) and not (isinstance(val, bool) and bool not in types)
    if not ok:
        names = " or ".join(t.__name__ for t in types)
        raise FitConfigError(f"{source}: '{where}' must be {names}, got {val!r}")


def _finite_bounds(lo, hi, source: str, where: str) -> None:
    if not (lo < hi):
        raise FitConfigError(f"{source}: '{where}' needs lower < upper, got [{lo}, {hi}]")


def _validate_misfit(m: dict, source: str) -> None:
    from bayesoof.inference.likelihood import MISFIT_MODELS

    if m.get("remedy", "auto") not in MISFIT_REMEDIES:
        raise FitConfigError(f"{source}: 'misfit.remedy' = {m['remedy']!r}; expected one of "
                             f"{MISFIT_REMEDIES}")
    if m.get("model", "discrepancy") not in MISFIT_MODELS:
        raise FitConfigError(f"{source}: 'misfit.model' = {m['model']!r}; expected one of "
                             f"{MISFIT_MODELS}")
    if m.get("covariance", "gls") not in ("gls", "sandwich"):
        raise FitConfigError(f"{source}: 'misfit.covariance' = {m['covariance']!r}; expected "
                             "'gls' or 'sandwich'")
    for key in ("correlation", "nu", "iterations"):
        if key in m and not m[key] > 0:
            raise FitConfigError(f"{source}: 'misfit.{key}' must be > 0, got {m[key]!r}")


def validate_config(cfg: dict, source: str) -> None:
    """Raise :class:`FitConfigError` naming ``source`` and the field for any bad entry."""
    for section, keys in _SCHEMA.items():
        table = cfg.get(section, {})
        for key, types in keys.items():
            if key in table:
                _check_type(table[key], types, source, f"{section}.{key}")
    f = cfg["fit"]
    if f["order"] < 1:
        raise FitConfigError(f"{source}: 'fit.order' must be an integer >= 1, got {f['order']}")
    try:
        illumination_params(f["illumination"])
    except ValueError as err:
        raise FitConfigError(f"{source}: 'fit.illumination': {err}") from None
    for key, allowed in (("residual", RESIDUALS), ("covariance_scale", COV_SCALES)):
        if f[key] not in allowed:
            raise FitConfigError(f"{source}: 'fit.{key}' = {f[key]!r}; expected one of {allowed}")
    if cfg["noise"]["source"] not in NOISE_SOURCES:
        raise FitConfigError(
            f"{source}: 'noise.source' = {cfg['noise']['source']!r}; "
            f"expected one of {NOISE_SOURCES}"
        )
    _validate_misfit(cfg.get("misfit", {}), source)
    if not 0.0 <= cfg["noise"]["outer_fraction"] < 1.0:
        raise FitConfigError(f"{source}: 'noise.outer_fraction' must be in [0, 1)")
    if f["blas_threads"] < 0:
        raise FitConfigError(f"{source}: 'fit.blas_threads' must be >= 0, got {f['blas_threads']}")
    for key in ("n_starts", "max_nfev"):
        if f[key] < 1:
            raise FitConfigError(f"{source}: 'fit.{key}' must be >= 1, got {f[key]}")
    for key in ("ftol", "xtol", "gtol", "start_scale", "chi2_tol", "chi2_tol_intermediate"):
        if not f[key] >= 0:
            raise FitConfigError(f"{source}: 'fit.{key}' must be >= 0, got {f[key]}")
    z = cfg["zernike"]
    _finite_bounds(z["lower"], z["upper"], source, "zernike.lower/upper")
    if not z["lower"] <= z["init"] <= z["upper"]:
        raise FitConfigError(
            f"{source}: 'zernike.init' = {z['init']} lies outside the bounds "
            f"[{z['lower']}, {z['upper']}] waves"
        )
    for name, val in z["fixed"].items():
        _parse_label(name, source)
        _check_type(val, (int, float), source, f"zernike.fixed.{name}")
    for name, table in cfg["illumination"].items():
        if name not in ILLUM_UNITS:
            raise FitConfigError(
                f"{source}: unknown illumination coefficient 'illumination.{name}' "
                f"(known: {', '.join(ILLUM_UNITS)})"
            )
        for key, val in table.items():
            if key not in _ILLUM_KEYS:
                raise FitConfigError(
                    f"{source}: unknown entry 'illumination.{name}.{key}' "
                    f"(known: {', '.join(_ILLUM_KEYS)})"
                )
            _check_type(val, _ILLUM_KEYS[key], source, f"illumination.{name}.{key}")
        _finite_bounds(table["lower"], table["upper"], source, f"illumination.{name}")
        if table["free"] and not table["lower"] <= table["value"] <= table["upper"]:
            raise FitConfigError(
                f"{source}: 'illumination.{name}' starts at {table['value']} {ILLUM_UNITS[name]}"
                f", outside its bounds [{table['lower']}, {table['upper']}]"
            )
    if cfg["pointing"]["limit"] <= 0:
        raise FitConfigError(f"{source}: 'pointing.limit' must be > 0 beam widths")


def _parse_label(name: str, source: str = "") -> tuple[int, int]:
    """``"K(n,l)"`` -> (n, l); FitConfigError naming ``source`` when malformed."""
    s = name.replace(" ", "")
    try:
        if not (s.startswith("K(") and s.endswith(")")):
            raise ValueError
        n, l = (int(t) for t in s[2:-1].split(","))  # noqa: E741
        zernike.nl_to_j(n, l)
    except ValueError:
        raise FitConfigError(
            f"{source}: Zernike label {name!r} is not of the form 'K(n,l)' with |l| <= n, "
            "n - l even"
        ) from None
    return n, l


# ------------------------------------------------------------------ parameter space
@dataclass
class ParameterSpace:
    """Layout of the full parameter vector and which entries are free.

    Attributes
    ----------
    names : list of str
        Labels: ``K(n,l)``, ``c_dB``, ``q``, ``x0``, ``y0``, ``amp[i]``, ``offset[i]``,
        ``pointing_u[i]``, ``pointing_v[i]``.
    units : list of str
        Unit of each entry ('wave', 'dB', '', 'm', 'data', 'rad').
    values : ndarray
        Current values of all entries (start, then the fitted values).
    lower, upper : ndarray
        Bounds of all entries (only used for free ones).
    free : ndarray of bool
    """

    order: int
    illumination: str
    n_maps: int
    with_pointing: bool
    names: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    values: np.ndarray = None
    lower: np.ndarray = None
    upper: np.ndarray = None
    free: np.ndarray = None

    def __post_init__(self) -> None:
        self.nl = zernike.nl_list(self.order)
        self.illum_names = illumination_params(self.illumination)
        J = len(self.nl)
        self.k_slice = slice(0, J)
        start = J
        self.illum_index = {n: start + i for i, n in enumerate(self.illum_names)}
        start += len(self.illum_names)
        self.amp_slice = slice(start, start + self.n_maps)
        self.offset_slice = slice(start + self.n_maps, start + 2 * self.n_maps)
        start += 2 * self.n_maps
        self.pointing_slice = slice(start, start + 2 * self.n_maps) if self.with_pointing else None
        n_full = start + (2 * self.n_maps if self.with_pointing else 0)
        if not self.names:
            self.names = (
                zernike.coeff_names(self.order)
                + list(self.illum_names)
                + [f"amp[{i}]" for i in range(self.n_maps)]
                + [f"offset[{i}]" for i in range(self.n_maps)]
                + (
                    [f"pointing_{a}[{i}]" for i in range(self.n_maps) for a in ("u", "v")]
                    if self.with_pointing
                    else []
                )
            )
            self.units = (
                ["wave"] * J
                + [ILLUM_UNITS[n] for n in self.illum_names]
                + ["data"] * (2 * self.n_maps)
                + (["rad"] * (2 * self.n_maps) if self.with_pointing else [])
            )
        for attr, fill in (("values", 0.0), ("lower", -np.inf), ("upper", np.inf)):
            if getattr(self, attr) is None:
                setattr(self, attr, np.full(n_full, fill))
        if self.free is None:
            self.free = np.zeros(n_full, bool)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, cfg: dict, n_maps: int, beam_width: float) -> ParameterSpace:
        """Space for ``cfg`` (see :func:`load_fit_config`) at order ``cfg['fit']['order']``.

        ``beam_width`` (rad, λ/D) scales the pointing bounds.  All orders' K are free unless
        listed in ``zernike.fixed``; :meth:`at_order` restricts them.
        """
        source = cfg.get("source", "config")
        f = cfg["fit"]
        sp = cls(f["order"], f["illumination"], n_maps, cfg["pointing"]["free"])
        z = cfg["zernike"]
        J = len(sp.nl)
        sp.values[:J] = z["init"]
        sp.lower[:J], sp.upper[:J] = z["lower"], z["upper"]
        sp.free[:J] = True
        if "K(0,0)" not in {k.replace(" ", "") for k in z["fixed"]}:
            raise FitConfigError(
                f"{source}: 'zernike.fixed' must hold K(0,0): piston does not change the beam "
                "and cannot be fitted"
            )
        for label, val in z["fixed"].items():
            n, l = _parse_label(label, source)  # noqa: E741
            if n > sp.order:
                continue
            j = zernike.nl_to_j(n, l)
            sp.free[j], sp.values[j] = False, float(val)
        for name in sp.illum_names:
            t = cfg["illumination"][name]
            i = sp.illum_index[name]
            sp.values[i], sp.lower[i], sp.upper[i], sp.free[i] = (
                t["value"], t["lower"], t["upper"], t["free"]
            )
        sp.values[sp.amp_slice] = 1.0
        sp.lower[sp.amp_slice] = 0.0
        sp.free[sp.amp_slice] = cfg["amplitude"]["free"]
        sp.free[sp.offset_slice] = cfg["offset"]["free"]
        if f["residual"] == "pyoof":  # min-max normalisation removes scale and offset
            sp.values[sp.amp_slice], sp.values[sp.offset_slice] = 1.0, 0.0
            sp.free[sp.amp_slice] = sp.free[sp.offset_slice] = False
        if sp.with_pointing:
            lim = cfg["pointing"]["limit"] * beam_width
            sp.lower[sp.pointing_slice], sp.upper[sp.pointing_slice] = -lim, lim
            sp.free[sp.pointing_slice] = True
            tilts = [zernike.nl_to_j(1, -1), zernike.nl_to_j(1, 1)]
            if any(sp.free[j] for j in tilts):
                raise FitConfigError(
                    f"{source}: [pointing] free = true with free tilts K(1,-1), K(1,1): the "
                    "tilts and a common pointing offset are degenerate; fix the tilts "
                    '(zernike.fixed = { "K(0,0)" = 0.0, "K(1,-1)" = 0.0, "K(1,1)" = 0.0 })'
                )
        if not sp.free.any():
            raise FitConfigError(f"{source}: every parameter is fixed; nothing to fit")
        return sp

    def copy(self) -> ParameterSpace:
        """Independent copy (arrays copied)."""
        out = copy.copy(self)
        for attr in ("values", "lower", "upper", "free"):
            setattr(out, attr, getattr(self, attr).copy())
        out.names, out.units = list(self.names), list(self.units)
        return out

    def at_order(self, order: int) -> ParameterSpace:
        """Copy in which K with n > ``order`` are fixed at 0 (the space keeps its full length)."""
        out = self.copy()
        high = np.array([n > order for n, _ in self.nl])
        out.free[: len(self.nl)][high] = False
        out.values[: len(self.nl)][high] = 0.0
        return out

    # ---------------------------------------------------------------- views
    @property
    def n_full(self) -> int:
        """Length of the full parameter vector."""
        return self.values.size

    @property
    def free_index(self) -> np.ndarray:
        """Positions of the free entries in the full vector."""
        return np.flatnonzero(self.free)

    @property
    def free_names(self) -> list[str]:
        """Labels of the free entries (the order of ``theta``)."""
        return [self.names[i] for i in self.free_index]

    @property
    def theta(self) -> np.ndarray:
        """Current values of the free entries."""
        return self.values[self.free].copy()

    def full(self, theta) -> np.ndarray:
        """Full vector with the free entries replaced by ``theta`` (NumPy)."""
        out = self.values.copy()
        out[self.free] = theta
        return out

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds of the free entries."""
        return self.lower[self.free].copy(), self.upper[self.free].copy()

    def check_start(self, source: str = "start") -> None:
        """FitConfigError naming the parameter when a free start lies outside its bounds."""
        for i in self.free_index:
            v, lo, hi = self.values[i], self.lower[i], self.upper[i]
            if not (lo <= v <= hi) or not math.isfinite(v):
                raise FitConfigError(
                    f"{source}: parameter {self.names[i]} starts at {v:g} {self.units[i]}, "
                    f"outside its bounds [{lo:g}, {hi:g}]"
                )

    def split(self, full) -> dict:
        """Full vector (NumPy or tensor) -> ``predict`` keyword arguments.

        Returns ``{"K": (J,), "illum": {name: scalar}, "amp": (n_maps,), "offset":
        (n_maps,), "pointing": (n_maps, 2) or None}``.
        """
        pointing = None
        if self.with_pointing:
            pointing = full[self.pointing_slice].reshape((self.n_maps, 2))
        return {
            "K": full[self.k_slice],
            "illum": {n: full[i] for n, i in self.illum_index.items()},
            "amp": full[self.amp_slice],
            "offset": full[self.offset_slice],
            "pointing": pointing,
        }

    def unpack(self, theta) -> dict:
        """Free-parameter tensor ``theta`` (n_free,) -> ``predict`` keyword arguments (tensors).

        Fixed entries are constants at :attr:`values`.  ``predict(forward, **space.unpack(t))``
        is the model; a batched ``theta`` is not supported (vectorise the graph instead).
        """
        theta = pt.as_tensor_variable(theta)
        full = pt.set_subtensor(pt.as_tensor_variable(self.values)[self.free_index], theta)
        return self.split(full)

    def params_dict(self) -> dict:
        """Return the current values as a dict: K, c_dB, q, x0, y0, amp, offset, pointing."""
        parts = self.split(self.values)
        out = {"K": np.asarray(parts["K"], float).copy()}
        out.update({k: float(v) for k, v in parts["illum"].items()})
        out["amp"] = np.asarray(parts["amp"], float).copy()
        out["offset"] = np.asarray(parts["offset"], float).copy()
        out["pointing"] = None if parts["pointing"] is None else np.array(parts["pointing"])
        return out
