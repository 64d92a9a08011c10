"""The PyMC model of a set of beam maps, composed from the parameter space and pieces.

:func:`build_model` takes a quick-fit result (its :class:`~bayesoof.inference.params.ParameterSpace`
says which parameters are free, their start values and their layout) or a
:class:`~bayesoof.physics.forward.ForwardModel` (a standard space is made from the few
settings below) and composes the model from two pieces, usable on their own for a model
over several data sets:

* :func:`add_priors` -- one random variable per block with a free entry, its prior from the
  block (:mod:`bayesoof.inference.priors`), dims and coords from the block; returns every
  block's value (tensor: the free entries random, the fixed ones constants);
* :func:`add_likelihood` -- the observed beams of one data set: Normal (or Student-t)
  around ``likelihood.predict(forward, **space.predict_kwargs(values))``, with known σ
  or one σ per map.

Parameters of the model (units as in DESIGN.md): ``K`` (dims ``zernike``: the free
coefficients, waves; piston always fixed), the free illumination coefficients (scalars),
``amp`` and ``offset`` (dims ``map``, data units), ``pointing`` (dims ``map``, ``uv``, rad),
``sigma`` (dims ``map``) when the noise is estimated, observed ``beam`` (dims ``sample``).
The model carries a :class:`ModelInfo` as ``model.bayesoof``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesoof.inference.config import load_fit_config
from bayesoof.inference.likelihood import predict
from bayesoof.inference.params import TILTS, ParameterSpace, map_labels, pointing_reference
from bayesoof.inference.priors import (
    available_priors,
    block_prior,
    inside,
    load_priors,
    prior_rv,
    support,
    zernike_sigma,
)
from bayesoof.physics.illumination import get_illumination

__all__ = [
    "ModelInfo",
    "add_likelihood",
    "add_priors",
    "available_priors",
    "build_model",
    "load_priors",
    "prior_predictive",
]
NOISE_KINDS = ("auto", "known", "per_map")
#: The taper order q, free in the quick fit, is sampled only where the data pin it down:
#: Laplace sd ≤ Q_SAMPLE_SD and ≥ Q_SAMPLE_MARGIN sd inside its bounds; otherwise the model
#: holds it at the quick fit's value (ModelInfo.held says so).  Measured with the `sample`
#: defaults (bayesoof/inference/nuisances.py, "Taper order q"): sd 0.012 (63 × 63 maps,
#: order 5): 0 divergences; sd 0.048 (31 × 31, order 5, posterior reaching q = 2): 9;
#: sd 0.088 (31 × 31, order 3): 3-11.  The ridge q-c_dB-amplitudes is curved (off the
#: Laplace line by 3-6 conditional sd at ±3 sd of q); no per-coordinate transform tried
#: (logit, linear pedestal, soft bounds) removed it.  0.02 lies between the clean and the
#: diverging cases measured; nothing between them was measured.  A held q is marginalised
#: linearly after sampling (bayesoof/inference/held_marginal.py).
Q_SAMPLE_SD = 0.02
Q_SAMPLE_MARGIN = 5.0
#: The leg geometry, free in the quick fit by default, is sampled in the posterior
#: (``sample_legs=True``, the default since session 7).  Holding it at the quick fit's
#: values narrowed the nuisances correlated with it (amplitudes, c_dB, q: r up to 0.8):
#: c_dB's truth fell outside its 99 % interval on the order-3 test case (issue 9).  What
#: made sampling it diverge (PyMC's NUTS, 2 in 600 draws on the 21 x 21 order-2
#: calibration case) was the whitening, not the coverage's kinks: the width, strongly
#: correlated with the amplitudes in *physical* units, is sampled in the logit coordinate
#: of its bounds, and where its posterior reaches towards a bound (0.85 ± 0.14 m against
#: 0.5) that straight ridge is curved by several conditional sd in the sampled
#: coordinates; the divergences sat at 0.57-0.60 m.  The sampler's whitening now follows
#: the physical leg values (density.AffineDensity "curved whitening", sample._whitening):
#: 0 divergences, bulk ESS 259 -> 870 on that case (/work/notes/s7-legs.md).  Cost: a
#: value + gradient on the 48-pixel test aperture at 21 x 21, order 2, 2.99 ms CPU sampled
#: against 1.12 held (6.51 before the leg coverage integrated single-leg pixels once);
#: 16.2 against 13.4 ms at order 5 on 3 x 127² (session 6).
#: The Zernike terms' correlation with the legs is |r| <= 0.33.  ``sample_legs=False``
#: holds them (ModelInfo.held says so).
LEG_NAMES = ("leg_half_width", "shade_half_angle")
LIKELIHOODS = ("normal", "student_t", "misfit")
TILT_MODES = ("free", "pointing", "tied", "fixed")


# ------------------------------------------------------------------ layout
@dataclass
class ModelInfo:
    """What :func:`build_model` built: attached to the model as ``model.bayesoof``.

    Attributes
    ----------
    forward : ForwardModel
    space : ParameterSpace
        The layout sampled: values are the start point (fixed entries keep them).
    free_j : ndarray of int
        OSA indices of the free Zernike coefficients (the ``zernike`` coordinate).
    tilt : {'free', 'pointing', 'tied', 'fixed'}
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
    space: ParameterSpace
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
    held: dict = field(default_factory=dict)
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


