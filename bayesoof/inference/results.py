"""Quick-fit results: per-order records, the :class:`FitResult` and its run directory.

Inside: plain floats (K waves, c_dB dB, x0/y0 m, amp/offset data units, pointing rad).
At the edge (``coefficients``, ``phase_rms``, ...) astropy Quantity; the unit ``wave``
(one wave of phase = 2π rad) is defined here so that ``K.to(u.rad)`` works.

Run directory (:meth:`FitResult.save`): ``<out>/<stem>-NNN`` with NNN the first free
number; never overwritten.  Every file is written to a temporary file in the same
directory and renamed into place (``os.replace``).

* ``summary.json``: schema_version, telescope, wavelength, d_z per map, order, every
  coefficient (name, n, l, value, sd, unit), illumination coefficients with units, χ²,
  rms phase (rad) and surface (µm), Ruze efficiency, convergence, wall time.
* ``result.nc``: ArviZ InferenceData.  A MAP is not a posterior sample, so there is no
  ``posterior`` group: ``map_estimate`` holds the point estimate and its Laplace sd (dims
  ``zernike`` with coords n, l; ``map`` with coord d_z; the phase map on ``y``, ``x``; the
  model and residuals on ``sample``), ``laplace`` the free-parameter vector ``theta`` and
  its covariance and correlation (dims ``param``, ``param_``), ``observed_data`` and
  ``constant_data`` the beam maps, u, v and σ.
* pyoof-style per order: ``fitpar_n{N}.csv`` (parname, parfit, parsd, parinit, unit,
  free), ``cov_n{N}.csv`` and ``corr_n{N}.csv`` (as pyoof: a header line, then a first row
  with the indices of the free parameters in the full vector, then the matrix),
  ``phase_n{N}.csv`` (phase error in rad on the map grid, NaN outside the dish).
* ``phase.fits``: phase error (rad), its sd, surface error and its sd (µm) of the last
  order, with the grid in the header (CRVAL/CDELT in m).
"""

from __future__ import annotations

import datetime as _dt
import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from astropy import units as u

from bayesoof._version import __version__
from bayesoof.inference.params import ParameterSpace
from bayesoof.io import (
    new_run_dir,
    run_stem,
    write_csv,
    write_fits,
    write_netcdf_groups,
    write_summary,
    write_text,
)
from bayesoof.io.summary import SCHEMA_VERSION, Summary
from bayesoof.physics import zernike
from bayesoof.products.maps import PhaseMap, phase_map
from bayesoof.products.rms import aperture_statistics

__all__ = ["WAVE", "FitResult", "OrderResult"]

#: one wave of phase (2π rad): the unit of the Zernike coefficients K
WAVE = u.def_unit("wave", 2 * np.pi * u.rad, doc="one wave of phase, 2 pi rad")
_ASTROPY_UNITS = {"wave": WAVE, "dB": u.dB, "": u.dimensionless_unscaled, "m": u.m, "rad": u.rad,
                  "data": u.dimensionless_unscaled}


