"""The leg coverage's pixel selection (physics/leg_coverage.py) against the NumPy coverage.

LegCoverage integrates, per evaluation, only the ``n_edge`` pixels nearest a leg edge (by
the distance at the pixel centre) and the few near a junction of legs; every other pixel is
set wholly open or wholly blocked.  That is exact only if no other pixel has a sub-pixel
within h/2 of an edge: these tests compare the in-graph coverage with the independent NumPy
sub-pixel coverage (``ApertureGrid.coverage``) on every pixel, over the whole bounds,
including the corners where the edges are longest, for a shaded (Effelsberg) and an
unshaded (SRT, legs at 45°) preset.  1e-12: the same sub-pixel sums in another order
(measured ≤ 4e-15); a pixel left out of the selection is off by ≥ 1/64 (one sub-pixel).
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesoof.physics.aperture import ApertureGrid
from bayesoof.physics.leg_coverage import LegCoverage
from bayesoof.physics.telescope import get_telescope

CASES = {
    "effelsberg": {"leg_half_width": (0.5, 1.5), "shade_half_angle": (10.0, 30.0)},
    "sardinia": {"leg_half_width": (0.125, 0.375)},
}


def _compiled(lc):
    x = pt.dvector("x")
    values = {k: x[i] for i, k in enumerate(lc.bounds)}
    return pytensor.function([x], lc(values), mode="FAST_COMPILE")


def _points(bounds, rng, n_random):
    lo = np.array([b[0] for b in bounds.values()])
    hi = np.array([b[1] for b in bounds.values()])
    corners = [lo, hi, np.where(np.arange(lo.size) == 0, lo, hi),
               np.where(np.arange(lo.size) == 0, hi, lo)]
    return corners + [rng.uniform(lo, hi) for _ in range(n_random)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_selected_pixels_give_the_numpy_coverage(name):
    tel = get_telescope(name)
    grid = ApertureGrid.across(tel.radius, 96)
    lc = LegCoverage(grid, tel, CASES[name])
    # the selection is active: far fewer pixels integrated than could change
    assert lc.n_edge < 0.8 * lc._single.size, (lc.n_edge, lc._single.size)
    f = _compiled(lc)
    rng = np.random.default_rng(4)
    for v in _points(lc.bounds, rng, 6):
        ref = grid.coverage(lc._with(dict(zip(lc.bounds, v, strict=True))))
        np.testing.assert_allclose(f(v), ref, rtol=0, atol=1e-12, err_msg=f"{name} at {v}")


def test_a_too_small_selection_is_caught():
    """The comparison above fails when the selection misses edge pixels (n_edge halved)."""
    tel = get_telescope("effelsberg")
    grid = ApertureGrid.across(tel.radius, 96)
    lc = LegCoverage(grid, tel, CASES["effelsberg"])
    lc.n_edge //= 2
    v = np.array([1.5, 30.0])  # the longest edges
    ref = grid.coverage(lc._with(dict(zip(lc.bounds, v, strict=True))))
    assert np.abs(_compiled(lc)(v) - ref).max() > 1.0 / 64