# ------------------------------------------------------------------ the space of a model
def _space_for_forward(forward, tilt: str, free_illumination, free_amp: bool,
                       free_offset: bool, start: dict | None) -> ParameterSpace:
    """Standard space of a forward model: defaults of the fit configuration as the start."""
    data = forward.data
    cfg = load_fit_config()
    with_pointing = tilt in ("pointing", "tied") or (start is not None
                                                     and start.get("pointing") is not None)
    sp = ParameterSpace.standard(forward.order, forward.illumination, data.n_maps,
                                 with_pointing, data.d_z, map_labels(data))
    sp.set_illumination(cfg["illumination"], forward.telescope.radius, free=False)
    if free_illumination is None:
        free_illumination = get_illumination(forward.illumination).model_free
    for n in free_illumination:
        if sp.has(n):  # an unknown name is reported by _apply_choices
            sp.set(n, free=True)
    peaks = np.array([np.max(forward.observed[sl]) for sl in forward.map_slices])
    sp.set("amp", peaks.max() / 0.6, free=free_amp)  # a normalised beam peaks near 0.6
    sp.set("offset", 0.0, free=free_offset)
    sp.set("K", free=True)
    if with_pointing:
        sp.set("pointing", 0.0, free=tilt in ("pointing", "tied"))
    if start is not None:
        sp.set_values(start, "start")
    return sp


def _tilt_mode(space: ParameterSpace) -> str:
    if space.with_pointing and space.free_of("pointing").any():
        return "tied" if all(space.free[j] for j in TILTS) else "pointing"
    return "free" if all(space.free[j] for j in TILTS) else "fixed"


def _apply_choices(space: ParameterSpace, tilt: str, free_illumination) -> ParameterSpace:
    """Piston fixed at 0; tilts per ``tilt``; the free illumination coefficients."""
    names = space.illum_names
    bad = [n for n in free_illumination if n not in names]
    if bad:
        raise ValueError(
            f"illumination {space.illumination!r} has no coefficient {bad}; expected {names}"
        )
    for n in names:
        space.set(n, free=n in free_illumination)
    k = space.slice_of("K")
    space.values[k.start], space.free[k.start] = 0.0, False  # piston is unobservable
    tilts = [k.start + j for j in TILTS]
    if tilt == "pointing":
        if not space.with_pointing:
            raise ValueError("tilt='pointing' needs a pointing block in the parameter space "
                             "(fit with [pointing] free = true)")
        space.values[tilts], space.free[tilts] = 0.0, False
        space.set("pointing", free=True)
    elif tilt == "tied":  # tilts free, the reference map's pointing fixed (the tilts carry it)
        if not space.with_pointing:
            raise ValueError("tilt='tied' needs a pointing block in the parameter space "
                             "(fit with [pointing] free = true)")
        space.free[tilts] = True
        ref = pointing_reference(space.block("pointing").coords.get("d_z"), space.n_maps)
        p = space.slice_of("pointing")
        space.free[p] = True
        space.free[p.start + 2 * ref + np.arange(2)] = False
    elif tilt == "fixed":
        space.free[tilts] = False
    else:
        space.free[tilts] = True
        if space.with_pointing:
            space.set("pointing", free=False)
    return space


