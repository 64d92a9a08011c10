"""Simulation: seeds, noise level, agreement with the forward model, bundled example, FITS."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesoof import simulate as sim
from bayesoof import testing as T
from bayesoof.data.fitsio import DataWarning, read_beam_maps, write_nikolic, write_pyoof
from bayesoof.physics import zernike
from bayesoof.physics.forward import ForwardModel

# A small, asymmetric set: Effelsberg, 9 mm, order 3 (odd-l terms), illumination centre
# off axis, per-map pointing, amplitude and offset; a 25 x 25 lattice over ±5 beam widths.
SETTINGS = dict(telescope="effelsberg", n_grid=25, extent=5.0)
AMP, OFFSET = np.array([2.5, 3.0, 2.0]), np.array([0.3, -0.1, 0.2])
SNR = 50.0


def _simulate(case, snr, seed):
    return sim.simulate(case.telescope, case.K, 0.009, (-0.022, 0.0, 0.022),
                        illumination=case.illumination, u=[m.u for m in case.maps.maps],
                        v=[m.v for m in case.maps.maps], amp=AMP, offset=OFFSET,
                        pointing=case.pointing, snr=snr, seed=seed)


@pytest.fixture(scope="module")
def case():
    return T.make_case(values=False, **SETTINGS)


@pytest.fixture(scope="module")
def clean(case):
    return _simulate(case, None, 0)


@pytest.fixture(scope="module")
def noisy(case):
    return _simulate(case, SNR, 12)


def _beam(maps):
    return np.concatenate([m.beam for m in maps.maps])


def test_reproducible_by_seed(case, noisy):
    again = _simulate(case, SNR, 12)
    np.testing.assert_array_equal(_beam(again), _beam(noisy))
    other = _simulate(case, SNR, 13)
    assert not np.allclose(_beam(other), _beam(noisy))
    # scattered positions come from the seed too
    a = sim.simulate("manual", np.zeros(3), n_grid=4, scatter=True, snr=None, seed=1)
    b = sim.simulate("manual", np.zeros(3), n_grid=4, scatter=True, snr=None, seed=1)
    np.testing.assert_array_equal(a.maps[0].u, b.maps[0].u)
    assert a.maps[0].grid() is None


def test_noise_level_is_peak_over_snr(clean, noisy):
    """σ = (peak of the in-focus model, offset removed) / SNR, recorded and realised.

    The noise is the difference of the noisy and the noise-free simulation.  With N =
    3 x 625 independent N(0, σ²) draws, Σ r²/σ² ~ χ²_N: accept it within the central
    99.9 % of that distribution (about ±7.6 % of N here); the mean within ±3.29 σ/√N.
    """
    focus = clean.maps[1]
    assert focus.d_z == 0.0
    peak = np.max(focus.beam - OFFSET[1])
    sigma = peak / SNR
    for m in noisy.maps:
        np.testing.assert_allclose(m.sigma, sigma, rtol=1e-12)
    for m in clean.maps:  # noise-free maps record σ = 1e-3 x peak
        np.testing.assert_allclose(m.sigma, 1e-3 * peak, rtol=1e-12)
    r = _beam(noisy) - _beam(clean)
    n = r.size
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], n)
    chi2 = float(np.sum((r / sigma) ** 2))
    assert lo < chi2 < hi, f"chi2 = {chi2:.1f} for N = {n}; expected in ({lo:.1f}, {hi:.1f})"
    assert abs(r.mean()) < 3.29 * sigma / np.sqrt(n)


def test_noise_free_simulation_is_the_forward_model(case, clean):
    """amp_i P_i + offset_i with P from the independent NumPy reference (rounding only)."""
    fm = ForwardModel(clean, case.telescope, case.order, method="direct")
    P = T.reference_power(fm, case.K, case.illumination, case.pointing)
    want = AMP[fm.map_index] * P + OFFSET[fm.map_index]
    # 1e-10 of the peak: two evaluations of one discrete sum (see test_forward.EXACT)
    T.assert_close_maps(_beam(clean), want, clean, 1e-10, scale=np.max(want),
                        what="noise-free simulation vs reference")


def test_simulate_rejects_incomplete_order():
    with pytest.raises(ValueError, match="full order"):
        sim.simulate("effelsberg", np.zeros(4), snr=None)


# ------------------------------------------------------------------ bundled example
def test_bundled_example_reads_back_with_truth():
    """The bundled example is what DESIGN.md says, and it was simulated from example_truth().

    The residuals (data - (1000 P + 2)) / σ of the model at the truth are N(0, 1):
    Σ r² ~ χ²_N with N = 3 x 61², accepted within its central 99.9 % (±4.4 % of N).
    Measured χ²/N = 0.995 at the truth; one coefficient off by 0.03 wave gives 1.45, so
    a wrong truth or a changed forward model is caught.
    """
    path = sim.example_path()
    assert path.is_file()
    maps = read_beam_maps(path)
    assert maps.n_maps == 3 and maps.wavelength == pytest.approx(0.009, rel=1e-12)
    np.testing.assert_allclose(maps.d_z, [-0.022, 0.0, 0.022])
    assert all(m.size == 61 * 61 and m.sigma is not None and m.grid() is not None
               for m in maps.maps)
    truth = sim.example_truth()
    # documented: order 4 in OSA order, piston and tilts zero
    assert truth.shape == (zernike.n_coeffs(4),)
    assert np.all(truth[:3] == 0) and np.all(truth[3:] != 0)
    np.testing.assert_array_equal(truth, sim.random_coefficients(4, scale=0.03, seed=7))

    fm = ForwardModel(maps, "effelsberg", 4, method="direct")
    f = T.compile_power(fm)
    s = sim.EXAMPLE_SETTINGS
    sigma = np.concatenate([m.sigma for m in maps.maps])
    n = sigma.size
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], n)
    for K, should_fit in ((truth, True), (truth + 0.03 * (np.arange(15) == 7), False)):
        model = s["amp"] * f(K, sim.DEFAULT_ILLUMINATION) + s["offset"]
        chi2 = float(np.sum(((fm.observed - model) / sigma) ** 2))
        assert (lo < chi2 < hi) == should_fit, f"chi2/N = {chi2 / n:.3f}, N = {n}"


# ------------------------------------------------------------------ FITS round trip
def _same(a, b, sigma=True):
    assert a.n_maps == b.n_maps
    assert a.wavelength == pytest.approx(b.wavelength, rel=1e-12)
    order = np.argsort(b.d_z)
    for m, ref in zip([a.maps[k] for k in np.argsort(a.d_z)], [b.maps[k] for k in order],
                      strict=True):
        assert m.d_z == ref.d_z
        for field in ("u", "v", "beam") + (("sigma",) if sigma else ()):
            np.testing.assert_array_equal(getattr(m, field), getattr(ref, field), err_msg=field)


def test_simulated_maps_round_trip_both_formats(tmp_path, noisy):
    nik = tmp_path / "sim_nikolic.fits"
    write_nikolic(noisy, nik)
    back = read_beam_maps(nik)
    _same(back, noisy)  # float64 columns: exact, σ kept in UFNU
    assert back.meta["OBJECT"] == "simulated"

    pyo = tmp_path / "sim_pyoof.fits"
    with pytest.warns(DataWarning, match="no noise column"):
        write_pyoof(noisy, pyo)
    back = read_beam_maps(pyo)
    _same(back, noisy, sigma=False)
    assert all(m.sigma is None for m in back.maps)
