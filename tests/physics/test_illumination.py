"""Illumination tapers: hand values, the NumPy formula, clipping beyond R', NumPy = PyTensor."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesoof.physics import illumination as il
from bayesoof.physics.illumination.gaussian import gaussian
from bayesoof.physics.illumination.parabolic import parabolic
from bayesoof.testing import reference_illumination

R = 50.0
# These graphs are tiny: Python-level Ops (no C compilation) keep the file fast; the
# expressions are the same ones the C backend compiles in the forward-model tests.
FAST = "FAST_COMPILE"


def test_parabolic_hand_values():
    """c_dB = -20 dB -> C = 0.1: centre 1, rim C, r'² = R²/2 -> C + (1 - C)/2^q."""
    x = np.array([0.0, R, 0.0, R / np.sqrt(2), 3.0 + R / np.sqrt(2)])
    y = np.array([0.0, 0.0, -R, 0.0, 0.0])
    q1 = parabolic(x, y, R, -20.0, 1.0, module=np)
    np.testing.assert_allclose(q1[:4], [1.0, 0.1, 0.1, 0.55], rtol=1e-14)
    q2 = parabolic(x, y, R, -20.0, 2.0, module=np)
    np.testing.assert_allclose(q2[:4], [1.0, 0.1, 0.1, 0.1 + 0.9 * 0.25], rtol=1e-14)
    # the centre follows (x0, y0): the last point is at r' = R/√2 from (3, 0)
    off = parabolic(x[4:], y[4:], R, -20.0, 1.0, x0=3.0, y0=0.0, module=np)
    np.testing.assert_allclose(off, [0.55], rtol=1e-14)


def test_gaussian_hand_values():
    """c_dB = -20 dB -> σ = 0.1 R: exp(-1/2) at r' = σR, exp(-2) at 2σR."""
    x = np.array([0.0, 5.0, 0.0, 1.0])
    y = np.array([0.0, 0.0, -10.0, 5.0])
    got = gaussian(x, y, R, -20.0, x0=1.0, y0=0.0, module=np)
    r2 = (x - 1.0) ** 2 + y**2
    np.testing.assert_allclose(got, np.exp(-r2 / (2 * 5.0**2)), rtol=1e-14)
    np.testing.assert_allclose(gaussian(np.array([5.0, 10.0]), np.zeros(2), R, -20.0,
                                           module=np), [np.exp(-0.5), np.exp(-2.0)], rtol=1e-14)


@pytest.mark.parametrize("kind", ["parabolic", "gaussian"])
def test_matches_reference_formula(kind):
    """The package formula and the plain-NumPy one of bayesoof.testing agree to rounding."""
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-R, R, (2, 500))
    coeffs = {"c_dB": -13.7, "q": 1.6, "x0": 2.0, "y0": -4.0}
    if kind == "gaussian":
        coeffs.pop("q")
    got = il.evaluate(kind, x, y, R, coeffs, module=np)
    np.testing.assert_allclose(got, reference_illumination(kind, x, y, R, coeffs), rtol=1e-14)


def test_parabolic_beyond_offset_rim_is_finite_pedestal():
    """With an offset centre, pixels beyond r' = R get the pedestal C, for any q.

    A negative base to a non-integer power would be NaN; the clip at 0 keeps the value
    at C and the gradients finite (pytensor's pow gradient is switched off at base 0).
    """
    x = np.array([-R, -0.9 * R, 0.0, R])
    y = np.zeros(4)
    c_dB, q, x0 = pt.dscalar("c_dB"), pt.dscalar("q"), pt.dscalar("x0")
    e = parabolic(x, y, R, c_dB, q, x0, 0.0)
    grads = pytensor.grad(e.sum(), [c_dB, q, x0])
    f = pytensor.function([c_dB, q, x0], [e, *grads], mode=FAST)
    val, *g = f(-12.0, 1.37, 10.0)  # points at x = -R, -0.9R lie beyond r' = R
    C = 10 ** (-12.0 / 20)
    np.testing.assert_allclose(val[:2], C, rtol=1e-14)
    assert np.all(np.isfinite(val)) and all(np.all(np.isfinite(gi)) for gi in g)
    assert np.all(parabolic(x, y, R, -12.0, 1.37, 10.0, 0.0, module=np) >= C - 1e-15)


@pytest.mark.parametrize("kind", ["parabolic", "gaussian"])
def test_numpy_and_pytensor_agree(kind):
    """The same function with module=np and with symbolic coefficients (rounding only)."""
    rng = np.random.default_rng(9)
    x, y = rng.uniform(-1.1 * R, 1.1 * R, (2, 400))  # some points beyond the rim too
    names = il.illumination_params(kind)
    values = {"c_dB": -9.0, "q": 1.25, "x0": -3.0, "y0": 6.5}
    sym = {n: pt.dscalar(n) for n in names}
    f = pytensor.function(list(sym.values()), il.evaluate(kind, x, y, R, sym), mode=FAST)
    got = f(*(values[n] for n in names))
    want = il.evaluate(kind, x, y, R, {n: values[n] for n in names}, module=np)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)


def test_parameter_names_and_errors():
    assert il.illumination_params("parabolic") == ("c_dB", "q", "x0", "y0")
    assert il.illumination_params("gaussian") == ("c_dB", "x0", "y0")
    with pytest.raises(ValueError, match="unknown illumination 'cosine'"):
        il.illumination_params("cosine")
    with pytest.raises(ValueError, match=r"needs coefficients \['q'\]"):
        il.evaluate("parabolic", np.zeros(1), np.zeros(1), R,
                    {"c_dB": -10.0, "x0": 0.0, "y0": 0.0}, module=np)