# ------------------------------------------------------------------ pieces
def add_priors(space: ParameterSpace, priors: dict, scales: dict, prefix: str = "") -> dict:
    """Random variables of the free entries of every block (inside a ``pm.Model``).

    Parameters
    ----------
    space : ParameterSpace
        Free mask and start values (initial values of the variables; fixed entries become
        constants).
    priors : dict
        Prior settings (:func:`load_priors`).
    scales : dict
        Values of the ``per`` units (:mod:`bayesoof.inference.priors`).
    prefix : str
        Prepended to the variable names (several data sets in one model).

    Returns
    -------
    dict
        Block name -> value (tensor of the block's shape, or float for a fixed scalar).
    """
    model = pm.modelcontext(None)
    values = {}
    for b in space.blocks:
        sl = space.slice_of(b.name)
        free = space.free[sl]
        start = space.values[sl]
        if not free.any():
            values[b.name] = float(start[0]) if b.shape == () else start.reshape(b.shape).copy()
            continue
        spec = block_prior(b, priors, scales)
        if spec["dist"] == "zernike":
            nl = list(zip(b.coords["n"], b.coords["l"], strict=True))
            spec = {"dist": "normal", "mu": 0.0,
                    "sigma": zernike_sigma([nl[i] for i in np.flatnonzero(free)], spec)}
        lo, hi = support(spec)
        init = np.array([inside(v, lo, hi) for v in start[free]])
        name = prefix + b.name
        if free.all():
            for d in b.dims:
                if d not in model.coords:
                    model.add_coord(d, list(b.coords.get(d, b.labels)))
            if b.shape == ():
                values[b.name] = prior_rv(name, spec, initval=float(init[0]))
            else:
                values[b.name] = prior_rv(name, spec, dims=b.dims, initval=init.reshape(b.shape))
            continue
        # partly free: along the first dimension (e.g. the maps of pointing, whose in-focus
        # row the tilts carry), each row wholly free or wholly fixed
        rows = free.reshape(b.shape[0], -1)
        if not np.all(rows.all(axis=1) | ~rows.any(axis=1)):
            raise ValueError(f"block {b.name}: a partly free block must free whole rows "
                             f"along {b.dims[0]!r}")
        keep = rows.all(axis=1)
        coord = [c for c, f in zip(b.coords.get(b.dims[0], b.labels), keep, strict=True) if f]
        dim = b.dims[0]
        if dim in model.coords and list(model.coords[dim]) != coord:
            dim = f"{name}_free"
        if dim not in model.coords:
            model.add_coord(dim, coord)
        for d in b.dims[1:]:
            if d not in model.coords:
                model.add_coord(d, list(b.coords.get(d)))
        rv = prior_rv(name, spec, dims=(dim, *b.dims[1:]),
                      initval=init.reshape((int(keep.sum()), *b.shape[1:])))
        full = pt.as_tensor_variable(start.reshape(b.shape))
        values[b.name] = pt.set_subtensor(full[np.flatnonzero(keep)], rv)
    return values


