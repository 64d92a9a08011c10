"""The cosine-squared illumination: one new module, picked up everywhere by the registry.

Kernel checks as for every illumination (NumPy reference, PyTensor value, verify_grad),
then that the fit configuration, the parameter space, the CLI and a quick fit accept it
with no other file changed.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesoof.cli import app
from bayesoof.inference.config import load_fit_config
from bayesoof.inference.params import ParameterSpace
from bayesoof.physics import illumination as il
from bayesoof.physics.illumination.cosine_squared import cosine_squared

R = 50.0


def _reference(x, y, c_dB, x0, y0):
    """Independent NumPy form: pedestal C plus (1 - C) cos² of the clipped radius."""
    C = 10 ** (c_dB / 20)
    r = np.minimum(np.hypot(x - x0, y - y0) / R, 1.0)
    return C + (1 - C) * np.cos(np.pi * r / 2) ** 2


def test_values_edge_and_centre():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-1.2 * R, 1.2 * R, (2, 500))
    got = cosine_squared(x, y, R, -11.0, 2.0, -3.0, module=np)
    np.testing.assert_allclose(got, _reference(x, y, -11.0, 2.0, -3.0), rtol=1e-14)
    # 1 at the centre, the pedestal C = 10^(c_dB/20) at the rim and beyond
    assert cosine_squared(np.array([0.0]), np.array([0.0]), R, -11.0, module=np)[0] == 1.0
    rim = cosine_squared(np.array([R, 1.5 * R]), np.array([0.0, 0.0]), R, -11.0, module=np)
    np.testing.assert_allclose(rim, 10 ** (-11.0 / 20), rtol=1e-12)


def test_tensor_value_and_gradient():
    """PyTensor agrees with NumPy to rounding; verify_grad (seeded) in c_dB, x0, y0."""
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-0.9 * R, 0.9 * R, (2, 50))
    sym = [pt.dscalar(n) for n in ("c_dB", "x0", "y0")]
    f = pytensor.function(sym, il.evaluate("cosine_squared", x, y, R,
                                           dict(zip(("c_dB", "x0", "y0"), sym, strict=True))))
    np.testing.assert_allclose(f(-9.0, 1.0, 2.0), _reference(x, y, -9.0, 1.0, 2.0),
                               rtol=1e-13)
    pytensor.gradient.verify_grad(
        lambda c, a, b: cosine_squared(x, y, R, c, a, b).sum(),
        [np.array(-9.0), np.array(1.0), np.array(2.0)], rng=np.random.default_rng(5),
    )


def test_picked_up_by_config_space_and_cli():
    assert il.illumination_params("cosine_squared") == ("c_dB", "x0", "y0")
    cfg = load_fit_config({"fit": {"illumination": "cosine_squared"}})
    sp = ParameterSpace.from_config(cfg, 3, 1e-4, radius=50.0)
    assert sp.illum_names == ("c_dB", "x0", "y0")
    # the centre offsets are default nuisances since issue 9 (before: fixed)
    assert sp.free_of("c_dB").all() and sp.free_of("x0").all()
    parser = app.build_parser()
    args = parser.parse_args(["fit", "x.fits", "--illumination", "cosine_squared"])
    assert args.illumination == "cosine_squared"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_quick_fit_recovers_the_taper():
    """Simulate with a -12 dB cosine-squared taper and fit it back (order 1, SNR 300).

    Tolerance: 0.5 dB, several Laplace sd at this SNR (the fit's c_dB sd here is
    ~0.05 dB), far below the 24 dB range of the bounds.
    """
    from bayesoof.inference.fit import fit
    from bayesoof.physics.aperture import ApertureGrid
    from bayesoof.simulate import simulate

    sampling = ApertureGrid.across(R, 48)
    K = np.zeros(3)
    data = simulate("effelsberg", K, illumination={"c_dB": -12.0, "x0": 0.0, "y0": 0.0},
                    illumination_kind="cosine_squared", n_grid=31, snr=300.0, seed=2,
                    sampling=sampling)
    r = fit(data, "effelsberg", order=1, illumination="cosine_squared", sampling=sampling)
    assert abs(r.params["c_dB"] - (-12.0)) < 0.5, r.params["c_dB"]
