"""Quick-fit configuration: the TOML presets of ``bayesoof/presets/fit``, checked strictly.

``bayesoof/presets/fit/default.toml`` holds every entry; a preset name (``"pyoof"``), a
user TOML file or a dict overrides any subset.  Unknown keys, wrong types, bounds that
exclude the start and configurations with nothing free raise :class:`FitConfigError`
naming the source, the field and what was expected.  The parameter layout built from a
configuration is :class:`bayesoof.inference.params.ParameterSpace`.
"""

from __future__ import annotations

from bayesoof.physics import zernike
from bayesoof.physics.illumination import available_illuminations, illumination_params
from bayesoof.presets.loader import available, merge, preset_text, read_preset, read_toml

__all__ = [
    "FitConfigError",
    "available_presets",
    "load_fit_config",
    "parse_label",
]

RESIDUALS = ("likelihood", "pyoof")
NOISE_SOURCES = ("auto", "file", "estimate")
COV_SCALES = ("none", "chi2")

# the schema: section -> key -> accepted python types
_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "fit": {
        "order": (int,),
        "illumination": (str,),
        "fit_previous": (bool,),
        "nuisances_last_order_only": (bool,),
        "residual": (str,),
        "n_starts": (int,),
        "cold_start_above": (int, float),
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
    "focus": {"free": (bool,), "in_focus_free": (bool,), "limit": (int, float),
              "prior_sd": (int, float)},
    "legs": {"free": (bool,), "width_range": (list,), "shade_range": (int, float)},
    "drift": {"gain_free": (bool,), "baseline_free": (bool,), "gain_limit": (int, float),
              "gain_prior_sd": (int, float), "baseline_prior_sd": (int, float)},
    "misfit": {"remedy": (str,), "model": (str,), "correlation": (int, float),
               "envelope_power": (int, float), "nu": (int, float), "iterations": (int,),
               "covariance": (str,), "hac_bandwidth": (int, float)},
    "model_error": {"aperture": (bool,), "order": (int,), "rms": (int, float)},
}
MISFIT_REMEDIES = ("auto", "always", "never")
_ILLUM_KEYS = {"free": (bool,), "value": (int, float), "lower": (int, float), "upper": (int, float)}


class FitConfigError(ValueError):
    """Bad quick-fit configuration; the message names the source, the field and the expectation."""


# ------------------------------------------------------------------ loading
def available_presets() -> list[str]:
    """Names of the bundled fit configurations (``bayesoof/presets/fit/*.toml``)."""
    return available("fit")


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
    cfg = read_toml(preset_text("fit", "default"), "bayesoof/presets/fit/default.toml",
                    FitConfigError)
    for model in available_illuminations().values():  # coefficients the TOML does not list
        for n in model.params:
            lo, hi = model.bounds[n]
            cfg["illumination"].setdefault(n, {"free": n in model.fit_free,
                                               "value": model.start[n], "lower": lo, "upper": hi})
    source = "defaults"
    chosen = False  # whether the illumination model was chosen (else: the telescope's)
    loaded_choice = None  # "illumination_from" of a configuration loaded by this function
    if isinstance(config, dict) and ("source" in config or "illumination_from" in config):
        # a configuration returned by this function, handed back: its provenance keys are
        # not settings; keep where its illumination came from
        config = dict(config)
        config.pop("source", None)
        loaded_choice = config.pop("illumination_from", None)
    if config is not None:
        user, source = read_preset("fit", config, FitConfigError)
        if isinstance(config, dict):
            source = "<dict config>"
        cfg = merge(cfg, user, source, FitConfigError, opaque=("fixed",))
        chosen = ("illumination" in user.get("fit", {}) if loaded_choice is None
                  else loaded_choice != "default")
    extra = {k: v for k, v in overrides.items() if v is not None}
    chosen = chosen or "illumination" in extra
    if extra:
        cfg = merge(cfg, {"fit": extra}, "arguments", FitConfigError)
    validate_config(cfg, source)
    cfg["source"] = source
    # "default": a telescope that declares its illumination (e.g. the SRT's shaped-optics taper)
    # replaces fit.illumination and the c_dB range (inference.nuisances.resolve_illumination)
    cfg["illumination_from"] = "config" if chosen else "default"
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
    me = cfg.get("model_error", {})
    if "order" in me and not me["order"] >= 1:
        raise FitConfigError(f"{source}: 'model_error.order' must be an integer >= 1, got "
                             f"{me['order']!r}")
    if "rms" in me and not me["rms"] > 0:
        raise FitConfigError(f"{source}: 'model_error.rms' must be > 0, got {me['rms']!r}")
    if not 0.0 <= cfg["noise"]["outer_fraction"] < 1.0:
        raise FitConfigError(f"{source}: 'noise.outer_fraction' must be in [0, 1)")
    if f["blas_threads"] < 0:
        raise FitConfigError(f"{source}: 'fit.blas_threads' must be >= 0, got {f['blas_threads']}")
    for key in ("n_starts", "max_nfev"):
        if f[key] < 1:
            raise FitConfigError(f"{source}: 'fit.{key}' must be >= 1, got {f[key]}")
    for key in ("ftol", "xtol", "gtol", "start_scale", "chi2_tol", "chi2_tol_intermediate",
                "cold_start_above"):
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
        parse_label(name, source)
        _check_type(val, (int, float), source, f"zernike.fixed.{name}")
    # unit of the configured numbers: the coefficient's unit, or "R" (x0, y0: fractions of
    # the dish radius, physics.illumination.OFFSET_CENTRE)
    units = {c.name: c.config_unit for m in available_illuminations().values()
             for c in m.coefficients}
    for name, table in cfg["illumination"].items():
        if name not in units:
            raise FitConfigError(
                f"{source}: unknown illumination coefficient 'illumination.{name}' "
                f"(known: {', '.join(units)})"
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
                f"{source}: 'illumination.{name}' starts at {table['value']} {units[name]}"
                f", outside its bounds [{table['lower']}, {table['upper']}]"
            )
    if cfg["pointing"]["limit"] <= 0:
        raise FitConfigError(f"{source}: 'pointing.limit' must be > 0 beam widths")


def parse_label(name: str, source: str = "") -> tuple[int, int]:
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