def add_likelihood(forward, values: dict, space: ParameterSpace, *, noise: str, sigma,
                   likelihood: str, nu: float, sigma_prior: float, sigma_start,
                   misfit=None, name: str = "beam", dims: tuple[str, str] = ("sample", "map")):
    """Observed beams of one data set around ``predict`` (inside a ``pm.Model``).

    Parameters
    ----------
    forward : ForwardModel
        The data set's forward model (its ``observed`` beams, ``map_index``).
    values : dict
        Block values from :func:`add_priors`.
    space : ParameterSpace
        Maps the block values to ``predict``'s arguments.
    noise : {'known', 'per_map'}
        Known per-sample ``sigma`` (data units), or one σ per map
        (``HalfNormal(sigma_prior)``, started at ``sigma_start``).
    likelihood : {'normal', 'student_t', 'misfit'}
        'misfit': ``misfit.logp_tensor`` of the standardised residuals (a misfit
        likelihood of :mod:`bayesoof.inference.likelihood`) as a potential.
    name, dims : str
        Name of the observed variable (σ: ``sigma`` with the same suffix) and its dims
        (samples, maps).

    Returns
    -------
    mu, sigma : tensors
        Model beam and per-sample σ.
    """
    mu = predict(forward, **space.predict_kwargs(values))
    if noise == "known":
        sig = pt.as_tensor_variable(sigma)
    else:
        sig_map = pm.HalfNormal("sigma" + name[len("beam"):], sigma=sigma_prior, dims=dims[1],
                                initval=sigma_start)
        sig = sig_map[forward.map_index]
    if likelihood == "misfit":  # likelihood.py's definition, hyper-parameters of the quick fit
        pm.Potential(f"{name}_misfit_loglike", misfit.logp_tensor((forward.observed - mu) / sig))
    elif likelihood == "normal":
        pm.Normal(name, mu=mu, sigma=sig, observed=forward.observed, dims=dims[0])
    else:
        pm.StudentT(name, nu=nu, mu=mu, sigma=sig, observed=forward.observed, dims=dims[0])
    return mu, sig


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
    sample_legs: bool = True,
) -> pm.Model:
    """Build the PyMC model of the beam maps.

    Parameters
    ----------
    source : FitResult or ForwardModel
        A quick-fit result (its ``forward``, its ``space`` -- which parameters are free,
        the MAP as the start, the layout -- and its ``sigma``), or a forward model (then
        the keywords below say what is free; start at ``start``, else the defaults of the
        fit configuration).
    priors : None, preset name, TOML path or dict
        Prior settings (see ``bayesoof/presets/priors/default.toml``); overrides merge into it.
    noise : {'auto', 'known', 'per_map'}, optional
        'known': per-sample σ of the data (or of the quick fit); 'per_map': one σ per map
        with a HalfNormal prior; 'auto' (default): known when the data carry σ.
    likelihood : {'normal', 'student_t', 'misfit'}, optional
        Student-t (``nu`` degrees of freedom) is robust to outliers.  'misfit': the misfit
        likelihood the quick fit switched on (:mod:`bayesoof.inference.likelihood`, with
        its learned hyper-parameters); the default when the fit has one.
    tilt : {'free', 'pointing', 'tied', 'fixed'}, optional
        Tilts K(1, ±1) free; replaced by per-map pointing offsets (tilts 0, ``pointing``
        free); 'tied': tilts free and the pointing of every map but the in-focus one free
        (relative to it; the quick fit's default, see :mod:`bayesoof.inference.nuisances`);
        or fixed at their start value.  Default: as in the quick fit, else 'free'.
    free_illumination : tuple of str, optional
        Free illumination coefficients (default: as in the quick fit, else c_dB and q).
    free_amp, free_offset : bool
        Only with a ForwardModel source: whether amplitudes / offsets are free.
    start : dict, optional
        Start / fixed values in the form of ``ParameterSpace.params_dict``.
    sigma : array, optional
        Known per-sample σ (data units), overriding the data's.
    sample_legs : bool
        Sample the leg geometry when the quick fit freed it (default); False holds it at
        the quick fit's values (:data:`LEG_NAMES`), the rest conditioned on them.

    Returns
    -------
    pm.Model
        With coords ``zernike`` (free modes, labels ``K(n,l)``), ``map``, ``uv``,
        ``sample`` and a :class:`ModelInfo` as ``model.bayesoof``.
    """
    pri = load_priors(priors)
    if tilt is not None and tilt not in TILT_MODES:
        raise ValueError(f"tilt must be one of {TILT_MODES}, got {tilt!r}")
    fit = None
    if hasattr(source, "forward") and hasattr(source, "space"):
        fit = source
        forward = fit.forward
        # the best fit itself, the aperture model error at 0 (its marginalisation is applied
        # to the K draws afterwards: misfit_adjust.py), not the joint estimate
        space = (getattr(fit, "exact_model_last", None) or fit).space.copy()
        if start is not None:
            space.set_values(start, "start")
        fit_sigma = getattr(fit, "sigma", None)
    else:
        forward = source
        space = _space_for_forward(forward, tilt or "free", free_illumination, free_amp,
                                   free_offset, start)
        fit_sigma = None
    tilt = tilt or _tilt_mode(space)
    held = {}
    if free_illumination is None:
        free_illumination = tuple(n for n in space.illum_names if space.free_of(n).all())
        if fit is not None and "q" in free_illumination:
            reason = _q_not_pinned(fit, space)
            if reason:
                held["q"] = reason
                free_illumination = tuple(n for n in free_illumination if n != "q")
    space = _apply_choices(space, tilt, free_illumination)
    if not sample_legs:
        held.update(_hold_legs(space))

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

    R, lam = forward.telescope.radius, forward.wavelength
    data_scale = float(np.max(np.abs(forward.observed)))
    scales = {"data": data_scale, "beam": lam / (2.0 * R), "radius": R}
    amp = space.block("amp")
    coords = {"map": list(amp.coords["map"]), "uv": ["u", "v"],
              "sample": np.arange(forward.observed.size)}
    with pm.Model(coords=coords) as model:
        values = add_priors(space, pri, scales)
        mu, sig = add_likelihood(
            forward, values, space, noise=noise, sigma=known, likelihood=lik, nu=nu,
            sigma_prior=float(pri["noise"].get("scale", 1.0)) * data_scale,
            sigma_start=_residual_sd_start(forward, fit_sigma), misfit=misfit,
        )

    free_j = np.flatnonzero(space.free_of("K"))
    nl = space.nl
    model.bayesoof = ModelInfo(
        forward=forward,
        space=space,
        free_j=free_j,
        tilt=tilt,
        free_illum=tuple(n for n in space.illum_names if space.free_of(n).all()),
        start=space.params_dict(),
        free={"amp": bool(space.free_of("amp").any()),
              "offset": bool(space.free_of("offset").any()),
              "pointing": tilt in ("pointing", "tied"), "sigma": noise == "per_map"},
        sigma=None if known is None else np.asarray(known, float),
        noise=noise,
        likelihood=lik,
        nu=nu,
        priors=pri,
        data_scale=data_scale,
        fit=fit,
        held=held,
        coords={"n": np.array([nl[j][0] for j in free_j]),
                "l": np.array([nl[j][1] for j in free_j]),
                "d_z": np.array([m.d_z for m in forward.data.maps])},
        mu=mu,
        sigma_graph=sig,
    )
    return model


