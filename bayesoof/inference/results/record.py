"""The quick fit's result record (:class:`FitResult`): what :func:`bayesoof.fit` returns.

Inside: plain floats (K waves, c_dB dB, x0/y0 m, amp/offset data units, pointing rad);
the per-order records are :class:`~bayesoof.inference.results.order.OrderResult`.  The
Quantity view and text report live in :mod:`.view`, the ``summary.json`` content in
:mod:`.summary`, the ``result.nc`` groups in :mod:`.inference_data` and the run directory
in :mod:`.rundir`; the methods here delegate to them.
"""

from __future__ import annotations

import datetime as _dt
from functools import cached_property
from pathlib import Path

import numpy as np
from astropy import units as u

from bayesoof.inference.params import ParameterSpace
from bayesoof.inference.results import view
from bayesoof.inference.results.inference_data import inference_groups
from bayesoof.inference.results.order import OrderResult
from bayesoof.inference.results.rundir import save_run
from bayesoof.inference.results.summary import fit_summary
from bayesoof.io.summary import Summary
from bayesoof.products.maps import PhaseMap, phase_map
from bayesoof.products.rms import aperture_statistics

__all__ = ["FitResult"]


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
        #: the last order at the best fit (a = 0) when the aperture model error was
        #: marginalised into ``orders[-1]`` (model_error.py), and the record of that step
        self.exact_model_last: OrderResult | None = None
        self.model_error: dict | None = None
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
        """Model beam a_i (1 + g_i t) P_i + b_i + c_i t at every sample, data units (at the MAP).

        With the pyoof residual: the min-max normalised P of each map (what that residual
        compares with the min-max normalised data).
        """
        P = self.power
        if self.config["fit"]["residual"] == "pyoof":
            parts = [(P[sl] - P[sl].min()) / (P[sl].max() - P[sl].min())
                     for sl in self.forward.map_slices]
            return np.concatenate(parts)
        from bayesoof.inference.likelihood import beam_from_power

        p = self.params
        return beam_from_power(self.forward, P, p["amp"], p["offset"], p.get("gain_drift"),
                               p.get("baseline_drift"))

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
        return view.coefficient_table(self)

    @property
    def illumination(self) -> dict:
        """Illumination coefficients as Quantities (c_dB in dB, x0/y0 in m)."""
        return view.illumination_quantities(self)

    # ---------------------------------------------------------------- reports and files
    def summary(self) -> Summary:
        """Summary in the schema of :mod:`bayesoof.io.summary` (written by :meth:`save`)."""
        return fit_summary(self)

    def describe(self) -> str:
        """Human-readable report of the last order."""
        return view.describe(self)

    def __repr__(self) -> str:
        return (f"<FitResult order {self.order}, chi2 {self.chi2:.6g}, "
                f"{self.status}>")

    def to_inference_data(self, n_phase: int = 101):
        """Return the MAP as ArviZ InferenceData (:mod:`.inference_data`).

        Groups: map_estimate, laplace, observed_data, constant_data.
        """
        import arviz as az

        groups = inference_groups(self, n_phase)
        return az.InferenceData(**{k: g.to_xarray() for k, g in groups.items()})

    def save(self, out="out", stem: str | None = None, n_phase: int = 101) -> Path:
        """Write a new run directory ``out/<stem>-NNN`` and return its path.

        ``stem`` defaults to the data file's stem ('bayesoof' for in-memory data).
        Contents: see :mod:`bayesoof.inference.results.rundir`.  Nothing is overwritten.
        """
        return save_run(self, out, stem, n_phase)
