"""The :class:`PosteriorResult` of :func:`bayesoof.sample`: draws, diagnostics, products.

Products push the posterior draws through the product maths of :mod:`bayesoof.products`
(the same as the quick fit's):

* phase-error map (rad) and surface-error map (µm): posterior mean, sd and the
  equal-tailed 94% interval per pixel on the one display grid
  (:func:`bayesoof.products.maps.phase_map_stats`);
* posterior draws of the rms phase error, surface rms and Ruze efficiency
  (:func:`bayesoof.products.rms.rms_draws`: illumination-weighted with each draw's
  illumination, and plain by name);
* posterior predictive beam maps (a thinned set of draws, noise added) and the
  standardised residuals of the posterior-mean model, per map.

Piston and the tilts K(1, ±1) are left out of the maps and rms (they are pointing, not
surface), as in pyoof's phase maps.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayesoof.inference.diagnostics import chain_modes, diagnose
from bayesoof.inference.likelihood import standardized_residuals
from bayesoof.io import (
    add_posterior,
    clean,
    write_fits,
    write_inference_data,
    write_netcdf,
    write_summary,
)
from bayesoof.physics import zernike
from bayesoof.products.maps import phase_map_stats
from bayesoof.products.rms import rms_draws

__all__ = ["PosteriorResult", "PosteriorWarning", "assemble"]

HDI_PROB = 0.94


class PosteriorWarning(UserWarning):
    """A posterior result failed a diagnostic (R-hat, ESS, divergences, modes, interruption)."""


def _describe(x: np.ndarray) -> dict:
    import arviz as az

    x = np.asarray(x, float)
    if x.size == 0:
        return {}
    lo, hi = az.hdi(x, hdi_prob=HDI_PROB)
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if x.size > 1 else 0.0,
            "hdi_3%": float(lo), "hdi_97%": float(hi)}


# ====================================================================== result
@dataclass
class PosteriorResult:
    """Posterior of the aperture phase from :func:`bayesoof.sample`.

    Attributes
    ----------
    idata : arviz.InferenceData or None
        ``posterior`` (K with dims ``zernike`` carrying n and l; illumination; ``amp``,
        ``offset`` with dims ``map`` carrying d_z; ...), ``sample_stats``,
        ``observed_data``, ``constant_data`` (telescope, settings, σ, sample positions)
        and, when computed, ``posterior_predictive``.
    model : pm.Model
        The model sampled (``model.bayesoof`` holds its
        :class:`~bayesoof.inference.model.ModelInfo`).
    fit : FitResult or None
        The quick fit the chains started from.
    sampler : str
    settings : dict
    diagnostics : dict
        :func:`bayesoof.inference.diagnostics.diagnose` of the primary mode's chains.
    modes : dict
        :func:`bayesoof.inference.diagnostics.chain_modes`.
    laplace : LaplaceResult
        Posterior mode and covariance used to whiten.
    timing : dict
        Seconds (``total``, ``laplace``, ``sampling`` ...) and gradient counts.
    interrupted : bool
        Sampling stopped early (Ctrl-C); the draws kept are those made before.
    products : dict
        Phase / surface maps, rms draws, residuals (see :meth:`compute_products`).
    adjustment : dict or None
        When the quick fit switched its misfit covariance on: K's draws carried onto it
        (:mod:`bayesoof.inference.misfit_adjust`; noise-only draws in ``K_noise_only``).
    held_marginal : dict or None
        When the model held parameters the fit frees (``ModelInfo.held``): the draws
        carried over them and their draws added (:mod:`bayesoof.inference.held_marginal`).
    """

    idata: Any
    model: Any
    fit: Any = None
    sampler: str = ""
    settings: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    modes: dict = field(default_factory=dict)
    laplace: Any = None
    timing: dict = field(default_factory=dict)
    interrupted: bool = False
    products: dict = field(default_factory=dict)
    density: Any = None
    z_draws: Any = None
    #: the open-faced sandwich adjustment of K under misfit (misfit_adjust.py), or None
    adjustment: dict | None = None
    #: the draws carried over the parameters the model held (held_marginal.py), or None
    held_marginal: dict | None = None

    # ---------------------------------------------------------------- basics
    @classmethod
    def empty(cls, model, fit=None, interrupted: bool = False) -> PosteriorResult:
        """Return a result without draws (e.g. interrupted in warm-up); the MAP is in ``fit``."""
        return cls(idata=None, model=model, fit=fit, interrupted=interrupted,
                   diagnostics={"converged": False, "problems": ["no draws"]})

    @property
    def info(self):
        """The :class:`~bayesoof.inference.model.ModelInfo` of the model."""
        return self.model.bayesoof

    @property
    def converged(self) -> bool:
        """R-hat, ESS, divergences, tree depth and E-BFMI all fine, one mode, not interrupted."""
        return bool(self.diagnostics.get("converged")) and not self.modes.get("multimodal") \
            and not self.interrupted

    @property
    def problems(self) -> list[str]:
        """Plain-language reasons why the result is not converged (empty when it is)."""
        out = list(self.diagnostics.get("problems", []))
        if self.modes.get("multimodal"):
            out.append(_modes_sentence(self.modes))
        if self.interrupted:
            out.append("sampling was interrupted: fewer draws than requested")
        return out

    @property
    def primary_chains(self) -> list[int]:
        """Chains of the mode the products use."""
        if self.idata is None:
            return []
        return list(self.modes.get("primary", range(self.idata.posterior.sizes["chain"])))

    def primary_posterior(self):
        """Return the ``posterior`` group restricted to the primary mode's chains."""
        return self.idata.posterior.isel(chain=self.primary_chains)

    def _stack(self, name: str) -> np.ndarray:
        da = self.primary_posterior()[name]
        return da.values.reshape((-1,) + da.shape[2:])

    def K_draws(self) -> np.ndarray:
        """All J Zernike coefficients (waves) of every primary draw, shape (S, J)."""
        free = self._stack("K") if "K" in self.primary_posterior() else None
        S = self.primary_posterior().sizes["chain"] * self.primary_posterior().sizes["draw"]
        if free is None:
            return np.tile(self.info.start["K"], (S, 1))
        return self.info.full_K(free)

    def illumination_draws(self) -> dict:
        """Illumination coefficients per primary draw (fixed ones broadcast), arrays (S,)."""
        from bayesoof.physics.illumination import illumination_params

        post = self.primary_posterior()
        S = post.sizes["chain"] * post.sizes["draw"]
        out = {}
        for n in illumination_params(self.info.forward.illumination):
            out[n] = self._stack(n) if n in post else np.full(S, float(self.info.start[n]))
        return out

    def table(self, var_names=None):
        """ArviZ summary (mean, sd, 94% HDI, MCSE, ESS, R-hat) of the primary mode.

        By default every variable but ``K_noise_only`` (the draws before the misfit
        adjustment, :attr:`adjustment`).
        """
        import arviz as az

        post = self.primary_posterior()
        var_names = var_names or [v for v in post.data_vars
                                  if not v.startswith("__") and v != "K_noise_only"]
        # full precision (ArviZ rounds to 2-3 decimals by default: K in waves would lose it)
        return az.summary(post[var_names], hdi_prob=HDI_PROB, round_to="none")

    # ---------------------------------------------------------------- products
    def compute_products(self, n_map: int = 101, n_predictive: int = 100, seed: int = 0,
                         predictive: bool = True) -> dict:
        """Phase / surface maps, rms posteriors, posterior predictive and residuals.

        ``n_map`` pixels across the display grid; ``n_predictive`` thinned draws for the
        posterior predictive maps (0 to skip).  Stores and returns ``self.products``.
        """
        info = self.info
        fm = info.forward
        K = self.K_draws()
        prod = phase_map_stats(K, fm.telescope.radius, n=n_map, wavelength=fm.wavelength)
        prod["rms"] = rms_draws(K, self.illumination_draws(), fm)
        prod["rms_summary"] = {k: _describe(v) for k, v in prod["rms"].items()}
        if predictive and n_predictive and self.density is not None:
            prod.update(self._predictive(n_predictive, seed))
        self.products = prod
        return prod

    def _predictive(self, n: int, seed: int) -> dict:
        """Posterior predictive beams and standardised residuals of the mean model."""
        import arviz as az

        info, dens = self.info, self.density
        fn = _predictive_fn(self.model, dens.mode)
        z = self.z_draws[self.primary_chains].reshape(-1, dens.dim)
        pick = np.unique(np.linspace(0, z.shape[0] - 1, min(n, z.shape[0])).astype(int))
        rng = np.random.default_rng(seed)
        mus, sigs = [], []
        for ui in dens.to_u(z[pick]):
            point = dens.unflatten(ui)
            mu, sig = fn(*(point[name] for name in dens.names))
            mus.append(np.asarray(mu, float))
            sigs.append(np.broadcast_to(np.asarray(sig, float), np.shape(mu)))
        mus, sigs = np.array(mus), np.array(sigs)
        if info.likelihood in ("normal", "misfit"):  # misfit: the white part only
            noise = rng.standard_normal(mus.shape)
        else:
            noise = rng.standard_t(info.nu, size=mus.shape)
        rep = mus + sigs * noise
        fm = info.forward
        mean_model = mus.mean(axis=0)
        sigma = sigs.mean(axis=0)
        resid = np.asarray(standardized_residuals(mean_model, fm.observed, sigma))
        per_map = {}
        for name, sl in zip(self.model.coords["map"], fm.map_slices, strict=True):
            r = resid[sl]
            per_map[str(name)] = {"rms": float(np.sqrt(np.mean(r**2))),
                                  "max_abs": float(np.max(np.abs(r))),
                                  "chi2_per_sample": float(np.mean(r**2))}
        adequacy = _posterior_adequacy(info, fm, resid, mus, sigs, dens.dim, seed,
                                       self.adjustment)
        ppc = az.from_dict(
            posterior_predictive={"beam": rep[None]},
            coords={"sample": np.arange(fm.observed.size)},
            dims={"beam": ["sample"]},
        )
        if "posterior_predictive" in self.idata.groups():
            del self.idata.posterior_predictive
        self.idata.extend(ppc)
        return {"model_mean": mean_model, "residuals": resid, "residuals_per_map": per_map,
                "predictive_draws": pick.size, "adequacy": adequacy}

    # ---------------------------------------------------------------- output
    def summary(self) -> dict:
        """JSON-ready summary: per-coefficient posterior table, diagnostics, products."""
        out: dict = {
            "sampler": self.sampler,
            "settings": clean(self.settings),
            "converged": self.converged,
            "problems": self.problems,
            "interrupted": self.interrupted,
            "diagnostics": clean(self.diagnostics),
            "modes": clean(self.modes),
            "timing": clean(self.timing),
        }
        if self.laplace is not None:
            out["laplace"] = {"converged": self.laplace.converged, "logp": self.laplace.logp,
                              "iterations": self.laplace.n_iter, "message": self.laplace.message}
        if self.idata is not None and self.idata.posterior.sizes["draw"] > 1:
            tab = self.table()
            out["parameters"] = {
                _label(str(idx)): {c: (None if not np.isfinite(v) else float(v))
                                   for c, v in row.items()}
                for idx, row in tab.iterrows()
            }
        if self.products.get("rms_summary"):
            units = {"phase": "rad", "surface": "um", "ruze": "fraction"}
            out["aperture"] = {
                k: {**v, "unit": units[k.split("_")[0]]}
                for k, v in self.products["rms_summary"].items()
            }
        if self.products.get("residuals_per_map"):
            out["standardized_residuals"] = self.products["residuals_per_map"]
        if self.products.get("adequacy") is not None:
            out["adequacy"] = self.products["adequacy"].to_dict()
        if self.adjustment is not None:
            out["misfit_adjustment"] = clean(self.adjustment)
        if self.held_marginal is not None:
            out["held_marginalised"] = clean(self.held_marginal)
        return out

    def save(self, run_dir) -> Path:
        """Write ``posterior.nc``, ``posterior_products.nc`` and update ``summary.json``.

        ``run_dir`` is the run directory of the quick fit (created when missing, with the
        quick fit's summary).  An existing ``posterior.nc`` is never overwritten
        (FileExistsError).  The summary gains a ``posterior`` section (the quick fit's
        sections are kept).
        """
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        target = run_dir / "posterior.nc"
        if target.exists():
            raise FileExistsError(f"{target} exists; a run directory is never overwritten")
        if not (run_dir / "summary.json").is_file():
            if self.fit is None:
                raise FileNotFoundError(f"{run_dir}: no summary.json of a quick fit to extend")
            write_summary(run_dir, self.fit.summary())
        if self.idata is not None:  # (the posterior predictive uncompressed: noise)
            write_inference_data(target, self.idata)
        if self.products:
            write_netcdf(run_dir / "posterior_products.nc", self._products_dataset())
            if "phase_mean" in self.products:
                write_fits(run_dir / "posterior_phase.fits", self.phase_hdus())
        add_posterior(run_dir, clean(self.summary()))
        return run_dir

    def phase_hdus(self):
        """Posterior phase and surface maps as FITS (the layout of the quick fit's phase.fits).

        Primary HDU PHASE_MEAN (rad), then PHASE_SD, PHASE_WIDTH (width of the equal-tailed
        94% interval per pixel), SURFACE_MEAN, SURFACE_SD, SURFACE_WIDTH (µm, on-axis);
        a linear WCS in aperture metres (CTYPE X / Y, CUNIT m), BUNIT per image.
        """
        from astropy.io import fits

        p, fm = self.products, self.info.forward
        x, y = np.asarray(p["x"], float), np.asarray(p["y"], float)

        def hdr(unit: str, what: str) -> fits.Header:
            h = fits.Header()
            for ax, vals in ((1, x), (2, y)):
                h[f"CTYPE{ax}"] = ("X" if ax == 1 else "Y", "aperture coordinate")
                h[f"CUNIT{ax}"] = "m"
                h[f"CRPIX{ax}"] = 1.0
                h[f"CRVAL{ax}"] = float(vals[0])
                h[f"CDELT{ax}"] = float(vals[1] - vals[0])
            h["BUNIT"] = unit
            h["CONTENT"] = what
            h["ORDER"] = fm.order
            h["WAVEL"] = (fm.wavelength, "m")
            h["TELESC"] = fm.telescope.name
            h["SAMPLER"] = self.sampler
            h["COMMENT"] = "posterior over the primary chains; piston and tilt removed; " \
                           "NaN outside the dish"
            return h

        hdus = []
        for kind, unit, label in (("phase", "rad", "phase error"),
                                  ("surface", "um", "surface error (on-axis)")):
            width = p[f"{kind}_hi"] - p[f"{kind}_lo"]
            for stat, img, what in (("MEAN", p[f"{kind}_mean"], "posterior mean"),
                                    ("SD", p[f"{kind}_sd"], "posterior sd"),
                                    ("WIDTH", width, "94% interval width")):
                h = hdr(unit, f"{label}, {what}")
                name = f"{kind.upper()}_{stat}"
                hdus.append(fits.PrimaryHDU(img, h) if not hdus
                            else fits.ImageHDU(img, h, name=name))
        hdus[0].header["EXTNAME"] = "PHASE_MEAN"
        return fits.HDUList(hdus)

    def _products_dataset(self):
        import xarray as xr

        p = self.products
        ds = xr.Dataset(coords={"x": ("x", p["x"]), "y": ("y", p["y"])})
        for k in ("phase", "surface"):
            for s in ("mean", "sd", "lo", "hi"):
                name = f"{k}_{s}"
                if name in p:
                    ds[name] = (("y", "x"), p[name])
                    ds[name].attrs["units"] = "rad" if k == "phase" else "um"
        for k, v in p.get("rms", {}).items():
            ds[k] = (("draw",), v)
        if "residuals" in p:
            ds["standardized_residual"] = (("sample",), p["residuals"])
            ds["model_mean"] = (("sample",), p["model_mean"])
        ds.attrs["interval"] = "phase_lo/phase_hi: 3% and 97% quantiles per pixel"
        ds.attrs["surface"] = "on-axis: surface = phase * wavelength / (4 pi)"
        return ds


