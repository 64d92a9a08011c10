"""Early stops of the last order's solves (bayesoof.inference.stopping), on a problem whose
basins are known: a 1-D frequency fit, y = cos(ω x) for x in [0, 10], has its global
minimum at the true ω = 3 and local minima beside it (scanned: ω = 2.206 and 3.764, with
χ² ~350 times the global one)."""

from __future__ import annotations

import types

import numpy as np
import pytest
from scipy.optimize import least_squares

from bayesoof.inference.stopping import PoorFitStop, SameBasinStop

X = np.linspace(0.0, 10.0, 400)
TRUE_W = 3.0
SIGMA = 0.05
Y = np.cos(TRUE_W * X) + np.random.default_rng(0).normal(0.0, SIGMA, X.size)


def _r(theta):
    return (np.cos(theta[0] * X) - Y) / SIGMA


def _jac(theta):
    return (-X * np.sin(theta[0] * X) / SIGMA)[:, None]


def _solve(x0, callback=None):
    return least_squares(_r, [x0], jac=_jac, method="trf", bounds=([0.5], [6.0]),
                         callback=callback, ftol=1e-12, xtol=1e-12, gtol=1e-12)


def _it(cost):
    return types.SimpleNamespace(cost=cost)


def test_poor_fit_stop_fires_on_a_slow_iteration_of_a_poor_fit_only():
    dof = 1000
    stop = PoorFitStop(1.5, dof)
    stop(_it(5000.0))  # chi2 10 000 (reduced 10)
    stop(_it(4000.0))  # gain 20 % of chi2: go on
    with pytest.raises(StopIteration):
        stop(_it(3990.0))  # gain 0.25 % at reduced chi2 7.98: stop
    assert stop.fired
    # the same slow iteration at reduced chi2 1.2 (under the threshold): go on
    near = PoorFitStop(1.5, dof)
    near(_it(605.0))
    near(_it(600.0))  # gain 0.8 %
    assert not near.fired


def test_poor_fit_stop_needs_two_iterations():
    stop = PoorFitStop(1.5, 10)
    stop(_it(1e6))  # the first call has no gain to judge
    assert not stop.fired


def _continuation_at(x0):
    res = _solve(x0)
    return res, SameBasinStop(res.x, res.fun, res.jac, 2.0 * res.cost)


def test_same_basin_stop_fires_on_a_start_that_descends_into_that_basin():
    cont, stop = _continuation_at(2.97)  # the global minimum
    assert abs(cont.x[0] - TRUE_W) < 1e-3
    res = _solve(2.9, stop)  # a start on the same slope
    assert stop.fired and res.status == -2
    # stopped where the excess over the continuation is at most its chi2 (the rule) but
    # not yet at the minimum: the solve was cut short
    assert 0.0 < 2.0 * res.cost - 2.0 * cont.cost <= 2.0 * cont.cost
    assert res.nfev < _solve(2.9).nfev


def test_same_basin_stop_lets_a_start_into_another_basin_finish():
    cont, stop = _continuation_at(3.8)  # the local minimum at 3.764
    assert abs(cont.x[0] - 3.764) < 0.01
    res = _solve(3.2, stop)  # this start reaches the global minimum
    assert not stop.fired and res.status > 0
    assert 2.0 * res.cost < 2.0 * cont.cost  # and it is the lower one: it would win
    assert abs(res.x[0] - TRUE_W) < 1e-3


def test_same_basin_stop_ignores_another_free_set():
    _, stop = _continuation_at(2.97)
    stop(types.SimpleNamespace(x=np.zeros(2), cost=1e9))  # another shape: no comparison
    assert not stop.fired
