"""The samplers' opt-in coordinates of the taper (a prior table's ``coordinate``): the
linear pedestal C of c_dB and q itself, each with soft bounds (priors.PedestalTransform,
priors.SoftBoundsTransform); and the rule that decides whether the posterior samples q.

Checked against NumPy by hand: the map u -> value, its closed-form inverse, the
log-Jacobian (against automatic differentiation), the soft bounds; the model in the new
coordinates against the default one at the same physical point (test_model.py's case).
"""

from __future__ import annotations

import types

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesoof.inference.model import Q_SAMPLE_SD, _q_not_pinned
from bayesoof.inference.params import ParameterSpace
from bayesoof.inference.priors import (
    PEDESTAL_SHARPNESS,
    PedestalTransform,
    SoftBoundsTransform,
    prior_rv,
)

FAST = "FAST_COMPILE"  # tiny graphs: Python thunks, no C compile (same float64 numbers)
LO, HI = -25.0, -1.0  # dB: the default c_dB prior's support
C_LO, C_HI = 10 ** (LO / 20), 10 ** (HI / 20)


def _pedestal_numpy(u):
    """C(u) by hand: C_lo + [softplus(k(u - C_lo)) - softplus(k(u - C_hi))] / k."""
    k = PEDESTAL_SHARPNESS / (C_HI - C_LO)
    return C_LO + (np.logaddexp(0, k * (u - C_LO)) - np.logaddexp(0, k * (u - C_HI))) / k


@pytest.fixture(scope="module")
def fns():
    tr = PedestalTransform(LO, HI)
    x = pt.dvector("x")
    return {
        "forward": pytensor.function([x], tr.forward(x), mode=FAST),
        "backward": pytensor.function([x], tr.backward(x), mode=FAST),
        "logjac": pytensor.function([x], tr.log_jac_det(x), mode=FAST),
        "dback": pytensor.function([x], pt.grad(pt.sum(tr.backward(x)), x), mode=FAST),
    }


def test_pedestal_coordinate_is_c_inside_and_maps_the_line_onto_the_bounds(fns):
    # away from the bounds the coordinate is the pedestal C (that is the point of it: the
    # q-c_dB ridge keeps its width in C); the softplus tails put |u - C| at
    # exp(-k (C - C_lo)) / k + exp(-k (C_hi - C)) / k to first order (by hand; the 4 %
    # slack covers the second order: exp(-k(u - C_lo)) with u = C - 1.3e-3 at -20 dB)
    k = PEDESTAL_SHARPNESS / (C_HI - C_LO)
    c_dB = np.array([-20.0, -17.2, -14.5, -12.3, -8.0, -5.0])
    c = 10 ** (c_dB / 20)
    u = fns["forward"](c_dB)
    bound = (np.exp(-k * (c - C_LO)) + np.exp(-k * (C_HI - c))) / k
    assert np.all(np.abs(u - c) <= 1.04 * bound), (u - c, bound)
    assert np.all(np.abs(u - c)[c > 0.12] < 2e-4)  # the study's tapers (-16 .. -12 dB)
    # backward by hand (NumPy), and the round trip (1e-12 dB: round-off)
    uu = np.array([-3.0, -0.05, 0.0, 0.06, 0.1, 0.2, 0.5, 0.88, 0.9, 2.0])
    np.testing.assert_allclose(fns["backward"](uu), 20 * np.log10(_pedestal_numpy(uu)),
                               rtol=0, atol=1e-12)
    c_all = np.array([-24.99, -24.0, -14.5, -1.5, -1.001])
    np.testing.assert_allclose(fns["backward"](fns["forward"](c_all)), c_all, atol=1e-12)
    # the whole real line lands strictly inside the prior's bounds (no wall for NUTS)
    far = fns["backward"](np.array([-1e3, -10.0, 10.0, 1e3]))
    assert np.all(np.isfinite(far)) and np.all((far >= LO - 1e-9) & (far <= HI + 1e-9))
    assert far[0] == pytest.approx(LO, abs=1e-9) and far[-1] == pytest.approx(HI, abs=1e-9)
    # monotone
    grid = np.linspace(C_LO - 0.05, C_HI + 0.05, 2001)  # (beyond, float64 saturates)
    assert np.all(np.diff(fns["backward"](grid)) > 0)


