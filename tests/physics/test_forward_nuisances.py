"""Nuisance inputs of the forward graph: effective d_z per map and the free leg geometry.

Each against the independent NumPy reference (``bayesoof.testing``: the telescope's NumPy
OPD at the effective d_z; the NumPy anti-aliased coverage of a telescope with the other leg
dimensions) and with ``verify_grad``.  Tolerances as in ``test_forward.py``: EXACT =
1e-10 of the beam peak for two evaluations of the same discrete sum (measured ~1e-15).
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesoof import testing as T
from bayesoof.physics.aperture import ApertureGrid
from bayesoof.physics.forward import ForwardModel

EXACT = 1e-10
FREE = {"leg_half_width": (0.5, 1.5), "shade_half_angle": (10.0, 25.0)}
ILL_NAMES = ("c_dB", "q", "x0", "y0")


def _compile(fm, grad=False):
    """f(K, illum, pointing, d_z, blockage dict) -> power (and the gradient of S = w·P)."""
    K, p, dz = pt.dvector("K"), pt.dmatrix("p"), pt.dvector("dz")
    ill = {n: pt.dscalar(n) for n in ILL_NAMES}
    blk = {n: pt.dscalar(n) for n in FREE}
    power = fm.power(K, ill, p, dz, blk)
    outs = [power]
    if grad:
        w = np.random.default_rng(5).normal(size=fm.observed.size)
        outs += pytensor.grad(pt.sum(w * power), [dz, *blk.values()])
    f = pytensor.function([K, *ill.values(), p, dz, *blk.values()], outs)

    def call(c, dz_v, blk_v):
        return f(c.K, *(c.illumination[n] for n in ILL_NAMES), c.pointing, dz_v,
                 *(blk_v[n] for n in FREE))

    return call


@pytest.fixture(scope="module")
def effelsberg():
    c = T.make_case("effelsberg", n_grid=11, extent=4.0, values=False)
    fm = ForwardModel(c.maps, c.telescope, c.order, method="direct", free_blockage=FREE,
                      d_z_extent=0.03)
    return c, fm, _compile(fm)


def test_defaults_reproduce_the_constant_graph(effelsberg):
    """The commanded d_z and the preset's legs as tensors give today's constant graph."""
    c, fm, f = effelsberg
    nominal = {"leg_half_width": 1.0, "shade_half_angle": 20.0}
    P = f(c, c.maps.d_z, nominal)
    P0 = T.compile_power(fm)(c.K, c.illumination, c.pointing)
    peak = T.reference_peak(fm, c.K, c.illumination, c.pointing)
    T.assert_close_maps(P, P0, c.maps, EXACT, scale=peak, what="nominal nuisances")


@pytest.mark.parametrize(
    "dz, blk",
    [
        ((-0.0205, 0.0013, 0.0241), {"leg_half_width": 1.0, "shade_half_angle": 20.0}),
        ((-0.022, 0.0, 0.022), {"leg_half_width": 0.63, "shade_half_angle": 13.7}),
        ((-0.024, -0.002, 0.019), {"leg_half_width": 1.41, "shade_half_angle": 24.0}),
    ],
)
def test_nuisances_match_reference(effelsberg, dz, blk):
    c, fm, f = effelsberg
    P = f(c, np.array(dz), blk)
    ref = T.reference_power(fm, c.K, c.illumination, c.pointing, d_z=dz, blockage=blk)
    peak = T.reference_peak(fm, c.K, c.illumination, c.pointing)
    T.assert_close_maps(P, ref, c.maps, EXACT, scale=peak, what=f"d_z {dz}, legs {blk}")
    # and the change is far above EXACT: the comparison can fail (measured >= 1e-3)
    nominal = T.reference_power(fm, c.K, c.illumination, c.pointing)
    assert T.worst_residual(P, nominal, c.maps, scale=peak).relative > 1e-4


def test_leg_coverage_equals_numpy_coverage_everywhere(effelsberg):
    """In-graph coverage = the NumPy coverage of the telescope with those legs, on every
    pixel (also those held fixed: the monotonicity the pixel selection relies on)."""
    _, fm, _ = effelsberg
    a, al = pt.dscalar(), pt.dscalar()
    cov = pytensor.function([a, al], fm.coverage({"leg_half_width": a, "shade_half_angle": al}))
    rng = np.random.default_rng(2)
    for _ in range(4):
        v = {"leg_half_width": rng.uniform(*FREE["leg_half_width"]),
             "shade_half_angle": rng.uniform(*FREE["shade_half_angle"])}
        ref = T.reference_coverage(fm, v)
        # 1e-12: the same sub-pixel sums in another order (measured < 1e-15)
        np.testing.assert_allclose(cov(*v.values()), ref, rtol=0, atol=1e-12)
    # inputs outside the bounds are clipped to them
    np.testing.assert_allclose(cov(3.0, 40.0), T.reference_coverage(
        fm, {"leg_half_width": 1.5, "shade_half_angle": 25.0}), rtol=0, atol=1e-12)
    assert 0 < fm.leg_coverage.n_pixels < fm.sampling.n**2


def test_leg_coverage_slopes_match_numpy_differences(effelsberg):
    """The coverage's analytic first derivatives (LegCoverage writes them out instead of
    letting PyTensor differentiate the sub-pixel graph) = central differences of the
    independent NumPy coverage, on every pixel, through PyTensor's forward mode (what the
    fit's Jacobian uses) and reverse mode (the gradient NUTS uses).

    The coverage is piecewise linear in the dimensions with a kink wherever a sub-pixel's
    ramp starts or ends; eps = 1e-6 (m, deg) straddles a kink on ~1 of the ~3500 pixels in
    the graph (each pixel has ~100 kinks per unit over the bounds).  So: all but at most 3
    pixels agree to 1e-6 (the difference quotient's rounding error is ~1e-10 / 1e-6), and
    a missing or wrong chain-rule term (e.g. the shade slope's dependence on the width, or
    the 1/norm factor) changes hundreds of pixels by > 1e-3.
    """
    _, fm, _ = effelsberg
    x, d = pt.dvector("x"), pt.dvector("d")
    cov = fm.coverage({"leg_half_width": x[0], "shade_half_angle": x[1]}).ravel()
    jvp = pytensor.function([x, d], pytensor.gradient.Rop(cov, x, d,
                                                          use_op_rop_implementation=False))
    w = pt.dvector("w")
    grad_rev = pytensor.function([x, w], pytensor.grad(pt.dot(w, cov), x))
    rng = np.random.default_rng(11)
    eps = 1e-6
    for _ in range(2):
        v = np.array([rng.uniform(*FREE["leg_half_width"]),
                      rng.uniform(*FREE["shade_half_angle"])])
        jac = np.stack([jvp(v, e) for e in np.eye(2)], axis=1)  # (n², 2), forward mode
        for k, name in enumerate(FREE):
            up, dn = dict(zip(FREE, v, strict=True)), dict(zip(FREE, v, strict=True))
            up[name] += eps
            dn[name] -= eps
            fd = ((T.reference_coverage(fm, up) - T.reference_coverage(fm, dn)) / (2 * eps)).ravel()
            off = np.abs(jac[:, k] - fd) > 1e-6
            assert off.sum() <= 3, (name, v, off.sum())
            assert np.abs(fd).max() > 0.1  # the dimension does move the coverage
        weights = rng.normal(size=fm.sampling.n**2)
        np.testing.assert_allclose(grad_rev(v, weights), weights @ jac, rtol=1e-12, atol=1e-9)


def test_sardinia_residual_path_matches_physics_md():
    """The preset's polynomial = PHYSICS.md's formula (coeff[k] = Σ_i R[k,i] d_z^(3-i),
    δ = Σ_k coeff[k] r^(8-k)), and its documented size at d_z = +27 mm."""
    from bayesoof.physics.telescope import get_telescope

    R = np.array([
        [-1.438998e-09, -2.706440e-10, -7.098885e-14],
        [1.467218e-07, 2.888850e-08, 7.767377e-12],
        [-5.904197e-06, -1.234467e-06, -3.330234e-10],
        [1.188731e-04, 2.717683e-05, 7.038221e-09],
        [-1.239164e-03, -3.357801e-04, -7.544711e-08],
        [6.017033e-03, 2.461091e-03, 3.776198e-07],
        [-1.323805e-02, -9.312688e-03, -7.093549e-07],
        [5.676379e-03, 8.636208e-04, 2.160941e-07],
    ])
    tel = get_telescope("sardinia")
    r = np.linspace(0.0, tel.radius, 2001)
    for dz in (-0.027, 0.01153, 0.027):
        coeff = R @ np.array([dz**3, dz**2, dz])
        ref = sum(coeff[k] * r ** (8 - k) for k in range(8))
        # 1e-15 m: two summation orders of ~1e-3 m terms
        np.testing.assert_allclose(tel.optics.residual.path(r, dz), ref, rtol=0, atol=1e-15)
        on_axis = dz * tel.optics.on_axis_profile(r)
        np.testing.assert_allclose(tel.opd(r, 0 * r, dz), on_axis + ref, rtol=0, atol=1e-15)
    res = tel.optics.residual.path(r, 0.027) * 1e3
    # PHYSICS.md: "adds -0.05 to +0.51 mm" (measured -0.063, +0.521 on this r grid)
    assert -0.07 < res.min() < -0.04 and 0.50 < res.max() < 0.53


def test_sardinia_effective_dz_matches_reference():
    """The residual path (powers 1..3 of d_z) at an effective d_z vs the NumPy OPD."""
    c = T.make_case("sardinia", n_grid=9, extent=3.0, wavelength=0.0115,
                    d_z=(-0.0115, 0.0, 0.0115), values=False)
    fm = ForwardModel(c.maps, c.telescope, c.order, method="direct")
    assert sorted(fm.defocus_terms) == [1, 2, 3]
    K, p, dz = pt.dvector(), pt.dmatrix(), pt.dvector()
    ill = {n: pt.dscalar(n) for n in ILL_NAMES}
    f = pytensor.function([K, *ill.values(), p, dz], fm.power(K, ill, p, dz))
    dz_eff = np.array([-0.0109, 0.0021, 0.0127])
    P = f(c.K, *(c.illumination[n] for n in ILL_NAMES), c.pointing, dz_eff)
    ref = T.reference_power(fm, c.K, c.illumination, c.pointing, d_z=dz_eff)
    peak = T.reference_peak(fm, c.K, c.illumination, c.pointing)
    T.assert_close_maps(P, ref, c.maps, EXACT, scale=peak, what="sardinia effective d_z")


def test_verify_grad_nuisances():
    """d P / d(d_z [mm], leg half-width [m], shade angle [deg]) vs finite differences.

    Tiny case (24 pixels across). The coverage is piecewise linear in the leg dimensions
    (kinks where a sub-pixel edge ramp starts or ends); one kink changes the slope by one
    sub-pixel's share (< 1e-3 of it), far below rel_tol.  Inputs O(1-20), power over the
    peak O(1): eps 1e-7 gives ~1e-6 relative truncation error; rel_tol 1e-4 catches any
    missing chain-rule term (O(1)).
    """
    grid = ApertureGrid.across(50.0, 24)
    c = T.make_case("effelsberg", n_grid=5, extent=1.5, sampling=grid, values=False)
    fm = ForwardModel(c.maps, c.telescope, c.order, method="direct", sampling=grid,
                      free_blockage=FREE)
    ill = {k: np.asarray(v, float) for k, v in c.illumination.items()}

    def fun(dz_mm, a, alpha):
        blk = {"leg_half_width": a, "shade_half_angle": alpha}
        return fm.power(c.K, ill, c.pointing, dz_mm * 1e-3, blk) / 0.13

    # mode FAST_COMPILE: the gradient graph bayesoof builds is evaluated with PyTensor's
    # unfused reference ops instead of being rewritten into one-off fused C kernels; the
    # check (symbolic gradient vs finite differences) is the same, and a wrong chain-rule
    # term fails it alike.  Compiling those kernels on a cold PyTensor cache cost 73 s CPU
    # against 27 s with FAST_COMPILE (2 cores, empty compile dir); the C-compiled forward
    # graph is compared with the NumPy reference above and in test_forward.py.
    pytensor.gradient.verify_grad(
        fun, [np.array([-20.3, 1.1, 23.2]), np.array(0.83), np.array(16.4)], n_tests=2,
        rng=np.random.default_rng(4), eps=1e-7, abs_tol=1e-5, rel_tol=1e-4,
        mode="FAST_COMPILE",
    )


def test_bad_nuisance_requests_are_clear(effelsberg):
    c, fm, _ = effelsberg
    with pytest.raises(ValueError, match="not free here"):
        fm.coverage({"sub_reflector_radius": 3.0})
    plain = ForwardModel(c.maps, c.telescope, c.order, method="direct")
    with pytest.raises(ValueError, match="need free_blockage bounds"):
        plain.coverage({"leg_half_width": 1.0})
    with pytest.raises(ValueError, match="no leg shade"):
        ForwardModel(c.maps, "manual", c.order, free_blockage={"shade_half_angle": (5, 10)})
    custom = T.one_leg_telescope()
    with pytest.raises(ValueError, match="declarative blockage"):
        ForwardModel(c.maps, custom, c.order, free_blockage={"leg_half_width": (0.5, 1)})
