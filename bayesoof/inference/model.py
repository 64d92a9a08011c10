"""The PyMC model of a set of beam maps, built on the one forward graph.

:func:`build_model` is a pure builder: it takes a quick-fit result (or a
:class:`~bayesoof.physics.forward.ForwardModel` and a few settings) and returns a ``pm.Model``
whose likelihood is ``likelihood.predict`` (the residual definition the quick fit and
emcee also use) with priors from a declarative preset (``bayesoof/presets/priors/default.toml``).

Parameters of the model (units as in DESIGN.md):

* ``K`` (dims ``zernike``): the free Zernike coefficients, waves.  Piston is always fixed
  at 0.  Tilts K(1, ±1) are free, or tied to per-map pointing offsets (then fixed at 0
  here and ``pointing`` is free), or fixed.  Prior: ``Normal(0, rms / mode_rms(n, l))``,
  i.e. ``rms`` waves of rms phase per mode over the disc.
* free illumination coefficients (scalars ``c_dB`` dB, ``q``, ``x0`` m, ``y0`` m): bounded
  priors (c_dB in [-25, -1], q in [1, 2], x0, y0 within ± a fraction of R); fixed ones
  keep the quick fit's value.
* ``amp``, ``offset`` (dims ``map``): per-map amplitude and offset, data units.
* ``pointing`` (dims ``map``, ``uv``), rad, when the tilts are tied to pointing.
* ``sigma`` (dims ``map``), data units, only when the noise is estimated per map.
* observed ``beam`` (dims ``sample``): Normal (or Student-t) around ``predict``.

The returned model carries a :class:`ModelInfo` as ``model.bayesoof`` (forward model,
which parameters are free, start point, priors used) for the samplers and the
posterior products.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesoof.inference.likelihood import predict
from bayesoof.physics import zernike
from bayesoof.physics.illumination import illumination_params

__all__ = [
    "ModelInfo",
    "available_priors",
    "build_model",
    "load_priors",
    "prior_predictive",
]

TILTS = (1, 2)  # OSA indices of K(1,-1) and K(1,1)
NOISE_KINDS = ("auto", "known", "per_map")
LIKELIHOODS = ("normal", "student_t", "misfit")
TILT_MODES = ("free", "pointing", "fixed")


# ------------------------------------------------------------------ priors
def _prior_dir():
    return resources.files("bayesoof.presets").joinpath("priors")


def available_priors() -> list[str]:
    """Names of the bundled prior presets (``bayesoof/presets/priors/*.toml``)."""
    return sorted(p.name[:-5] for p in _prior_dir().iterdir() if p.name.endswith(".toml"))


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_priors(priors: str | Path | dict | None = None) -> dict:
    """Return the prior settings: the default preset, updated by ``priors``.

    ``priors`` is None (the default preset), a preset name, the path of a TOML file, or a
    dict (nested like the TOML file); entries it lacks keep their default.
    """
    default = tomllib.loads(_prior_dir().joinpath("default.toml").read_text())
    if priors is None:
        return default
    if isinstance(priors, dict):
        return _merge(default, priors)
    s = str(priors)
    if s.endswith(".toml") or Path(s).is_file():
        path = Path(s)
        if not path.is_file():
            raise FileNotFoundError(f"prior file {path} does not exist")
        return _merge(default, tomllib.loads(path.read_text()))
    res = _prior_dir().joinpath(f"{s}.toml")
    if not res.is_file():
        raise ValueError(
            f"unknown prior preset {s!r}; expected one of {available_priors()} or a TOML path"
        )
    return _merge(default, tomllib.loads(res.read_text()))


def _dist(name: str, spec: dict, unit: float = 1.0, **kw):
    """Create a PyMC random variable from a declarative spec (scales times ``unit``)."""
    kind = spec.get("dist", "uniform")
    p = {k: v for k, v in spec.items() if k != "dist"}
    if kind == "uniform":
        return pm.Uniform(name, lower=p["lower"] * unit, upper=p["upper"] * unit, **kw)
    if kind == "normal":
        return pm.Normal(name, mu=p.get("mu", 0.0) * unit, sigma=p["sigma"] * unit, **kw)
    if kind == "truncated_normal":
        return pm.TruncatedNormal(
            name, mu=p.get("mu", 0.0) * unit, sigma=p["sigma"] * unit,
            lower=p["lower"] * unit, upper=p["upper"] * unit, **kw,
        )
    if kind == "halfnormal":
        return pm.HalfNormal(name, sigma=p["sigma"] * unit, **kw)
    if kind == "lognormal":
        return pm.LogNormal(name, mu=p["mu"] + np.log(unit), sigma=p["sigma"], **kw)
    raise ValueError(
        f"prior of {name}: unknown dist {kind!r}; expected uniform, normal, "
        "truncated_normal, halfnormal or lognormal"
    )


def _bounds(spec: dict, unit: float = 1.0) -> tuple[float, float]:
    kind = spec.get("dist", "uniform")
    if kind in ("uniform", "truncated_normal"):
        return spec["lower"] * unit, spec["upper"] * unit
    if kind in ("halfnormal", "lognormal"):
        return 0.0, np.inf
    return -np.inf, np.inf


# ------------------------------------------------------------------ layout
@dataclass
class ModelInfo:
    """What :func:`build_model` built: attached to the model as ``model.bayesoof``.

    Attributes
    ----------
    forward : ForwardModel
    free_j : ndarray of int
        OSA indices of the free Zernike coefficients (the ``zernike`` coordinate).
    tilt : {'free', 'pointing', 'fixed'}
    free_illum : tuple of str
        Free illumination coefficients (model variables of the same names).
    start : dict
        Parameter values (form of the quick fit's ``params``) at the start point; the
        fixed parameters keep these values.
    free : dict of bool
        Whether ``amp``, ``offset``, ``pointing``, ``sigma`` are model variables.
    sigma : ndarray or None
        Known per-sample σ (data units), None when σ is estimated per map.
    noise, likelihood, nu : the noise model used.
    priors : dict
        The prior settings used (defaults merged with the overrides).
    fit : object or None
        The quick-fit result the model was built from.
    coords : dict
        Auxiliary coordinates: ``n``, ``l`` along ``zernike`` and ``d_z`` (m) along ``map``.
    mu, sigma_graph : tensor
        The model beam (``likelihood.predict``) and the per-sample σ as graphs of the
        model's random variables (for posterior predictive draws).
    """

    forward: Any
    free_j: np.ndarray
    tilt: str
    free_illum: tuple[str, ...]
    start: dict
    free: dict
    sigma: np.ndarray | None
    noise: str
    likelihood: str
    nu: float
    priors: dict
    data_scale: float
    fit: Any = None
    coords: dict = field(default_factory=dict)
    mu: Any = None
    sigma_graph: Any = None

    @property
    def order(self) -> int:
        """Largest Zernike order n."""
        return self.forward.order

    @property
    def n_maps(self) -> int:
        """Number of beam maps."""
        return self.forward.data.n_maps

    def full_K(self, K_free):
        """All J coefficients (waves) from the free ones; works on NumPy (..., n_free)."""
        K_free = np.asarray(K_free, float)
        out = np.broadcast_to(
            np.asarray(self.start["K"], float), K_free.shape[:-1] + (len(self.forward.nl),)
        ).copy()
        out[..., self.free_j] = K_free
        return out


def _parse_free_names(names, nl) -> dict:
    """Which parameter groups a quick fit left free, from its ``free_names`` labels."""
    out = {"K": [], "illum": [], "amp": False, "offset": False, "pointing": False}
    lookup = {f"K({n},{m})": j for j, (n, m) in enumerate(nl)}
    for raw in names:
        name = str(raw).replace(" ", "")
        if name in lookup:
            out["K"].append(lookup[name])
        elif name.startswith("K["):
            out["K"].append(int(name[2:].split("]")[0]))
        elif name in ("c_dB", "q", "x0", "y0"):
            out["illum"].append(name)
        elif name.startswith("amp"):
            out["amp"] = True
        elif name.startswith("offset"):
            out["offset"] = True
        elif name.startswith(("pointing", "u0", "v0", "du", "dv")):
            out["pointing"] = True
    return out


def _default_start(forward) -> dict:
    from bayesoof.simulate import DEFAULT_ILLUMINATION

    illum = {k: DEFAULT_ILLUMINATION[k] for k in illumination_params(forward.illumination)}
    peaks = np.array([np.max(forward.observed[sl]) for sl in forward.map_slices])
    return {
        "K": np.zeros(len(forward.nl)),
        **illum,
        "amp": np.full(forward.data.n_maps, peaks.max() / 0.6),
        "offset": np.zeros(forward.data.n_maps),
        "pointing": None,
    }


def _map_labels(data) -> list[str]:
    names = [m.name for m in data.maps]
    if all(names) and len(set(names)) == len(names):
        return names
    return [f"dz={m.d_z * 1e3:+.2f}mm" for m in data.maps]


def _inside(value: float, lo: float, hi: float) -> float:
    """``value`` moved strictly inside (lo, hi) so that transforms stay finite."""
    if np.isfinite(lo) and np.isfinite(hi):
        eps = 1e-3 * (hi - lo)
        return float(np.clip(value, lo + eps, hi - eps))
    if np.isfinite(lo):
        return float(max(value, lo + 1e-6 * max(abs(lo), 1.0)))
    return float(value)


# ------------------------------------------------------------------ builder
def build_model(
    source,
    priors: str | Path | dict | None = None,
    *,
    noise: str | None = None,
    likelihood: str | None = None,
    nu: float | None = None,
    tilt: str | None = None,
    free_illumination: tuple[str, ...] | None = None,
    free_amp: bool = True,
    free_offset: bool = True,
    start: dict | None = None,
    sigma=None,
) -> pm.Model:
    """Build the PyMC model of the beam maps.

    Parameters
    ----------
    source : FitResult or ForwardModel
        A quick-fit result (its ``forward``, ``params`` (start point and fixed values),
        ``free_names`` (which parameters are free) and ``sigma`` are used), or a forward
        model (then the keywords below say what is free; start at ``start``).
    priors : None, preset name, TOML path or dict
        Prior settings (see ``bayesoof/presets/priors/default.toml``); overrides merge into it.
    noise : {'auto', 'known', 'per_map'}, optional
        'known': per-sample σ of the data (or of the quick fit); 'per_map': one σ per map
        with a HalfNormal prior; 'auto' (default): known when the data carry σ.
    likelihood : {'normal', 'student_t', 'misfit'}, optional
        Student-t (``nu`` degrees of freedom) is robust to outliers.  'misfit': the misfit
        likelihood the quick fit switched on (:mod:`bayesoof.inference.likelihood`, with
        its learned hyper-parameters); the default when the fit has one.
    tilt : {'free', 'pointing', 'fixed'}, optional
        Tilts K(1, ±1) free; tied to per-map pointing offsets (tilts 0, ``pointing`` free);
        or fixed at their start value.  Default: as in the quick fit, else 'free'.
    free_illumination : tuple of str, optional
        Free illumination coefficients (default: as in the quick fit, else c_dB and q).
    free_amp, free_offset : bool
        Only with a ForwardModel source: whether amplitudes / offsets are free.
    start : dict, optional
        Start / fixed values in the form of the quick fit's ``params``.
    sigma : array, optional
        Known per-sample σ (data units), overriding the data's.

    Returns
    -------
    pm.Model
        With coords ``zernike`` (free modes, labels ``K(n,l)``), ``map``, ``uv``,
        ``sample`` and a :class:`ModelInfo` as ``model.bayesoof``.
    """
    pri = load_priors(priors)
    fit = None
    if hasattr(source, "forward") and hasattr(source, "params"):
        fit = source
        forward = fit.forward
        st = {k: (None if v is None else np.array(v, float)) for k, v in fit.params.items()}
        parsed = _parse_free_names(getattr(fit, "free_names", ()), forward.nl)
        if tilt is None:
            if parsed["pointing"]:
                tilt = "pointing"
            elif all(j in parsed["K"] for j in TILTS):
                tilt = "free"
            else:
                tilt = "fixed"
        if free_illumination is None:
            free_illumination = tuple(parsed["illum"])
        free_amp, free_offset = parsed["amp"], parsed["offset"]
        fit_sigma = getattr(fit, "sigma", None)
    else:
        forward = source
        st = _default_start(forward)
        if free_illumination is None:
            free_illumination = tuple(
                n for n in ("c_dB", "q") if n in illumination_params(forward.illumination)
            )
        fit_sigma = None
    if start is not None:
        st.update({k: (None if v is None else np.array(v, float)) for k, v in start.items()})
    tilt = tilt or "free"
    if tilt not in TILT_MODES:
        raise ValueError(f"tilt must be one of {TILT_MODES}, got {tilt!r}")
    names = illumination_params(forward.illumination)
    bad = [n for n in free_illumination if n not in names]
    if bad:
        raise ValueError(
            f"illumination {forward.illumination!r} has no coefficient {bad}; expected {names}"
        )

    noise = noise or pri["noise"].get("kind", "auto")
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
    misfit = getattr(fit, "misfit_model", None) if fit is not None else None
    if (likelihood is None and misfit is not None
            and fit.config["misfit"].get("covariance") == "gls"):
        # the quick fit maximised its misfit likelihood: the posterior uses the same one.  With
        # the (default) sandwich covariance it did not, and the marginal discrepancy
        # likelihood lets the amplitudes drift (measured): then only on request
        likelihood = "misfit"
    lik = likelihood or pri["noise"].get("likelihood", "normal")
    if lik == "misfit":
        if misfit is None:
            raise ValueError("likelihood='misfit' needs a quick-fit result whose misfit "
                             "likelihood is on (fit.misfit_model)")
        noise = "known"  # its hyper-parameters scale the quick fit's σ
    if lik not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {lik!r}")
    nu = float(nu if nu is not None else pri["noise"].get("nu", 4.0))
    known = None
    if sigma is not None:
        known = np.broadcast_to(np.asarray(sigma, float), forward.observed.shape).copy()
    elif forward.sigma is not None:
        known = forward.sigma
    elif fit_sigma is not None and noise == "known":
        known = np.broadcast_to(np.asarray(fit_sigma, float), forward.observed.shape).copy()
    if noise == "auto":
        noise = "known" if known is not None else "per_map"
    if noise == "known" and known is None:
        raise ValueError(
            "noise='known' needs a per-sample sigma: the data carry none; pass sigma= or "
            "use noise='per_map'"
        )
    if noise == "per_map":
        known = None

    nm = forward.data.n_maps
    nl = forward.nl
    J = len(nl)
    K0 = np.zeros(J)
    K0[: np.asarray(st["K"]).size] = np.asarray(st["K"], float)[:J]
    K0[0] = 0.0  # piston is unobservable
    if tilt == "pointing":
        K0[list(TILTS)] = 0.0
    st["K"] = K0
    free_j = [j for j in range(1, J) if tilt == "free" or j not in TILTS]
    if fit is not None:  # coefficients the quick fit held fixed stay fixed
        free_j = [j for j in free_j if j in parsed["K"] or j in TILTS]
    free_j = np.array(free_j, dtype=int)

    R, lam = forward.telescope.radius, forward.wavelength
    data_scale = float(np.max(np.abs(forward.observed)))
    labels = zernike.coeff_names(forward.order)
    maps = _map_labels(forward.data)
    coords = {
        "zernike": [labels[j] for j in free_j],
        "map": maps,
        "uv": ["u", "v"],
        "sample": np.arange(forward.observed.size),
    }
    rms = np.array([zernike.mode_rms(*nl[j]) for j in free_j])
    k_rms = np.array([pri["zernike"]["tilt_rms"] if j in TILTS else pri["zernike"]["rms"]
                      for j in free_j])
    illum_pri = pri["illumination"]
    frac = float(illum_pri.get("offset_fraction", 0.2))
    illum_spec = {
        "c_dB": illum_pri["c_dB"],
        "q": illum_pri.get("q", {"dist": "uniform", "lower": 1.0, "upper": 2.0}),
        "x0": illum_pri.get("x0", {"dist": "uniform", "lower": -frac * R, "upper": frac * R}),
        "y0": illum_pri.get("y0", {"dist": "uniform", "lower": -frac * R, "upper": frac * R}),
    }
    amp_spec = dict(pri["amplitude"])
    amp_spec.setdefault("sigma", amp_spec.pop("scale", 10.0))
    amp_spec.pop("scale", None)
    off_spec = dict(pri["offset"])
    off_spec.setdefault("sigma", off_spec.pop("scale", 1.0))
    off_spec.pop("scale", None)
    beam_width = lam / (2.0 * R)

    with pm.Model(coords=coords) as model:
        K_free = pm.Normal(
            "K", mu=0.0, sigma=k_rms / rms, dims="zernike",
            initval=K0[free_j] if free_j.size else None,
        )
        K_full = pt.set_subtensor(pt.as_tensor_variable(K0)[free_j], K_free)
        illum = {}
        for n in names:
            if n in free_illumination:
                lo, hi = _bounds(illum_spec[n])
                illum[n] = _dist(n, illum_spec[n], initval=_inside(float(st[n]), lo, hi))
                st[n] = float(st[n])
            else:
                illum[n] = float(st[n])
        amp0 = np.broadcast_to(np.asarray(st["amp"], float), (nm,)).copy()
        off0 = np.broadcast_to(np.asarray(st["offset"], float), (nm,)).copy()
        st["amp"], st["offset"] = amp0, off0
        if free_amp:
            lo, _ = _bounds(amp_spec)
            init = np.array([_inside(a, lo, np.inf) for a in amp0])
            amp = _dist("amp", amp_spec, data_scale, dims="map", initval=init)
        else:
            amp = amp0
        if free_offset:
            offset = _dist("offset", off_spec, data_scale, dims="map", initval=off0)
        else:
            offset = off0
        pointing = None
        if tilt == "pointing":
            p0 = st.get("pointing")
            p0 = np.zeros((nm, 2)) if p0 is None else np.asarray(p0, float).reshape(nm, 2)
            st["pointing"] = p0
            pointing = pm.Normal(
                "pointing", 0.0, float(pri["pointing"]["scale"]) * beam_width,
                dims=("map", "uv"), initval=p0,
            )
        elif st.get("pointing") is not None:
            pointing = np.asarray(st["pointing"], float).reshape(nm, 2)
        mu = predict(forward, K_full, illum, amp, offset, pointing)
        if noise == "known":
            sig = pt.as_tensor_variable(known)
        else:
            resid_sd = _residual_sd_start(forward, fit_sigma)
            sig_map = pm.HalfNormal(
                "sigma", sigma=float(pri["noise"].get("scale", 1.0)) * data_scale, dims="map",
                initval=resid_sd,
            )
            sig = sig_map[forward.map_index]
        if lik == "misfit":  # likelihood.py's definition, hyper-parameters of the quick fit
            pm.Potential("beam_misfit_loglike",
                         misfit.logp_tensor((forward.observed - mu) / sig))
        elif lik == "normal":
            pm.Normal("beam", mu=mu, sigma=sig, observed=forward.observed, dims="sample")
        else:
            pm.StudentT("beam", nu=nu, mu=mu, sigma=sig, observed=forward.observed, dims="sample")

    model.bayesoof = ModelInfo(
        forward=forward,
        free_j=free_j,
        tilt=tilt,
        free_illum=tuple(n for n in names if n in free_illumination),
        start=st,
        free={"amp": bool(free_amp), "offset": bool(free_offset),
              "pointing": tilt == "pointing", "sigma": noise == "per_map"},
        sigma=None if known is None else np.asarray(known, float),
        noise=noise,
        likelihood=lik,
        nu=nu,
        priors=pri,
        data_scale=data_scale,
        fit=fit,
        coords={"n": np.array([nl[j][0] for j in free_j]),
                "l": np.array([nl[j][1] for j in free_j]),
                "d_z": np.array([m.d_z for m in forward.data.maps])},
        mu=mu,
        sigma_graph=sig,
    )
    return model


def _residual_sd_start(forward, fit_sigma) -> np.ndarray:
    """Start values of the per-map σ: the quick fit's σ per map, else 1% of each peak."""
    out = []
    for sl in forward.map_slices:
        if fit_sigma is not None:
            s = np.broadcast_to(np.asarray(fit_sigma, float), forward.observed.shape)[sl]
            out.append(float(np.sqrt(np.mean(s**2))))
        else:
            out.append(0.01 * float(np.max(np.abs(forward.observed[sl]))) + 1e-12)
    return np.array(out)


def prior_predictive(model: pm.Model, draws: int = 200, seed: int = 0):
    """Prior predictive check: InferenceData with ``prior`` and ``prior_predictive`` groups.

    One call: draws of every parameter from its prior and of the beam maps they predict
    (data units), with the observed data alongside.
    """
    return pm.sample_prior_predictive(draws=draws, model=model, random_seed=seed)
