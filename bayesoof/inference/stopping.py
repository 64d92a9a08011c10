"""Early stops of the last order's solves when the fit is poor (``fit.cold_start_above``).

Both are callbacks of :func:`scipy.optimize.least_squares` (``callback(intermediate_result)``,
scipy ≥ 1.16), called once per iteration; raising StopIteration stops the solve (status -2; scipy
ignores a returned value).

* :class:`PoorFitStop` -- the order-by-order continuation at the last order: once an
  iteration gains < 1 % of χ² while the reduced χ² is still above the threshold, the
  solve stops and the cold start is tried before any polishing.  A continuation in a wrong
  basin crawls: measured on bench/misspec_study.py datasets 10 and 18 (seed 2026, 41 × 41)
  it ran 150-200 evaluations at < 0.1 % gain each (40-50 CPU s) before the cold start
  replaced it; a fit near the noise never meets the condition and runs as before.
* :class:`SameBasinStop` -- the cold start (from the configured values): it stops once its
  iterate lies in the continuation's basin, where the Gauss-Newton model of χ² about the
  continuation's point, ``|r_c + J_c (θ - θ_c)|²``, predicts the iterate's χ² excess over
  the continuation's to within 0.7 of that excess.  Such a start can only end at the continuation's
  solution (or one indistinguishable from it), so solving on is waste.
"""

from __future__ import annotations

import numpy as np

POOR_FIT_GAIN = 0.01  # PoorFitStop: an iteration gaining < 1 % of chi2 ...

# SameBasinStop: the iterate's chi2 excess over the continuation's at most this multiple of
# the continuation's chi2, and the quadratic model's error at most SAME_BASIN_MISMATCH of
# the excess.  Measured with bench/cold_start_basin.py (its defaults): in the same basin
# (pyoof's example) the model's error was 0.28-0.51 of the excess at every iterate with
# 0 < excess <= 1 x chi2 (0.40 at 1.25 x chi2, 0.89-0.97 at 3-15 x chi2); in another basin
# (baseline and all-effects datasets 10 and 18, 41 x 41) it was 16-350 times the excess at
# every iterate with 0 < excess <= 1 x chi2 (0.98 at 1.26 x chi2), and later iterates were
# already below the continuation.  0.7 lies between 0.51 and 0.98, 1.0 below 1.26.
SAME_BASIN_EXCESS = 1.0
SAME_BASIN_MISMATCH = 0.7


class PoorFitStop:
    """Stop when an iteration gains < ``POOR_FIT_GAIN`` of χ² and χ²/dof > ``threshold``."""

    REASON = "slow progress at a poor fit: the configured start is tried first"

    def __init__(self, threshold: float, dof: int):
        self.threshold, self.dof = float(threshold), max(int(dof), 1)
        self.previous = None  # chi2 after the previous iteration
        self.fired = False

    def __call__(self, intermediate_result) -> None:
        """Raise StopIteration after a poor, slow iteration."""
        chi2 = 2.0 * float(intermediate_result.cost)
        gain = None if self.previous is None else self.previous - chi2
        self.previous = chi2
        if gain is None or gain < 0.0:
            return
        self.fired = gain < POOR_FIT_GAIN * (chi2 + gain) and chi2 / self.dof > self.threshold
        if self.fired:
            raise StopIteration


class SameBasinStop:
    """Stop when the iterate lies in the basin of the point ``theta`` (free entries).

    ``residuals`` (n_samples,) and ``jacobian`` (n_samples, n_free) are those at
    ``theta``; ``chi2`` their sum of squares.
    """

    REASON = "it entered the continuation's basin"

    def __init__(self, theta, residuals, jacobian, chi2: float):
        self.theta = np.asarray(theta, float)
        self.r = np.asarray(residuals, float)
        self.jac = np.asarray(jacobian, float)
        self.chi2 = float(chi2)
        self.fired = False

    def measure(self, intermediate_result):
        """Return ``(excess, error)`` of the iterate, or None for another free set.

        excess: its χ² minus the continuation's; error: that of the Gauss-Newton
        prediction of its χ² about the continuation's point.
        """
        x = np.asarray(intermediate_result.x, float)
        if x.shape != self.theta.shape:  # another free set: no common basin to compare
            return None
        actual = 2.0 * float(intermediate_result.cost)
        predicted = float(np.sum((self.r + self.jac @ (x - self.theta)) ** 2))
        return actual - self.chi2, abs(actual - predicted)

    def __call__(self, intermediate_result) -> None:
        """Raise StopIteration once the iterate is in the basin of ``theta``."""
        m = self.measure(intermediate_result)
        if m is None:
            return
        excess, error = m
        if not 0.0 < excess <= SAME_BASIN_EXCESS * self.chi2:
            return  # already lower (it will win), or still far from either solution
        self.fired = error <= SAME_BASIN_MISMATCH * excess
        if self.fired:
            raise StopIteration
