"""The aperture-amplitude error input of the forward graph (the model-error term).

``power(..., aperture_error=a)`` multiplies the aperture amplitude by ``1 + Σ_b a_b U_b``
(Zernike modes 1..J, no piston).  Checked against the independent NumPy reference
(``bayesoof.testing``'s aperture fields times that factor built from
:func:`bayesoof.physics.zernike.zernike` mode by mode, brute-force DFT) and with
``verify_grad``.  EXACT = 1e-10 of the beam peak, as in ``test_forward.py`` (two
evaluations of the same discrete sum; measured ~1e-15).
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesoof import testing as T
from bayesoof.physics import zernike
from bayesoof.physics.forward import ForwardModel

EXACT = 1e-10
ILL = ("c_dB", "q", "x0", "y0")
J = 9  # modes 1..9: the Zernike orders 1-3 without piston


@pytest.fixture(scope="module")
def case():
    c = T.make_case("effelsberg", n_grid=11, extent=4.0, values=False)
    fm = ForwardModel(c.maps, c.telescope, c.order, method="direct")
    K, a = pt.dvector("K"), pt.vector("a", dtype="float64", shape=(J,))
    ill = {n: pt.dscalar(n) for n in ILL}
    f = pytensor.function([K, *ill.values(), a], fm.power(K, ill, None, aperture_error=a))
    return c, fm, lambda aa: f(c.K, *(c.illumination[n] for n in ILL), aa)


def _reference(fm, c, a) -> np.ndarray:
    """|F|² with the amplitude times 1 + Σ a_b U_b, every mode evaluated on its own."""
    X, Y = fm.sampling.coords()
    R = fm.telescope.radius
    rho, th = np.hypot(X, Y) / R, np.arctan2(Y, X)
    factor = 1.0 + sum(a[b - 1] * zernike.zernike(*zernike.j_to_nl(b), rho, th)
                       for b in range(1, J + 1))
    scale = fm.sampling.dx**2 / (np.pi * R**2)
    fields = T.reference_aperture_fields(fm, c.K, c.illumination)
    return np.concatenate([
        np.abs(scale * T._dft(E * factor, X, Y, m.u, m.v, fm.wavelength)) ** 2
        for E, m in zip(fields, fm.data.maps, strict=True)])


def test_aperture_error_matches_reference(case):
    c, fm, f = case
    a = np.random.default_rng(4).normal(0.0, 0.05, J)
    peak = T.reference_peak(fm, c.K, c.illumination)
    T.assert_close_maps(f(a), _reference(fm, c, a), c.maps, EXACT, scale=peak,
                        what="aperture error")
    # the error moves the beams far above EXACT: the comparison can fail
    assert T.worst_residual(f(a), f(np.zeros(J)), c.maps, scale=peak).relative > 1e-3


def test_zero_error_is_the_plain_graph(case):
    """a = 0 as a tensor gives the model without the term; a NumPy zero leaves it out."""
    c, fm, f = case
    plain = T.compile_power(fm, with_pointing=False)(c.K, c.illumination)
    np.testing.assert_allclose(f(np.zeros(J)), plain, rtol=0, atol=1e-14 * plain.max())
    g = pytensor.function([], fm.illumination_amplitude(c.illumination,
                                                        aperture_error=np.zeros(J)))
    h = pytensor.function([], fm.illumination_amplitude(c.illumination))
    np.testing.assert_array_equal(g(), h())


def test_aperture_error_gradient():
    """verify_grad of Σ w P along a (a few samples: the check evaluates the graph often)."""
    c = T.make_case("effelsberg", n_grid=5, extent=3.0, values=False, d_z=(0.0, 0.022))
    fm = ForwardModel(c.maps, c.telescope, c.order, method="direct")
    w = np.random.default_rng(2).normal(size=fm.observed.size)

    def S(a):
        return pt.sum(w * fm.power(c.K, c.illumination, None, aperture_error=a))

    a0 = np.random.default_rng(3).normal(0.0, 0.05, 5)
    pytensor.gradient.verify_grad(S, [a0], rng=np.random.default_rng(0), abs_tol=1e-7,
                                  rel_tol=1e-6)


def test_length_must_be_static(case):
    _, fm, _ = case
    with pytest.raises(ValueError, match="static length"):
        fm.power(np.zeros(fm.zernike_basis.shape[1]), {"c_dB": -14.0, "q": 1.4, "x0": 0.0,
                                                      "y0": 0.0},
                 aperture_error=pt.dvector("a"))
