"""Drift nuisance: per-map gain and baseline drift along the scan time (nuisances.py).

beam_i = a_i (1 + g_i t) P_i + b_i + c_i t, t the scan time in [-1/2, 1/2] (the sample
order in the file).  Checked: the scan time, the linear start solve against numpy's
lstsq, predict against a NumPy hand computation, the PyMC log density against scipy, and
the recovery of a known drift by the default fit.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesoof import testing as T
from bayesoof.data.containers import BeamMap
from bayesoof.inference.fit import solve_linear
from bayesoof.inference.nuisances import add_nuisance_blocks, scan_time
from bayesoof.inference.params import FitConfigError, ParameterSpace, load_fit_config
from bayesoof.physics.telescope import get_telescope

D_Z = (-0.022, 0.0, 0.022)


def test_scan_time_is_the_sample_order():
    """t = k/(n-1) - 1/2 per map, in file order (maps of different sizes)."""
    c = T.make_case("effelsberg", n_grid=5, extent=3.0, values=False)
    maps = c.maps.with_maps([c.maps.maps[0],
                             BeamMap(c.maps.maps[1].u[:7], c.maps.maps[1].v[:7],
                                     c.maps.maps[1].beam[:7], 0.0)])
    t = scan_time(maps)
    assert t.size == 25 + 7
    np.testing.assert_array_equal(t[:25], np.arange(25) / 24 - 0.5)
    np.testing.assert_array_equal(t[25:], np.arange(7) / 6 - 0.5)


def test_drift_blocks_priors_and_bad_config():
    tel = get_telescope("effelsberg")
    # defaults: the baseline drift free, the gain drift (not identified on typical maps) absent
    cfg = load_fit_config()
    sp = ParameterSpace.from_config(cfg, 3, 1e-4, d_z=D_Z, radius=tel.radius)
    add_nuisance_blocks(sp, cfg, tel, D_Z)
    assert sp.free[sp.slice_of("baseline_drift")].all() and not sp.has("gain_drift")
    cfg = load_fit_config({"drift": {"gain_free": True}})
    sp = ParameterSpace.from_config(cfg, 3, 1e-4, d_z=D_Z, radius=tel.radius)
    add_nuisance_blocks(sp, cfg, tel, D_Z)
    g, c = sp.block("gain_drift"), sp.block("baseline_drift")
    assert g.linear and c.linear  # after the far field: no transform in their Jacobian
    assert g.default_prior == {"dist": "normal", "mu": 0.0, "sigma": 0.05}
    assert c.default_prior == {"dist": "normal", "mu": 0.0, "sigma": 0.01, "per": "data"}
    assert np.all(sp.upper[sp.slice_of("gain_drift")] == 0.5)
    assert sp.free[sp.slice_of("gain_drift")].all()
    off = load_fit_config({"drift": {"gain_free": False, "baseline_free": False}})
    sp2 = ParameterSpace.from_config(off, 3, 1e-4, d_z=D_Z, radius=tel.radius)
    assert not add_nuisance_blocks(sp2, off, tel, D_Z).has("gain_drift")
    bad = load_fit_config({"drift": {"gain_limit": 3.0}})
    sp3 = ParameterSpace.from_config(bad, 3, 1e-4, d_z=D_Z, radius=tel.radius)
    with pytest.raises(FitConfigError, match="drift.gain_limit"):
        add_nuisance_blocks(sp3, bad, tel, D_Z)


@pytest.mark.parametrize("free", [(True, True, True, True), (True, False, True, True),
                                  (False, True, True, False), (True, True, False, True),
                                  (False, False, False, True)])
def test_linear_solve_matches_lstsq(free):
    """solve_linear = numpy lstsq of the weighted design [P, tP, 1, t] (free columns only,
    fixed terms moved to the right-hand side), to rounding (1e-9 relative)."""
    rng = np.random.default_rng(3)
    n = 200
    p = rng.uniform(0, 1, n)
    t = np.arange(n) / (n - 1) - 0.5
    w = rng.uniform(0.5, 2.0, n)
    truth = np.array([900.0, 0.04, 50.0, 6.0])  # a, g, b, c
    fixed = np.array([950.0, -0.02, 40.0, 3.0])
    use = np.where(free, truth, fixed)
    d = use[0] * (1 + use[1] * t) * p + use[2] + use[3] * t + rng.normal(0, 1, n) / w
    got = solve_linear(p, d, w, t, free, fixed)
    # independent: the 4-column weighted design, fixed columns subtracted
    cols = {0: p, 1: t * p, 2: np.ones(n), 3: t}
    fa, fg, fb, fc = free
    rhs = d.copy()
    if not fa:
        rhs -= fixed[0] * (p if fg else (1 + fixed[1] * t) * p)
    if fa and not fg:
        cols[0] = (1 + fixed[1] * t) * p
    if not fb:
        rhs -= fixed[2]
    if not fc:
        rhs -= fixed[3] * t
    keep = [k for k, f in enumerate(free) if f]
    A = np.column_stack([cols[k] for k in keep]) * w[:, None]
    x, *_ = np.linalg.lstsq(A, rhs * w, rcond=None)
    ref = dict(zip(keep, x, strict=True))
    a = ref.get(0, fixed[0])
    want = [a, ref[1] / a if fg else fixed[1], ref.get(2, fixed[2]), ref.get(3, fixed[3])]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # and the noise is small enough that the solve recovers the truth of the free terms
    # (the weighted lstsq sd of g is ~0.01 here: 5 sd)
    np.testing.assert_allclose(got[[k for k in keep if k != 1]],
                               truth[[k for k in keep if k != 1]], rtol=0.05)


def _drift_data(seed=4):
    """Order-2 Effelsberg maps (15 x 15 over ±3 λ/D, SNR 300) with per-map drifts written
    along the sample order: gain g = (0.40, -0.30, 0.45), baseline c = (4, -6, 5) % of the
    in-focus peak (known truth).  The gain drifts are large because g is only weakly
    identified (nuisances.py: near the peak a gain ramp is a pointing shift); the maps span
    only ±3 beam widths so that the beam fills more of the scan time."""
    from bayesoof.simulate import simulate

    base = T.make_case("effelsberg", order=2, n_grid=15, extent=3.0, values=False)
    amp = np.array([1000.0, 1100.0, 950.0])
    off = np.array([30.0, 50.0, 40.0])
    sim = simulate(base.telescope, base.K, 0.009, np.array(D_Z),
                   u=[m.u for m in base.maps.maps], v=[m.v for m in base.maps.maps],
                   amp=amp, offset=off, snr=300, seed=seed)
    g = np.array([0.40, -0.30, 0.45])
    peak = max(np.max(m.beam) for m in sim.maps)
    c = np.array([0.04, -0.06, 0.05]) * peak
    maps = []
    for k, m in enumerate(sim.maps):
        t = np.arange(m.size) / (m.size - 1) - 0.5
        beam = (m.beam - off[k]) * (1 + g[k] * t) + off[k] + c[k] * t
        maps.append(BeamMap(m.u, m.v, beam, m.d_z, m.sigma, m.name))
    return sim.with_maps(maps), g, c


@pytest.fixture(scope="module")
def drift_fit():
    """The fit of :func:`_drift_data` with both drifts free (order 2 only: one compile)."""
    import bayesoof

    data, g, c = _drift_data()
    res = bayesoof.fit(data, "effelsberg", order=2, orders=[2],
                       config={"misfit": {"remedy": "never"}, "drift": {"gain_free": True}})
    return res, g, c


def test_fit_recovers_a_known_drift(drift_fit):
    """The fit with both drifts free finds each map's g and c within 4 Laplace sd of the
    truth (a 4-sd miss has probability 6e-5 when the sd is right); c is identified (sd
    below a tenth of the 4-6 % drift), g only weakly (sd 0.1-0.15 measured, asserted below
    half the 0.3-0.45 drift: nonzero at > 2 sd).  Without the drift terms (zeroed at the
    same solution) the maps misfit: reduced chi2 > 2 (the drifts are far above the
    noise); with them the fit is adequate: reduced chi2 < 1.2 (3 x 225 samples: sd of the
    reduced chi2 0.05)."""
    from bayesoof.inference.likelihood import beam_from_power

    res, g, c = drift_fit
    sd = dict(zip(res.free_names, res.sd, strict=True))
    p = res.params
    for i in range(3):
        assert abs(p["gain_drift"][i] - g[i]) < 4 * sd[f"gain_drift[{i}]"], (p, sd)
        assert abs(p["baseline_drift"][i] - c[i]) < 4 * sd[f"baseline_drift[{i}]"], (p, sd)
        assert sd[f"baseline_drift[{i}]"] < 0.1 * abs(c[i])
        assert sd[f"gain_drift[{i}]"] < 0.5 * abs(g[i])
    assert res.reduced_chi2 < 1.2
    no_drift = beam_from_power(res.forward, res.power, p["amp"], p["offset"])
    r = (res.forward.observed - no_drift) / res.sigma
    assert np.sum(r * r) / res.dof > 2.0
    # summary.json reports the drifts per map and where t comes from (schema-checked)
    from bayesoof.inference.results.summary import fit_summary
    from bayesoof.io.summary import check_summary

    m = check_summary(dict(fit_summary(res)))["maps"][2]
    assert m["gain_drift"]["name"] == "gain_drift[2]" and "sample order" in m["scan_time"]
    assert m["baseline_drift"]["value"] == pytest.approx(p["baseline_drift"][2])


def test_pymc_logp_with_drift_matches_scipy(drift_fit):
    """The PyMC model's log density with the drift blocks: moving only g and c changes it
    by the scipy Normal log densities of the data around a (1 + g t) P + b + c t (P of the
    fit, which g and c do not move) plus those of the priors g ~ N(0, 0.05),
    c ~ N(0, 0.01 x data peak): to 1e-6 relative of the change."""
    from bayesoof.inference.model import build_model

    res, _, _ = drift_fit
    model = build_model(res)
    assert {"gain_drift", "baseline_drift"} <= {v.name for v in model.free_RVs}
    logp = model.compile_logp(jacobian=False)
    point = model.initial_point()
    # the model is the best fit's (the aperture model error at 0: model_error.py)
    best = res.exact_model_last or res.last
    p = best.space.params_dict()
    P = best.power
    idx = res.forward.map_index
    t = scan_time(res.data)
    sigma = np.asarray(model.bayesoof.sigma, float)
    peak = float(np.max(np.abs(res.forward.observed)))

    def hand(gv, cv):
        mu = p["amp"][idx] * (1 + gv[idx] * t) * P + p["offset"][idx] + cv[idx] * t
        return (stats.norm.logpdf(res.forward.observed, mu, sigma).sum()
                + stats.norm.logpdf(gv, 0, 0.05).sum()
                + stats.norm.logpdf(cv, 0, 0.01 * peak).sum())

    g0, c0 = np.asarray(point["gain_drift"]), np.asarray(point["baseline_drift"])
    np.testing.assert_allclose(g0, p["gain_drift"])  # the model starts at the fit
    g1, c1 = g0 + np.array([0.01, -0.02, 0.015]), c0 + np.array([3.0, -2.0, 4.0])
    moved = dict(point, gain_drift=g1, baseline_drift=c1)
    want = hand(g1, c1) - hand(g0, c0)
    got = logp(moved) - logp(point)
    assert abs(want) > 10  # the move is a real change of the density
    assert got == pytest.approx(want, rel=1e-6)