def _predictive_fn(model, mode: str):
    """Compiled ``value variables -> (model beam, σ per sample)`` of the model (disk-cached).

    A function of PyMC's unconstrained values (``model.value_vars`` order), so that it
    holds no whitening: the same graph in every run of the same model and data, which
    :func:`~bayesoof.inference.compiled_cache.cached_function` keeps compiled on disk
    (compiling it took ~2-3 s CPU of every run; bench/RESULTS.md, session 5).
    """
    import pytensor
    from pymc.pytensorf import compile as compile_pymc

    from bayesoof.inference import compiled_cache

    info = model.bayesoof
    # plain inputs: PyMC's value variables carry their transforms in their tags (local
    # functions, which cannot be pickled)
    inputs = [v.type(name=v.name) for v in model.value_vars]
    outputs = pytensor.clone_replace(
        model.replace_rvs_by_values([info.mu, info.sigma_graph]),
        replace=dict(zip(model.value_vars, inputs, strict=True)),
    )
    return compiled_cache.cached_function(
        inputs, outputs,
        lambda: compile_pymc(inputs, outputs, mode=mode, on_unused_input="ignore"),
        salt=f"posterior predictive, pymc compile, mode {mode}",
    )


def _posterior_adequacy(info, fm, resid, mus, sigs, n_free: int, seed: int,
                        adjustment: dict | None = None):
    """Adequacy of the posterior-mean model, with the posterior predictive p of χ².

    The p-value replicates the Normal noise of the likelihood; with another likelihood
    it is left out (the residual tests still apply).  ``adjustment``: the misfit
    adjustment of K's draws, named in the verdict's remedy.
    """
    from bayesoof.inference.adequacy import assess, ppp_chi2

    ppp = ppp_chi2(fm.observed, mus, sigs, seed) if info.likelihood == "normal" else None
    names = [m.name or f"map{i}" for i, m in enumerate(fm.data.maps)]
    remedy = None
    if adjustment is not None:  # names the misfit likelihood too, when it is the model's
        from bayesoof.inference.misfit_adjust import sentence

        remedy = sentence(adjustment, info.fit)
    elif info.likelihood == "misfit":
        remedy = f"posterior under the quick fit's {info.fit.misfit_model.sentence()}"
    elif info.likelihood == "normal":
        remedy = ("posterior under the noise-only likelihood: its intervals are too narrow "
                  "for this misfit (the quick fit's misfit covariance is the honest one)")
    return assess(resid, fm.map_slices, [(m.u, m.v) for m in fm.data.maps], n_free, names,
                  ppp=ppp, remedy=remedy)


