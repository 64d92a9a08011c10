"""Residuals and Jacobian carried into the next solve (``fit._Seed``).

A start whose full parameter vector is a previous solution's (the next order's start, the
polish after the cold start) already has its residuals and most of its Jacobian: the
next order computes only the newly free columns, the polish none.  The seeded values
must be what a fresh pass gives, and the fit must end where it ends without seeds.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from bayesoof.inference import fit as fit_module
from bayesoof.inference.fit import Objective, _continuation_seed, fit
from bayesoof.inference.params import ParameterSpace, load_fit_config
from bayesoof.physics.forward import ForwardModel
from bayesoof.physics.telescope import get_telescope
from bayesoof.testing import make_case

TEL = get_telescope("effelsberg")


@pytest.fixture(scope="module")
def problem():
    """Order-2 objective on 15 × 15 maps; its space at order 1 with non-trivial values."""
    case = make_case(order=2, n_grid=15, extent=6.0, snr=300.0, seed=2)
    cfg = load_fit_config({"fit": {"order": 2}, "illumination": {"q": {"free": True}}})
    beam = case.maps.wavelength / (2 * TEL.radius)
    space = ParameterSpace.from_config(cfg, 3, beam, radius=TEL.radius)
    fm = ForwardModel(case.maps, TEL, 2)
    obj = Objective(fm, space, "likelihood")
    low = space.at_order(1)
    low.values[:3] = case.K[:3]
    low.values[low.amp_slice] = [0.9, 1.1, 1.0]
    obs, sig = np.ascontiguousarray(fm.observed), np.ascontiguousarray(fm.sigma)
    return obj, low, obs, sig


def _solution(obj, space, obs, sig):
    """A stand-in for an order's result at ``space``: its r and J from one pass."""
    r, jac = obj.jacobian(space.values, space.free_index, obs, sig)
    return types.SimpleNamespace(space=space, residuals=r, jacobian=jac)


def test_continuation_seed_is_a_fresh_pass(problem):
    """r bit for bit (the same value graph); every column to 1e-12 of its norm (the same
    tangent arithmetic in batches of another size: only rounding may differ)."""
    obj, low, obs, sig = problem
    prev = _solution(obj, low, obs, sig)
    nxt = low.copy()
    nxt.free[: 6] = True  # K of order 2 freed where the previous order held them at 0
    nxt.free[0] = False  # (piston stays fixed)
    seed = _continuation_seed(prev, nxt, obj, obs, sig)
    r, jac = obj.jacobian(nxt.values, nxt.free_index, obs, sig)
    assert seed is not None and seed.passes == 1
    np.testing.assert_array_equal(seed.residuals, r)
    assert seed.jacobian.shape == jac.shape
    err = np.max(np.abs(seed.jacobian - jac), axis=0) / np.max(np.abs(jac), axis=0)
    assert np.max(err) < 1e-12


def test_no_seed_where_the_start_is_elsewhere(problem):
    obj, low, obs, sig = problem
    prev = _solution(obj, low, obs, sig)
    moved = low.copy()
    moved.values[4] = 0.01  # a new coefficient that does not start where it was held
    assert _continuation_seed(prev, moved, obj, obs, sig) is None
    same = _continuation_seed(prev, low.copy(), obj, obs, sig)  # nothing newly free
    assert same is not None and same.passes == 0
    np.testing.assert_array_equal(same.jacobian, prev.jacobian)


def test_seeded_fit_ends_where_the_unseeded_one_does(monkeypatch):
    """Orders 1-3 with the cold start forced (``cold_start_above`` 0.5 on data drawn from
    the model: the converged continuation counts as poor, stops, loses to nothing better
    and is polished from a seed).  The seeds only skip passes: every solve sees the same
    numbers up to rounding, so θ agrees to 1e-6 of its sd (measured: <= 1.3e-12); the
    seeded run computes exactly the carried columns fewer (counted per pass)."""
    case = make_case(order=3, n_grid=21, extent=6.0, snr=300.0, seed=8)
    config = {"fit": {"cold_start_above": 0.5, "order": 3}}
    directions = []
    real = Objective.jacobian

    def counted(self, full, free_index, observed, sigma):
        directions.append(len(free_index))
        return real(self, full, free_index, observed, sigma)

    monkeypatch.setattr(Objective, "jacobian", counted)
    seeded = fit(case.maps, TEL, config=config)
    n_seeded = sum(directions)
    directions.clear()
    monkeypatch.setattr(fit_module, "_continuation_seed", lambda *a: None)
    monkeypatch.setattr(fit_module._Seed, "at_solution", classmethod(lambda cls, res: None))
    plain = fit(case.maps, TEL, config=config)
    n_plain = sum(directions)

    for a, b in zip(seeded.orders, plain.orders, strict=True):
        sd = np.sqrt(np.diag(b.cov))
        free = b.space.free_index
        assert np.max(np.abs(a.space.values[free] - b.space.values[free]) / sd) < 1e-6
    last = plain.exact_model_last or plain.last
    assert last.cold_start, "the cold start must run for the polish to be seeded"
    # carried: each later order's columns free at the previous one, and the polish's all
    carried = sum(int(np.isin(o.space.free_index, p.space.free_index).sum())
                  for p, o in zip(plain.orders[:-1], plain.orders[1:], strict=True))
    # (here the cold start loses to the stopped continuation, which is then polished)
    assert last.cold_start == "lost" and last.start_costs[0] < last.start_costs[1]
    carried += last.space.free_index.size
    assert n_plain - n_seeded == carried