# ------------------------------------------------------------------ one order
@dataclass
class OrderResult:
    """Least-squares solution of one Zernike order.

    ``space`` holds the fitted values of every parameter (fixed ones included) and which
    are free; ``cov`` the Laplace covariance of the free ones (``space.free_names``).
    ``chi2`` is Σ r² of the standardised residuals ``residuals``; ``dof`` = samples - free
    parameters.  ``n_iter`` counts Jacobian evaluations (solver iterations), ``n_eval``
    residual evaluations, over all starts.  ``init`` is the start of the best start;
    ``power`` the normalised power P of the forward model at the solution.
    """

    order: int
    space: ParameterSpace
    cov: np.ndarray
    chi2: float
    dof: int
    residuals: np.ndarray
    jacobian: np.ndarray
    converged: bool
    status: int
    message: str
    n_eval: int
    n_jac: int
    n_iter: int
    wall_time: float
    start_costs: list = field(default_factory=list)
    at_bound: list = field(default_factory=list)
    rcond: float = 1.0
    covariance_scaled: bool = False
    init: np.ndarray | None = None
    power: np.ndarray | None = None

    @property
    def reduced_chi2(self) -> float:
        """χ² / dof."""
        return self.chi2 / self.dof

    @property
    def sd(self) -> np.ndarray:
        """Laplace standard deviations of the free parameters."""
        return np.sqrt(np.maximum(np.diag(self.cov), 0.0))

    @property
    def corr(self) -> np.ndarray:
        """Correlation matrix of the free parameters."""
        sd = self.sd
        with np.errstate(invalid="ignore", divide="ignore"):
            c = self.cov / np.outer(sd, sd)
        return np.where(np.outer(sd, sd) > 0, c, 0.0)

    def full_sd(self) -> np.ndarray:
        """Return the sd of every entry of the full vector (0 for fixed entries)."""
        out = np.zeros(self.space.n_full)
        out[self.space.free] = self.sd
        return out

    def full_cov(self) -> np.ndarray:
        """Covariance embedded in the full vector (zeros for fixed entries)."""
        n = self.space.n_full
        out = np.zeros((n, n))
        idx = self.space.free_index
        out[np.ix_(idx, idx)] = self.cov
        return out

    def K_cov(self) -> np.ndarray:
        """Covariance of K (J, J), waves², zeros for fixed terms."""
        J = len(self.space.nl)
        return self.full_cov()[:J, :J]