def k_adjustable(likelihood: str, fit) -> bool:
    """Whether the K draws are carried onto the quick fit's covariance (misfit_adjust.py).

    Under the noise-only likelihood ("normal") always (``adjust_posterior_K`` then does
    nothing when the fit has no misfit or model-error covariance); under the quick
    fit's misfit likelihood ("misfit") only when the fit also marginalised the aperture
    model error: the draws already have that likelihood's covariance, not the model
    error's widening nor its joint step.  A robust likelihood ("student_t") is the
    user's own remedy: its draws are left alone.
    """
    if likelihood == "normal":
        return True
    return likelihood == "misfit" and getattr(fit, "model_error", None) is not None


def carry_draws(posterior: dict, info, primary, settings: dict, var_names, seed: int = 0):
    """The draws carried over the held parameters and onto the fit's misfit covariance.

    Returns ``(posterior, as_sampled, held_marginal, adjustment)``: ``posterior`` with
    its entries replaced (a new dict; the one given is left as sampled), ``as_sampled``
    ``{name: draws}`` for every variable of ``var_names`` that was replaced (what the
    convergence verdict judges: the stop rule tested the chains as sampled, not the
    adjusted K, an affine map of them whose combinations it never saw — R-hat 1.0101
    on an adjusted K after a stop at 1.00x in bench/misspec_posterior.py — nor the held
    parameters' shift, independent per draw, which would flatter R-hat and ESS), and
    the held-marginalisation and misfit-adjustment records (None when not applied).
    """
    sampled = posterior
    posterior = dict(posterior)
    held_marginal = None
    if posterior and info.held and settings.get("marginalise_held", True):
        from bayesoof.inference.held_marginal import marginalise_held
        from bayesoof.inference.laplace import fit_record

        moved = marginalise_held(posterior, info.space, info.held,
                                 fit_record(info.fit, info.likelihood), seed=seed)
        if moved is not None:
            posterior, held_marginal = moved
        else:
            warnings.warn(f"the draws stay conditional on the held {sorted(info.held)}: "
                          "no quick-fit covariance describes them", PosteriorWarning,
                          stacklevel=4)
    adjustment = None
    if (posterior.get("K") is not None and settings.get("misfit_adjust", True)
            and k_adjustable(info.likelihood, info.fit)):
        from bayesoof.inference.misfit_adjust import adjust_posterior_K

        adjusted = adjust_posterior_K(posterior["K"], primary, info.fit, info.free_j)
        if adjusted is not None:
            posterior["K_noise_only"] = posterior["K"]
            posterior["K"], adjustment = adjusted
    as_sampled = {n: sampled[n] for n in var_names
                  if n in sampled and sampled[n] is not posterior.get(n)}
    return posterior, as_sampled, held_marginal, adjustment