def test_pedestal_log_jacobian_matches_autodiff_and_stays_finite(fns):
    u = np.array([-0.5, 0.0, 0.06, 0.1, 0.2, 0.5, 0.85, 0.9, 1.2])
    # 1e-9: the autodiff derivative of the same expression, round-off only
    np.testing.assert_allclose(fns["logjac"](u), np.log(np.abs(fns["dback"](u))), atol=1e-9)
    # by hand: d c_dB / d u = 20 / (ln 10 C) × dC/du, dC/du = σ(k(u - C_lo)) - σ(k(u - C_hi))
    k = PEDESTAL_SHARPNESS / (C_HI - C_LO)
    mid = np.array([0.15, 0.3, 0.6])
    slope = 1 / (1 + np.exp(-k * (mid - C_LO))) - 1 / (1 + np.exp(-k * (mid - C_HI)))
    expected = np.log(20 / (np.log(10) * _pedestal_numpy(mid)) * slope)
    np.testing.assert_allclose(fns["logjac"](mid), expected, rtol=0, atol=1e-12)
    # far outside, where the autodiff slope underflows to 0, the stable form stays finite
    assert np.all(np.isfinite(fns["logjac"](np.array([-50.0, 50.0]))))


def test_coordinate_is_chosen_in_the_prior_table_and_checked():
    with pytest.raises(ValueError, match="unknown coordinate"):
        prior_rv("c_dB", {"dist": "uniform", "lower": LO, "upper": HI, "coordinate": "logit"})
    with pytest.raises(ValueError, match="finite support"):
        prior_rv("q", {"dist": "normal", "mu": 1.4, "sigma": 0.1, "coordinate": "soft"})
    with pytest.raises(ValueError, match="finite bounds"):
        PedestalTransform(-1.0, -25.0)


def test_q_is_sampled_only_where_the_fit_pins_it_down():
    """model._q_not_pinned: q sampled at sd <= Q_SAMPLE_SD and >= Q_SAMPLE_MARGIN sd from its
    bounds, held (with the reason) otherwise."""
    sp = ParameterSpace.standard(2, "parabolic", 3)
    sp.set("q", 1.4, lower=1.0, upper=2.0, free=True)
    sp.set("c_dB", -14.0, lower=-25.0, upper=-1.0, free=True)

    def fit_with(q, sd_q):
        s = sp.copy()
        s.set("q", q)
        sd = np.ones(len(s.free_names))
        sd[s.free_names.index("q")] = sd_q
        rec = types.SimpleNamespace(space=s, sd=sd, cov=np.diag(sd**2))
        return types.SimpleNamespace(plain_last=rec, last=rec), s

    for q, sd_q, held in ((1.4, 0.012, False), (1.4, Q_SAMPLE_SD, False),
                          (1.4, 0.048, True), (1.95, 0.012, True), (1.1, 0.088, True)):
        fit, s = fit_with(q, sd_q)
        reason = _q_not_pinned(fit, s)
        assert bool(reason) == held, (q, sd_q, reason)
        if held:
            assert reason.startswith(f"taper order q held at the quick fit's {q:.3f}")


def test_soft_bounds_coordinate_of_q_is_q_inside_its_bounds():
    """q in [1, 2]: u = q away from the bounds (|u - q| = e^(-50 (q - 1))/50 + e^(-50 (2 -
    q))/50 to first order; 10 % slack for the second order at 4/50 from a bound), the real
    line onto (1, 2), log-Jacobian as autodiff's (1e-9, round-off), round trip to 1e-12."""
    tr = SoftBoundsTransform(1.0, 2.0)
    x = pt.dvector("x")
    fwd = pytensor.function([x], tr.forward(x), mode=FAST)
    back = pytensor.function([x], tr.backward(x), mode=FAST)
    logjac = pytensor.function([x], tr.log_jac_det(x), mode=FAST)
    dback = pytensor.function([x], pt.grad(pt.sum(tr.backward(x)), x), mode=FAST)
    q = np.array([1.08, 1.11, 1.4, 1.67, 1.92])
    u = fwd(q)
    bound = (np.exp(-50 * (q - 1)) + np.exp(-50 * (2 - q))) / 50
    assert np.all(np.abs(u - q) <= 1.1 * bound), (u - q, bound)
    np.testing.assert_allclose(back(u), q, atol=1e-12)
    uu = np.array([0.9, 1.0, 1.11, 1.4, 1.9, 2.05])  # (beyond, autodiff's slope underflows)
    np.testing.assert_allclose(logjac(uu), np.log(dback(uu)), atol=1e-9)
    far = back(np.array([-1e3, 1e3]))
    assert far[0] == pytest.approx(1.0, abs=1e-12) and far[1] == pytest.approx(2.0, abs=1e-12)
