"""Model-adequacy verdict: null distributions, power, false alarms on the model's own data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesoof.inference.adequacy import (
    THRESHOLDS,
    assess,
    morans_i,
    neighbour_pairs,
    ppp_chi2,
)
from bayesoof.testing import shared_dir


def _jittered_lattice(n=41, jitter=0.03, seed=0):
    rng = np.random.default_rng(seed)
    u, v = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float))
    return (u.ravel() + rng.normal(0, jitter, n * n), v.ravel() + rng.normal(0, jitter, n * n))


def test_lattice_pairs_are_the_four_neighbours():
    # a 3 % jitter of the step (coordinates rounded to 1e-6 rad on a 3.3e-5 rad step) must
    # still give the 4-neighbours: 2 n (n - 1) pairs on an n × n lattice
    u, v = _jittered_lattice(31)
    assert neighbour_pairs(u, v).shape == (2 * 31 * 30, 2)


@pytest.mark.parametrize("layout", ["lattice", "scattered"])
def test_moran_z_is_standard_normal_for_white_noise(layout):
    rng = np.random.default_rng(1)
    if layout == "lattice":
        u, v = _jittered_lattice(41)
    else:
        u, v = rng.uniform(0, 1, 2000), rng.uniform(0, 1, 2000)
    pairs = neighbour_pairs(u, v)
    z = np.array([morans_i(rng.standard_normal(u.size), pairs)[1] for _ in range(400)])
    # 400 draws: the mean has sd 0.05 and the sd a relative sd of 3.5 %; 4-5 sd tolerances
    assert abs(z.mean()) < 0.2
    assert 0.85 < z.std() < 1.15
    # the verdict's threshold (z > 4, p = 3e-5) fires on none of them (expected 0.01)
    assert np.sum(z > THRESHOLDS["moran_z"]) == 0


def test_moran_detects_structure_chi2_does_not():
    # a smooth residual of rms 0.27 sd on top of white noise (expected reduced chi2 1.076 ±
    # 0.017: under the chi2 threshold 1.10) must be flagged as structured: expected Moran's
    # I ≈ 0.068 with null sd 0.0087 on 81 × 81 samples, z ≈ 7.8
    rng = np.random.default_rng(2)
    u, v = _jittered_lattice(81)
    smooth = 0.55 * np.sin(u / 3.0) * np.cos(v / 4.0)
    r = rng.standard_normal(u.size) + smooth
    ad = assess(r, [slice(None)], [(u, v)])
    assert ad.maps[0].reduced_chi2 < 1 + THRESHOLDS["chi2_excess"]
    assert ad.maps[0].moran_z > 5
    assert ad.verdict == "misfit"
    assert "structured residuals" in ad.line()


def test_chi2_threshold_and_scale_invariance_of_moran():
    rng = np.random.default_rng(3)
    u, v = _jittered_lattice(41)
    r = 1.5 * rng.standard_normal(u.size)  # σ underestimated by 1.5: chi2 2.25, no structure
    ad = assess(r, [slice(None)], [(u, v)], names=["ZERO"])
    assert ad.verdict == "misfit"
    assert ad.maps[0].moran_z < THRESHOLDS["moran_z"]
    assert any("reduced chi2" in x for x in ad.reasons)
    assert ad.status(True) == "converged, MISFIT"
    white = assess(rng.standard_normal(u.size), [slice(None)], [(u, v)])
    assert white.verdict == "adequate" and white.status(True) == "converged"


def test_ppp_chi2():
    rng = np.random.default_rng(4)
    mu = rng.uniform(0, 10, (200, 3000))
    obs = mu[0] + rng.standard_normal(3000)
    p_ok = ppp_chi2(obs, mu[:1].repeat(200, 0), 1.0)
    # observed chi2 ~ chi2_3000 like the replicates: p uniform; outside (0.001, 0.999) has
    # probability 0.002
    assert 0.001 < p_ok < 0.999
    assert ppp_chi2(obs + 0.5, mu[:1].repeat(200, 0), 1.0) == 0.0  # chi2 up 750 = 9.7 sd


def test_no_false_alarm_on_data_from_the_model():
    """Fits of data simulated from the model itself are judged adequate.

    Per fit the false-alarm probability of the thresholds is ~1e-4 (3 maps × Moran
    p 3e-5, chi2 5 sd); 8 fits all adequate fails by chance with probability < 1e-3.
    """
    from bayesoof.inference.fit import fit
    from bayesoof.simulate import random_coefficients, simulate

    verdicts = []
    for seed in range(8):
        K = random_coefficients(3, 0.05, seed)
        data = simulate("effelsberg", K, n_grid=31, snr=200.0, seed=seed,
                        amp=100.0, offset=1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fit(data, "effelsberg", order=3)
        verdicts.append(res.adequacy.verdict)
        assert res.status == ("converged" if res.converged else "NOT converged")
    assert verdicts == ["adequate"] * 8


@pytest.fixture(scope="module")
def pyoof_fit():
    """The default fit of pyoof's example file (skipped without ../shared)."""
    path = shared_dir() / "data" / "pyoof_example0.fits" if shared_dir() else None
    if path is None or not path.is_file():
        pytest.skip("../shared/data/pyoof_example0.fits not available")
    from bayesoof.inference.fit import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(path, "effelsberg")


def test_pyoof_example_is_flagged(pyoof_fit):
    res = pyoof_fit
    ad = res.adequacy
    assert ad.verdict == "misfit"
    assert "MISFIT" in res.status and "MISFIT" in ad.line() and "\n" not in ad.line()
    # the residuals are structured in every map (measured: lag-1 autocorrelation 0.8, z>100)
    assert all(m.moran_z > 20 for m in ad.maps)
    block = res.summary()["adequacy"]
    assert block["verdict"] == "misfit" and block["reasons"]
    assert res.summary()["status"].endswith("MISFIT")


def test_pyoof_example_second_start_stops_in_the_continuations_basin(pyoof_fit):
    """A misfit (reduced chi2 4.3 > fit.cold_start_above) tries the configured start too;
    here it ends in the continuation's basin, so it loses, and both solves stop early
    (bayesoof.inference.stopping; this shares the fit above to save its ~6 s)."""
    last = pyoof_fit.orders[-1]
    assert last.cold_start == "lost"
    # the continuation's chi2 first, the configured start's higher (stopped in the basin)
    assert len(last.start_costs) == 2 and last.start_costs[1] > last.start_costs[0]
    assert last.converged  # the kept solution was polished after its early stop
    # Jacobians at the last order, measured: 13 without the second start, 23 with it before
    # the early stops (13 + 10), 18 with them; < 23 fails if either stop stops firing
    assert last.n_jac < 23