def _hold_legs(space: ParameterSpace) -> dict:
    """Fix the free leg dimensions of ``space`` at their values; name -> why (LEG_NAMES)."""
    held = {}
    for name in LEG_NAMES:
        if space.has(name) and space.free_of(name).any():
            value = float(space.values[space.slice_of(name)][0])
            unit = space.block(name).unit
            space.set(name, free=False)
            held[name] = (f"{name} held at the quick fit's {value:.4g} {unit}: the "
                          "draws are conditional on it, carried over it linearly after "
                          "sampling (held_marginal.py; sample_legs=True samples it: "
                          "bayesoof/inference/model.py LEG_NAMES)")
    return held


def _q_not_pinned(fit, space: ParameterSpace) -> str:
    """Why the model holds the quick fit's q (:data:`Q_SAMPLE_SD`), or '' to sample it."""
    # the sd the posterior sees: conditional on the model error's estimate (model_error.py)
    rec = (getattr(fit, "exact_model_last", None) or getattr(fit, "plain_last", None)
           or getattr(fit, "last", None))
    if rec is None or getattr(rec, "cov", None) is None:
        return ""
    names = list(rec.space.free_names)
    if "q" not in names:
        return ""
    sd = float(np.asarray(rec.sd)[names.index("q")])
    sl = space.slice_of("q")
    q, lo, hi = float(space.values[sl][0]), float(space.lower[sl][0]), float(space.upper[sl][0])
    margin = min(q - lo, hi - q) / sd if sd > 0 else np.inf
    why = []
    if not (np.isfinite(sd) and sd <= Q_SAMPLE_SD):
        why.append(f"its Laplace sd {sd:.3f} > {Q_SAMPLE_SD}")
    if not margin >= Q_SAMPLE_MARGIN:
        why.append(f"it lies {margin:.1f} sd (< {Q_SAMPLE_MARGIN:g}) from its bounds "
                   f"[{lo:g}, {hi:g}]")
    if not why:
        return ""
    return (f"taper order q held at the quick fit's {q:.3f}: {' and '.join(why)} (NUTS "
            "diverges on the curved q-c_dB ridge there; bayesoof/inference/nuisances.py)")


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