def _label(name: str) -> str:
    """ArviZ row label to the quick fit's style: ``K[K(2,0)]`` -> ``K(2,0)``."""
    if name.startswith("K[K(") and name.endswith(")]"):
        return name[2:-1]
    return name


def _modes_sentence(modes: dict) -> str:
    parts = [f"chains {m['chains']}" + (f" (mean log density {m['mean_lp']:.1f})"
                                        if m.get("mean_lp") is not None else "")
             for m in modes.get("modes", [])]
    return (f"chains disagree: {len(parts)} modes — " + "; ".join(parts)
            + f"; summaries and products use chains {modes.get('primary')} only")


# ====================================================================== assembly
def _dims(model) -> dict:
    return {name: list(d) for name, d in model.named_vars_to_dims.items()}


def assemble(model, density, raw, lap, settings: dict, t0: float, products: bool = True,
             n_predictive: int = 100, seed: int = 0) -> PosteriorResult:
    """Turn whitened draws into a :class:`PosteriorResult` (InferenceData, diagnostics)."""
    import arviz as az

    info = model.bayesoof
    fm = info.forward
    chains, draws, d = raw.z.shape
    t_post = time.perf_counter()
    modes = chain_modes(raw.z, raw.stats.get("lp"))
    if draws:
        vals = density.constrained_fn()(raw.z.reshape(-1, d))
        posterior = {k: v.reshape((chains, draws) + v.shape[1:]) for k, v in vals.items()}
    else:
        posterior = {}
    var_names = [v.name for v in model.free_RVs]
    posterior, as_sampled, held_marginal, adjustment = carry_draws(
        posterior, info, modes["primary"], settings, var_names, seed)
    coords = {k: list(v) for k, v in model.coords.items() if k != "sample"}
    dims = {k: v for k, v in _dims(model).items() if k in posterior}
    if "K_noise_only" in posterior:
        dims["K_noise_only"] = dims["K"]
    consts = {
        "u": np.concatenate([m.u for m in fm.data.maps]),
        "v": np.concatenate([m.v for m in fm.data.maps]),
        "map_index": fm.map_index,
        "d_z": info.coords["d_z"],
        "K_start": np.asarray(info.start["K"], float),
    }
    cdims = {"u": ["sample"], "v": ["sample"], "map_index": ["sample"],
             "d_z": ["map"], "K_start": ["zernike_all"]}
    if info.sigma is not None:
        # known per-sample noise; with per-map noise 'sigma' is a posterior variable
        # (dims 'map') and must not be given the constant's dim 'sample'
        consts["sigma"] = info.sigma
        cdims["sigma"] = ["sample"]
    coords_all = dict(coords)
    coords_all["sample"] = np.arange(fm.observed.size)
    coords_all["zernike_all"] = zernike.coeff_names(fm.order)
    stats = {k: v for k, v in raw.stats.items()} if draws else None
    with warnings.catch_warnings():
        # emcee: walkers are chains, often more than the draws; ArviZ's shape guess is moot
        warnings.filterwarnings("ignore", message=r"More chains \(\d+\) than draws")
        idata = az.from_dict(
            posterior=posterior or None,
            sample_stats=stats,
            observed_data={"beam": fm.observed},
            constant_data=consts,
            coords=coords_all,
            dims={**dims, "beam": ["sample"], **cdims},
        ) if draws else None
    if idata is not None:
        aux = {"n": ("zernike", info.coords["n"]), "l": ("zernike", info.coords["l"]),
               "d_z": ("map", info.coords["d_z"])}
        idata.posterior = idata.posterior.assign_coords(
            {k: v for k, v in aux.items() if v[0] in idata.posterior.dims}
        )
        attrs = {
            "telescope": fm.telescope.name,
            "telescope_radius_m": fm.telescope.radius,
            "wavelength_m": fm.wavelength,
            "illumination": fm.illumination,
            "order": fm.order,
            "tilt": info.tilt,
            "noise": info.noise,
            "likelihood": info.likelihood,
            "forward": fm.describe(),
            "settings": json.dumps(clean(settings)),
            "priors": json.dumps(clean(info.priors)),
            "fixed": json.dumps(clean({k: v for k, v in info.start.items()
                                        if k in ("c_dB", "q", "x0", "y0")
                                        and k not in info.free_illum
                                        and k not in posterior})),
            "held": json.dumps(clean(getattr(info, "held", {}))),  # free in the fit, not here
        }
        idata.constant_data.attrs.update(attrs)
        idata.posterior.attrs.update({"sampler": settings.get("sampler", ""),
                                      "whitening": "u = u_MAP + chol(D cov_fit D^T) z"})
        if adjustment is not None:  # K carried onto the quick fit's misfit covariance
            idata.posterior.attrs["misfit_adjustment"] = json.dumps(clean(adjustment))
        if held_marginal is not None:  # the draws carried over the held parameters
            idata.posterior.attrs["held_marginalised"] = json.dumps(clean(held_marginal))
    if idata is not None:
        from bayesoof.inference.samplers import get_sampler

        depth_cap = raw.info.get("max_tree_depth") or settings.get("max_tree_depth") or 10
        # judged on the chains as sampled (why: carry_draws)
        diag = diagnose(idata, var_names=var_names, chains=modes["primary"],
                        max_treedepth=int(depth_cap), replace=as_sampled)

        if get_sampler(settings.get("sampler", "pymc")).ensemble:
            diag["note"] = (f"{settings['sampler']}: R-hat and ESS treat walkers as chains "
                            "(they are not independent); no divergence / tree depth / E-BFMI")
    else:
        diag = {"converged": False, "problems": ["no draws"]}
    timing = {
        "laplace": lap.wall_time if lap is not None else None,
        "sampler_wall": raw.wall_time,
        "sampling": raw.sampling_time,
        "n_grad": raw.n_grad,
        "n_grad_sampling": raw.n_grad_sampling,
        **{k: v for k, v in raw.info.items() if _scalar(v)},
    }
    result = PosteriorResult(
        idata=idata, model=model, fit=info.fit, sampler=settings.get("sampler", ""),
        settings=settings, diagnostics=diag, modes=modes, laplace=lap, timing=timing,
        interrupted=raw.interrupted, density=density, z_draws=raw.z, adjustment=adjustment,
        held_marginal=held_marginal,
    )
    if products and draws:
        try:
            result.compute_products(n_predictive=n_predictive, seed=seed)
        except KeyboardInterrupt:
            warnings.warn("products interrupted; draws kept", PosteriorWarning, stacklevel=2)
    timing["products"] = time.perf_counter() - t_post
    timing["total"] = time.perf_counter() - t0
    if not result.converged:
        warnings.warn(
            "posterior NOT converged: " + "; ".join(result.problems), PosteriorWarning,
            stacklevel=3,
        )
    return result


def _scalar(v) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None
