"""Record of one Zernike order of the quick fit (:class:`OrderResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesoof.inference.params import ParameterSpace

__all__ = ["OrderResult"]


@dataclass
class OrderResult:
    """Least-squares solution of one Zernike order.

    ``space`` holds the fitted values of every parameter (fixed ones included) and which
    are free; ``cov`` the Laplace covariance of the free ones (``space.free_names``).
    ``chi2`` is Σ r² of the standardised residuals ``residuals``; ``dof`` = samples - free
    parameters.  ``n_iter`` counts Jacobian evaluations (solver iterations), ``n_eval``
    residual evaluations, over all starts.  ``init`` is the start of the best start;
    ``power`` the normalised power P of the forward model at the solution.
    ``cold_start`` says whether the last order was fitted a second time from the configured
    start (``fit.cold_start_above``): "" not tried, "won" (this is that solution) or "lost".
    ``jacobian_error`` is ∂r/∂a, the residuals' Jacobian along the aperture model error at
    this solution, when that error is marginalised (:mod:`bayesoof.inference.model_error`).
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
    cold_start: str = ""
    jacobian_error: np.ndarray | None = None

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