# ------------------------------------------------------------------ the result
class FitResult:
    """Result of :func:`bayesoof.fit` (the contract of DESIGN.md, "Quick fit result").

    Attributes
    ----------
    forward : ForwardModel
        Forward model of the last order.
    sigma : ndarray (n_samples,)
        Per-sample σ used (data units); ``sigma_origin`` says per map 'file', 'estimated'
        or 'given'.
    order : int
        Last order fitted.
    params : dict
        MAP values: "K" (J,) waves, "c_dB" dB, "q", "x0", "y0" m (those of the illumination
        model), "amp" (n_maps,), "offset" (n_maps,) data units, "pointing" (n_maps, 2) rad
        or None.
    free_names : list of str
        Labels of the free parameters (order of ``theta``).
    theta : ndarray (n_free,)
        Free parameters at the MAP, in the units above.
    cov : ndarray (n_free, n_free)
        Laplace covariance of ``theta``.
    lower, upper : ndarray (n_free,)
        Bounds of ``theta`` used by the fit.
    chi2, dof, reduced_chi2, converged, wall_time
        Of the last order (wall_time: the whole call, compile included; see ``orders``).
    orders : list of OrderResult
        Every order fitted, in turn.
    """

    def __init__(self, data, telescope, forward, sigma, sigma_origin, config, orders,
                 wall_time, compile_time=0.0):
        self.data = data
        self.telescope = telescope
        self.forward = forward
        self.sigma = sigma
        self.sigma_origin = sigma_origin
        self.config = config
        self.orders = orders
        self.wall_time = wall_time
        self.compile_time = compile_time
        #: the likelihood behind the covariance (set by fit: noise only, or a misfit model)
        self.uncertainty: dict | None = None
        #: the noise-only record of the last order when a misfit likelihood replaced it
        self.plain_last: OrderResult | None = None
        #: that misfit likelihood (likelihood.py), shared with the PyMC model
        self.misfit_model = None
        self.created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")

    # ---------------------------------------------------------------- contract
    @property
    def last(self) -> OrderResult:
        """The last order's record."""
        return self.orders[-1]

    @property
    def space(self) -> ParameterSpace:
        """Parameter layout and values of the last order."""
        return self.last.space

    @property
    def order(self) -> int:
        """Last Zernike order fitted."""
        return self.last.order

    @property
    def params(self) -> dict:
        """All parameter values at the MAP (DESIGN form)."""
        return self.space.params_dict()

    @property
    def free_names(self) -> list[str]:
        """Labels of the free parameters."""
        return self.space.free_names

    @property
    def theta(self) -> np.ndarray:
        """Free parameters at the MAP."""
        return self.space.theta

    @property
    def cov(self) -> np.ndarray:
        """Laplace covariance of ``theta``."""
        return self.last.cov

    @property
    def corr(self) -> np.ndarray:
        """Correlation matrix of ``theta``."""
        return self.last.corr

    @property
    def sd(self) -> np.ndarray:
        """Laplace sd of ``theta``."""
        return self.last.sd

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of ``theta``."""
        return self.space.bounds()[0]

    @property
    def upper(self) -> np.ndarray:
        """Upper bounds of ``theta``."""
        return self.space.bounds()[1]

    def unpack(self, theta) -> dict:
        """Tensor ``theta`` (n_free,) -> keyword arguments of ``likelihood.predict``.

        ``{"K": (J,), "illum": {...}, "amp": (n_maps,), "offset": (n_maps,),
        "pointing": (n_maps, 2) or None}``; fixed entries are constants at their MAP values.
        """
        return self.space.unpack(theta)

    @property
    def chi2(self) -> float:
        """Σ r² of the standardised residuals (last order)."""
        return self.last.chi2

    @property
    def dof(self) -> int:
        """Samples minus free parameters."""
        return self.last.dof

    @property
    def reduced_chi2(self) -> float:
        """χ² / dof (last order)."""
        return self.last.reduced_chi2

    @property
    def converged(self) -> bool:
        """Whether the last order's solver met a tolerance."""
        return self.last.converged

    @cached_property
    def adequacy(self):
        """Model-adequacy verdict of the last order (:mod:`bayesoof.inference.adequacy`).

        From the residuals standardised by the noise σ; with the pyoof residual (not
        noise-weighted) only the residual-structure test applies.
        """
        from bayesoof.inference.adequacy import assess

        th = {"chi2_excess": np.inf} if self.config["fit"]["residual"] == "pyoof" else None
        unc = getattr(self, "uncertainty", None) or {}
        return assess(self.residuals, self.forward.map_slices,
                      [(m.u, m.v) for m in self.data.maps], int(self.space.free.sum()),
                      [m.name or f"map{i}" for i, m in enumerate(self.data.maps)],
                      thresholds=th, remedy=unc.get("remedy"))

    @property
    def status(self) -> str:
        """Convergence and adequacy in one phrase ('converged', 'converged, MISFIT', ...)."""
        return self.adequacy.status(self.converged)

    # ---------------------------------------------------------------- model at the samples
    @property
    def residuals(self) -> np.ndarray:
        """Standardised residuals (data - model)/σ at every sample (map order)."""
        return self.last.residuals

    @property
    def model_beam(self) -> np.ndarray:
        """Model beam a_i P_i + b_i at every sample, data units (forward model at the MAP).

        With the pyoof residual: the min-max normalised P of each map (what that residual
        compares with the min-max normalised data).
        """
        P = self.power
        if self.config["fit"]["residual"] == "pyoof":
            parts = [(P[sl] - P[sl].min()) / (P[sl].max() - P[sl].min())
                     for sl in self.forward.map_slices]
            return np.concatenate(parts)
        p = self.params
        idx = self.forward.map_index
        return p["amp"][idx] * P + p["offset"][idx]

    @property
    def power(self) -> np.ndarray:
        """Normalised power P_i at every sample (the forward model at the MAP, no a_i, b_i)."""
        return self.last.power

    def split_maps(self, values) -> list[np.ndarray]:
        """Split a per-sample vector into one array per map."""
        return [np.asarray(values)[sl] for sl in self.forward.map_slices]

    # ---------------------------------------------------------------- products
    @property
    def K(self) -> np.ndarray:
        """Zernike coefficients, waves."""
        return self.params["K"]

    @property
    def K_sd(self) -> np.ndarray:
        """Laplace sd of K, waves (0 for fixed terms)."""
        return self.last.full_sd()[: len(self.space.nl)]

    def phase_map(self, n: int = 101) -> PhaseMap:
        """Phase-error map (rad) with sd on an n × n grid over the dish (see products)."""
        return phase_map(self.K, self.last.K_cov(), self.telescope.radius,
                         self.data.wavelength, n)

    @cached_property
    def statistics(self) -> dict:
        """Rms phase (rad), surface rms (µm), Ruze efficiency, plain and weighted, with sd."""
        p = self.params
        illum = {k: p[k] for k in self.space.illum_names}
        free_K = self.space.free[: len(self.space.nl)]
        return aperture_statistics(self.K, self.last.K_cov(), self.forward, illum, free_K)

    @property
    def phase_rms(self) -> u.Quantity:
        """Plain rms phase error over the disc (piston, tilt removed)."""
        return self.statistics["phase_rms"] * u.rad

    @property
    def phase_rms_weighted(self) -> u.Quantity:
        """Illumination-weighted rms phase error."""
        return self.statistics["phase_rms_weighted"] * u.rad

    @property
    def surface_rms(self) -> u.Quantity:
        """Plain rms surface error (on-axis approximation)."""
        return self.statistics["surface_rms"] * u.um

    @property
    def ruze_efficiency(self) -> float:
        """exp(-σ_φ²) with the illumination-weighted rms phase."""
        return self.statistics["ruze_weighted"]

    @property
    def coefficients(self):
        """Zernike coefficients as an astropy QTable (value and sd in waves and µm surface)."""
        from astropy.table import QTable

        nl = self.space.nl
        free = self.space.free[: len(nl)]
        lam = self.data.wavelength
        return QTable(
            {
                "name": zernike.coeff_names(self.order),
                "n": [n for n, _ in nl],
                "l": [l for _, l in nl],  # noqa: E741
                "value": self.K * WAVE,
                "sd": self.K_sd * WAVE,
                "surface": zernike.waves_to_surface_um(self.K, lam) * u.um,
                "surface_sd": zernike.waves_to_surface_um(self.K_sd, lam) * u.um,
                "free": free,
            }
        )

    @property
    def illumination(self) -> dict:
        """Illumination coefficients as Quantities (c_dB in dB, x0/y0 in m)."""
        p = self.params
        return {
            k: p[k] * _ASTROPY_UNITS[self.space.units[self.space.illum_index[k]]]
            for k in self.space.illum_names
        }

    # ---------------------------------------------------------------- summary
    def _entries(self, names_slice) -> list[dict]:
        sp = self.space
        sd = self.last.full_sd()
        idx = range(sp.n_full)[names_slice] if isinstance(names_slice, slice) else names_slice
        return [
            {"name": sp.names[i], "value": float(sp.values[i]), "sd": float(sd[i]),
             "unit": sp.units[i], "free": bool(sp.free[i])}
            for i in idx
        ]

    def summary(self) -> Summary:
        """Summary in the schema of :mod:`bayesoof.io.summary` (written by :meth:`save`)."""
        sp = self.space
        st = self.statistics
        coeffs = self._entries(sp.k_slice)
        for entry, (n, l) in zip(coeffs, sp.nl, strict=True):  # noqa: E741
            entry.update({"n": n, "l": l})
        maps = []
        amps = self._entries(sp.amp_slice)
        offs = self._entries(sp.offset_slice)
        for i, m in enumerate(self.data.maps):
            sl = self.forward.map_slices[i]
            maps.append({
                "name": m.name, "d_z_m": m.d_z, "n_samples": m.size,
                "sigma": float(np.median(self.sigma[sl])), "sigma_origin": self.sigma_origin[i],
                "amp": amps[i], "offset": offs[i],
                "chi2": float(np.sum(self.residuals[sl] ** 2)),
            })
        out = Summary(**{
            "schema_version": SCHEMA_VERSION,
            "bayesoof_version": __version__,
            "created": self.created,
            "source": self.data.source,
            "object": str(self.data.meta.get("OBJECT", "")),
            "telescope": self.telescope.to_dict(),
            "wavelength_m": self.data.wavelength,
            "frequency_hz": self.data.frequency,
            "d_z_m": [m.d_z for m in self.data.maps],
            "maps": maps,
            "order": self.order,
            "orders_fitted": [o.order for o in self.orders],
            "illumination_model": self.forward.illumination,
            "residual": self.config["fit"]["residual"],
            "forward": self.forward.describe(),
            "coefficients": coeffs,
            "illumination": self._entries([sp.illum_index[k] for k in sp.illum_names]),
            "pointing": self._entries(sp.pointing_slice) if sp.pointing_slice else None,
            "chi2": self.chi2,
            "dof": self.dof,
            "reduced_chi2": self.reduced_chi2,
            "covariance": (
                "Laplace (J^T J)^-1 of the standardised residuals"
                + (", times reduced chi2" if self.last.covariance_scaled else
                   f" under the {self.uncertainty['model']} misfit likelihood"
                   if (self.uncertainty or {}).get("switched_on") else
                   ", sigma taken as known (not rescaled)")
            ),
            "uncertainty": self.uncertainty,
            "noise_only_sd": (None if self.plain_last is None else
                              dict(zip(self.plain_last.space.free_names,
                                       self.plain_last.sd.tolist(), strict=True))),
            "phase_rms_rad": {"plain": st["phase_rms"], "plain_sd": st["phase_rms_sd"],
                              "weighted": st["phase_rms_weighted"],
                              "weighted_sd": st["phase_rms_weighted_sd"]},
            "surface_rms_um": {"plain": st["surface_rms"], "plain_sd": st["surface_rms_sd"],
                               "weighted": st["surface_rms_weighted"],
                               "weighted_sd": st["surface_rms_weighted_sd"],
                               "approximation": "on-axis: surface = phase * wavelength / (4 pi)"},
            "ruze_efficiency": {"weighted": st["ruze_weighted"],
                                "weighted_sd": st["ruze_weighted_sd"],
                                "plain": st["ruze"], "plain_sd": st["ruze_sd"]},
            "converged": self.converged,
            "status": self.status,
            "adequacy": self.adequacy.to_dict(),
            "at_bound": list(self.last.at_bound),
            "per_order": [
                {"order": o.order, "chi2": o.chi2, "reduced_chi2": o.reduced_chi2,
                 "converged": o.converged, "message": o.message, "iterations": o.n_iter,
                 "evaluations": o.n_eval, "wall_time_s": o.wall_time,
                 "n_free": int(o.space.free.sum()), "start_chi2": o.start_costs}
                for o in self.orders
            ],
            "wall_time_s": self.wall_time,
            "compile_time_s": self.compile_time,
            "config": {k: v for k, v in self.config.items()},
        })
        selection = getattr(self, "order_selection", None)  # set by campaign.order.fit_auto
        if selection is not None:
            out["selected_order"] = selection.selected_order
            out["order_selection"] = selection.to_dict()
        return out

    def describe(self) -> str:
        """Human-readable report of the last order."""
        st = self.statistics
        lines = [
            f"bayesoof quick fit of {self.data.source} ({self.telescope.name}, "
            f"{self.data.wavelength * 1e3:.4g} mm), orders {self.orders[0].order}..{self.order}",
            f"  {self.forward.describe()}",
        ]
        for o in self.orders:
            lines.append(
                f"  order {o.order}: chi2 {o.chi2:.6g} (reduced {o.reduced_chi2:.4f}), "
                f"{o.n_iter} iterations, {o.wall_time:.2f} s"
                + ("" if o.converged else f" NOT CONVERGED ({o.message})")
            )
        lines.append("  coefficient        value [waves]        sd")
        sd = self.last.full_sd()
        for j, name in enumerate(self.space.names):
            tag = "" if self.space.free[j] else "  (fixed)"
            lines.append(f"  {name:<14s} {self.space.values[j]:+14.6g} {sd[j]:12.3g}"
                         f" {self.space.units[j]}{tag}")
        lines.append(
            f"  rms phase {st['phase_rms']:.4f} ± {st['phase_rms_sd']:.4f} rad (plain), "
            f"{st['phase_rms_weighted']:.4f} rad (weighted); surface "
            f"{st['surface_rms']:.1f} µm; Ruze {st['ruze_weighted']:.4f}"
        )
        lines.append(f"  {self.adequacy.line()}")
        lines.append(f"  wall time {self.wall_time:.2f} s (compile {self.compile_time:.2f} s)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<FitResult order {self.order}, chi2 {self.chi2:.6g}, "
                f"{self.status}>")

    # ---------------------------------------------------------------- inference data
    def to_inference_data(self, n_phase: int = 101):
        """Return the MAP as ArviZ InferenceData (see the module docstring).

        Groups: map_estimate, laplace, observed_data, constant_data.
        """
        import arviz as az

        return az.InferenceData(**self._inference_groups(n_phase))

    def _inference_groups(self, n_phase: int) -> dict:
        """The groups of :meth:`to_inference_data` as xarray Datasets (no ArviZ import)."""
        import xarray as xr

        sp = self.space
        J = len(sp.nl)
        sd = self.last.full_sd()
        p = self.params
        maps = [m.name or f"map{i}" for i, m in enumerate(self.data.maps)]
        pm = self.phase_map(n_phase)
        st = self.statistics
        coords = {
            "zernike": zernike.coeff_names(self.order),
            "n": ("zernike", [n for n, _ in sp.nl]),
            "l": ("zernike", [l for _, l in sp.nl]),  # noqa: E741
            "map": maps,
            "d_z": ("map", self.data.d_z),
            "x": pm.x,
            "y": pm.y,
            "sample": np.arange(self.forward.observed.size),
        }
        data_vars = {
            "K": ("zernike", p["K"], {"units": "wave"}),
            "K_sd": ("zernike", sd[:J], {"units": "wave"}),
            "K_free": ("zernike", sp.free[:J]),
            "amp": ("map", p["amp"], {"units": "data per normalised power"}),
            "amp_sd": ("map", sd[sp.amp_slice]),
            "offset": ("map", p["offset"], {"units": "data"}),
            "offset_sd": ("map", sd[sp.offset_slice]),
            "phase": (("y", "x"), pm.phase, {"units": "rad"}),
            "phase_sd": (("y", "x"), pm.phase_sd, {"units": "rad"}),
            "surface": (("y", "x"), pm.surface, {"units": "um"}),
            "surface_sd": (("y", "x"), pm.surface_sd, {"units": "um"}),
            "model_beam": ("sample", self.model_beam, {"units": "data"}),
            "residual": ("sample", self.residuals, {"units": "sigma"}),
        }
        for k in sp.illum_names:
            i = sp.illum_index[k]
            data_vars[k] = ((), sp.values[i], {"units": sp.units[i]})
            data_vars[f"{k}_sd"] = ((), sd[i], {"units": sp.units[i]})
        if sp.with_pointing:
            coords["axis"] = ["u", "v"]
            data_vars["pointing"] = (("map", "axis"), p["pointing"], {"units": "rad"})
        for k, v in st.items():
            data_vars[k] = ((), v)
        attrs = {
            "estimate": "maximum a posteriori with flat priors (least squares); not a sample",
            "order": self.order, "chi2": self.chi2, "dof": self.dof,
            "converged": int(self.converged), "adequacy": self.adequacy.verdict,
            "wall_time_s": self.wall_time,
            "residual": self.config["fit"]["residual"], "bayesoof_version": __version__,
            "wavelength_m": self.data.wavelength, "telescope": self.telescope.name,
        }
        est = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        names = sp.free_names
        lap = xr.Dataset(
            {"theta": ("param", self.theta), "sd": ("param", self.sd),
             "cov": (("param", "param_"), self.cov), "corr": (("param", "param_"), self.corr),
             "lower": ("param", self.lower), "upper": ("param", self.upper)},
            coords={"param": names, "param_": names,
                    "unit": ("param", [sp.units[i] for i in sp.free_index])},
            attrs={"covariance_scaled_by_reduced_chi2": int(self.last.covariance_scaled)},
        )
        fm = self.forward
        sample_coords = {"sample": coords["sample"], "map_index": ("sample", fm.map_index)}
        obs = xr.Dataset({"beam": ("sample", fm.observed)}, coords=sample_coords)
        const = xr.Dataset(
            {"u": ("sample", np.concatenate([m.u for m in self.data.maps]), {"units": "rad"}),
             "v": ("sample", np.concatenate([m.v for m in self.data.maps]), {"units": "rad"}),
             "sigma": ("sample", self.sigma, {"units": "data"}),
             "d_z_of_map": ("map", self.data.d_z, {"units": "m"})},
            coords=sample_coords | {"map": maps},
        )
        return {"map_estimate": est, "laplace": lap, "observed_data": obs,
                "constant_data": const}

    # ---------------------------------------------------------------- files
    def _order_files(self, run: Path, o: OrderResult, n_phase: int) -> None:
        sp = o.space
        sd = o.full_sd()
        init = o.init if o.init is not None else sp.values
        rows = [["parname", "parfit", "parsd", "parinit", "unit", "free"]]
        rows += [[name, repr(float(sp.values[i])), repr(float(sd[i])), repr(float(init[i])),
                  sp.units[i], int(sp.free[i])] for i, name in enumerate(sp.names)]
        write_csv(run / f"fitpar_n{o.order}.csv", rows)
        idx = sp.free_index.astype(float)
        for name, mat, title in (("cov", o.cov, "Cov"), ("corr", o.corr, "Corr")):
            buf = io.StringIO()
            np.savetxt(buf, np.vstack([idx, mat]),
                       header=f"{title} matrix (first row included elements: indices in "
                              f"fitpar_n{o.order}.csv)")
            write_text(run / f"{name}_n{o.order}.csv", buf.getvalue())
        pm = phase_map(sp.values[: len(sp.nl)], o.K_cov(), self.telescope.radius,
                       self.data.wavelength, n_phase)
        buf = io.StringIO()
        np.savetxt(buf, pm.phase)
        write_text(run / f"phase_n{o.order}.csv", buf.getvalue())

    def _phase_fits(self, path: Path, n_phase: int) -> None:
        from astropy.io import fits

        pm = self.phase_map(n_phase)
        step = float(pm.x[1] - pm.x[0])

        def hdr(unit: str, what: str) -> fits.Header:
            h = fits.Header()
            for ax, vals in ((1, pm.x), (2, pm.y)):
                h[f"CTYPE{ax}"] = ("X" if ax == 1 else "Y", "aperture coordinate")
                h[f"CUNIT{ax}"] = "m"
                h[f"CRPIX{ax}"] = 1.0
                h[f"CRVAL{ax}"] = float(vals[0])
                h[f"CDELT{ax}"] = step
            h["BUNIT"] = unit
            h["CONTENT"] = what
            h["ORDER"] = self.order
            h["WAVEL"] = (self.data.wavelength, "m")
            h["TELESC"] = self.telescope.name
            h["COMMENT"] = "piston and tilt removed; NaN outside the dish"
            return h

        hdul = fits.HDUList([
            fits.PrimaryHDU(pm.phase, hdr("rad", "phase error")),
            fits.ImageHDU(pm.phase_sd, hdr("rad", "phase error sd (Laplace)"), name="PHASE_SD"),
            fits.ImageHDU(pm.surface, hdr("um", "surface error (on-axis)"), name="SURFACE"),
            fits.ImageHDU(pm.surface_sd, hdr("um", "surface error sd"), name="SURFACE_SD"),
        ])
        write_fits(path, hdul)

    def save(self, out="out", stem: str | None = None, n_phase: int = 101) -> Path:
        """Write a new run directory ``out/<stem>-NNN`` and return its path.

        ``stem`` defaults to the data file's stem ('bayesoof' for in-memory data).
        Contents: see the module docstring.  Nothing existing is overwritten.
        """
        run = new_run_dir(out, stem or run_stem(self.data.source))
        write_summary(run, self.summary())
        write_netcdf_groups(run / "result.nc", self._inference_groups(n_phase))
        for o in self.orders:
            self._order_files(run, o, n_phase)
        self._phase_fits(run / "phase.fits", n_phase)
        return run

