"""Derived products: phase/surface maps, rms (plain, weighted), Ruze, uncertainties; noise σ."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayesoof.data.noise import NoiseWarning, estimate_sigma, resolve_sigma
from bayesoof.physics import zernike
from bayesoof.physics.forward import ForwardModel
from bayesoof.physics.telescope import Optics, Telescope
from bayesoof.products.maps import phase_map, surface_um
from bayesoof.products.rms import aberration_mask, aperture_statistics, plain_rms
from bayesoof.testing import asymmetric_coefficients, make_case

R, LAM = 50.0, 0.009


def _disc_rms(K, n=1201):
    """rms about the mean of 2π Σ K U over the unit disc, by brute force on a grid."""
    K = np.array(K, float)
    K[:3] = 0.0
    order = zernike.j_to_nl(K.size - 1)[0]
    x = np.linspace(-1, 1, n)
    X, Y = np.meshgrid(x, x)
    inside = np.hypot(X, Y) <= 1
    phi = 2 * np.pi * zernike.zernike_basis(order, np.hypot(X, Y)[inside],
                                            np.arctan2(Y, X)[inside]) @ K
    return np.sqrt(np.mean((phi - phi.mean()) ** 2))


def test_plain_rms_is_the_disc_rms():
    # grid estimate of a disc integral: ~1e-3 relative on 1201² points (edge staircase)
    K = asymmetric_coefficients(5, scale=0.05, seed=3)
    assert plain_rms(K) == pytest.approx(_disc_rms(K), rel=2e-3)
    # batched, and piston/tilts do not count
    Kb = np.stack([K, 2 * K])
    Kb[:, :3] = 5.0
    np.testing.assert_allclose(plain_rms(Kb), [plain_rms(K), 2 * plain_rms(K)], rtol=1e-12)


def test_phase_map_layout_and_piston_tilt_removed():
    K = np.zeros(6)
    K[:3] = [0.3, -0.2, 0.1]  # piston and tilts only
    pm = phase_map(K, None, R, LAM, n=41)
    inside = np.isfinite(pm.phase)
    assert np.all(pm.phase[inside] == 0.0) and np.all(pm.phase_sd[inside] == 0.0)
    X, Y = np.meshgrid(pm.x, pm.y)
    np.testing.assert_array_equal(inside, np.hypot(X, Y) <= R * (1 + 1e-12))
    # orientation: K(2,2) (cos 2θ) is positive along x, negative along y; [i, j] = (x[j], y[i])
    K = np.zeros(6)
    K[zernike.nl_to_j(2, 2)] = 0.1
    pm = phase_map(K, None, R, LAM, n=41)
    assert pm.phase[20, 40] > 0 > pm.phase[40, 20]
    assert pm.surface[20, 40] == pytest.approx(surface_um(pm.phase[20, 40], LAM))


def test_surface_conversion():
    # on-axis: 1 rad of phase = λ/(4π) of surface
    assert surface_um(1.0, LAM) == pytest.approx(LAM / (4 * np.pi) * 1e6)
    assert surface_um(2 * np.pi * 0.25, LAM) == pytest.approx(
        float(zernike.waves_to_surface_um(0.25, LAM))
    )


def test_sd_map_by_propagation_matches_draws():
    """Linear propagation through the basis = sd of maps of Gaussian draws of K.

    4000 draws give the sd to 1/sqrt(2·4000) = 1.1%; tolerance 5% (4.5 of those).
    """
    rng = np.random.default_rng(1)
    K = asymmetric_coefficients(3, seed=2)
    A = rng.normal(size=(10, 10)) * 0.002
    cov = A @ A.T
    cov[0, :] = cov[:, 0] = 0.0  # piston fixed
    pm = phase_map(K, cov, R, LAM, n=21)
    draws = rng.multivariate_normal(K, cov, size=4000)
    maps = np.stack([phase_map(d, None, R, LAM, n=21).phase for d in draws[:4000]])
    sd = np.std(maps, axis=0, ddof=1)
    inside = np.isfinite(pm.phase) & (pm.phase_sd > 1e-3)
    np.testing.assert_allclose(pm.phase_sd[inside], sd[inside], rtol=0.05)


def _open_dish():
    tel = Telescope(name="open", radius=R, optics=Optics("prime", 30.0))
    case = make_case(tel, order=1, n_grid=11, values=False)
    return ForwardModel(case.maps, tel, 4)


def test_weighted_rms_equals_plain_for_uniform_unblocked_aperture():
    """c_dB = 0 dB is a flat illumination; without blockage the weighted rms is the disc rms.

    The forward pixels (~100 across, anti-aliased rim) integrate the disc to ~1%.
    """
    fm = _open_dish()
    K = asymmetric_coefficients(4, scale=0.04, seed=5)
    st = aperture_statistics(K, None, fm, {"c_dB": 0.0, "q": 1.0, "x0": 0.0, "y0": 0.0})
    assert st["phase_rms_weighted"] == pytest.approx(st["phase_rms"], rel=0.01)
    assert st["ruze"] == pytest.approx(np.exp(-st["phase_rms"] ** 2))
    assert st["surface_rms"] == pytest.approx(surface_um(st["phase_rms"], LAM))
    assert np.isnan(st["phase_rms_sd"])


def test_weighted_rms_of_the_statistics_is_that_of_the_phase_map():
    """aperture_statistics takes the weighted rms as a quadratic form in K; the reference
    builds the phase map on the aperture pixels and takes weighted_rms of it.  Agreement
    to 1e-10 relative (rounding of two summation orders; measured ~1e-15)."""
    from bayesoof.physics.illumination import evaluate as evaluate_illumination
    from bayesoof.products.rms import weighted_rms

    fm = _open_dish()
    K = asymmetric_coefficients(4, scale=0.05, seed=7)
    illum = {"c_dB": -12.0, "q": 1.4, "x0": 0.5, "y0": -0.3}
    X, Y = fm.sampling.coords()
    w = (fm.block * evaluate_illumination(fm.illumination, X, Y, fm.telescope.radius, illum,
                                          module=np)).ravel()
    phase = 2 * np.pi * (fm.zernike_basis * aberration_mask(fm.nl)) @ K
    ref = float(weighted_rms(phase, w))
    st = aperture_statistics(K, None, fm, illum)
    assert st["phase_rms_weighted"] == pytest.approx(ref, rel=1e-10)


def test_taper_weights_the_edge_down():
    """K(4,4) ∝ ρ⁴ cos 4θ lives at the rim: a -20 dB taper lowers its weighted rms."""
    fm = _open_dish()
    K = np.zeros(15)
    K[zernike.nl_to_j(4, 4)] = 0.05
    flat = aperture_statistics(K, None, fm, {"c_dB": 0.0, "q": 1.0, "x0": 0.0, "y0": 0.0})
    taper = aperture_statistics(K, None, fm, {"c_dB": -20.0, "q": 2.0, "x0": 0.0, "y0": 0.0})
    assert taper["phase_rms_weighted"] < 0.9 * flat["phase_rms_weighted"]
    assert taper["ruze_weighted"] > flat["ruze_weighted"]


def test_rms_sd_from_draws_matches_linearisation():
    """For rms ≫ its sd, the draws' sd of the plain rms equals gᵀCg, g = ∂rms/∂K.

    1000 draws: sd known to ~2.2%; tolerance 10%.
    """
    fm = _open_dish()
    K = asymmetric_coefficients(4, scale=0.05, seed=5)
    cov = np.diag(np.r_[0.0, np.full(14, 1e-3) ** 2])
    st = aperture_statistics(K, cov, fm, {"c_dB": -12.0, "q": 1.4, "x0": 0.0, "y0": 0.0})
    nl = zernike.nl_list(4)
    m2 = np.array([zernike.mode_rms(n, m) ** 2 for n, m in nl])
    m2[:3] = 0.0
    rms = plain_rms(K)
    g = (2 * np.pi) ** 2 * K * m2 / rms
    assert st["phase_rms_sd"] == pytest.approx(np.sqrt(g @ cov @ g), rel=0.1)
    assert st["phase_rms"] == pytest.approx(rms)


# ------------------------------------------------------------------ noise
@pytest.mark.parametrize(("n_grid", "scatter"), [(61, False), (61, True)])
def test_sigma_estimate_recovers_simulated_noise(n_grid, scatter):
    """SNR 200, 3.8 samples per beam width: the estimate is within 10% of the truth.

    The MAD estimate from ~1600 outer samples has ~3% sd; the side lobes add a few %
    (measured: at most 6%); 10% leaves room for both.
    """
    case = make_case(order=3, n_grid=n_grid, extent=8.0, snr=200.0, scatter=scatter, seed=4)
    for m in case.maps.maps:
        assert estimate_sigma(m) == pytest.approx(m.sigma[0], rel=0.10)


def test_resolve_sigma_sources():
    case = make_case(order=1, n_grid=21, snr=200.0, seed=1)
    data = case.maps
    sig, origin = resolve_sigma(data, "auto")
    assert origin == ["file"] * 3 and np.array_equal(sig, np.concatenate(
        [m.sigma for m in data.maps]))
    bare = data.with_maps([dataclasses.replace(m, sigma=None) for m in data.maps])
    sig, origin = resolve_sigma(bare, "auto")
    assert origin == ["estimated"] * 3 and sig.size == 3 * 21 * 21
    with pytest.raises(ValueError, match=r"carries no σ .*noise source is 'file'"):
        resolve_sigma(bare, "file")
    sig, origin = resolve_sigma(bare, sigma=[1.0, 2.0, 3.0])
    assert origin == ["given"] * 3 and sig[-1] == 3.0
    with pytest.raises(ValueError, match=r"sigma has 2 values"):
        resolve_sigma(bare, sigma=[1.0, 2.0])


def test_noise_free_map_warns_and_floors():
    case = make_case(order=1, n_grid=21, snr=None, seed=1)
    m = dataclasses.replace(case.maps.maps[1], beam=np.ones(21 * 21))
    with pytest.warns(NoiseWarning, match=r"noise-free"):
        s = estimate_sigma(m)
    assert s == pytest.approx(1e-9)
