"""The PyMC model: wiring (logp by hand), priors preset, free sets, dims, prior predictive.

Geometry: ``testing.make_case`` (Effelsberg, 9 mm, d_z = ±22 mm, 21 × 21 lattice over ±6
beam widths, asymmetric illumination and per-map pointing offsets), SNR 200, aperture
sampled by 48 pixels across the dish (shared by the simulation and the model: these
tests check the model's wiring, not the discretisation).
"""

from __future__ import annotations

import types

import numpy as np
import pytensor
import pytest
from scipy import stats

from bayesoof.inference.model import available_priors, build_model, load_priors, prior_predictive
from bayesoof.inference.params import ParameterSpace
from bayesoof.physics import zernike
from bayesoof.physics.aperture import ApertureGrid
from bayesoof.physics.forward import ForwardModel
from bayesoof.testing import make_case, reference_power

R = 50.0
SAMPLING = ApertureGrid.across(R, 48)


@pytest.fixture(scope="module")
def case():
    c = make_case("effelsberg", order=3, n_grid=21, snr=200.0, seed=5, sampling=SAMPLING)
    fm = ForwardModel(c.maps, c.telescope, 3, sampling=SAMPLING)
    return c, fm


def _start(c, fm):
    peak = float(np.max(fm.observed))
    return {"K": c.K, **c.illumination, "amp": [peak / 0.6] * 3, "offset": [0.0] * 3,
            "pointing": c.pointing}


def _point(model, values: dict) -> dict:
    """Value-variable point (PyMC's unconstrained space) for constrained ``values``."""
    ip = model.initial_point()
    out = {}
    for v in model.value_vars:
        rv = model.values_to_rvs[v]
        x = np.asarray(values[rv.name], float)
        tr = model.rvs_to_transforms.get(rv)
        out[v.name] = x if tr is None else np.asarray(
            tr.forward(pytensor.tensor.as_tensor(x), *rv.owner.inputs).eval())
        assert out[v.name].shape == np.shape(ip[v.name])
    return out


# ------------------------------------------------------------------ priors preset
def test_default_priors_preset_is_installed_and_documented():
    assert "default" in available_priors()
    p = load_priors()
    assert 0.1 <= p["zernike"]["rms"] <= 0.25  # waves of rms phase per mode (the brief)
    assert p["illumination"]["c_dB"] == {"dist": "uniform", "lower": -25.0, "upper": -1.0}
    assert p["illumination"]["q"] == {"dist": "uniform", "lower": 1.0, "upper": 2.0}
    merged = load_priors({"zernike": {"rms": 0.2}})
    assert merged["zernike"]["rms"] == 0.2 and merged["zernike"]["tilt_rms"] == 0.1
    with pytest.raises(ValueError, match="unknown prior preset"):
        load_priors("no-such-preset")


# ------------------------------------------------------------------ wiring
@pytest.mark.parametrize("variant", ["known_normal", "per_map_student"])
def test_logp_equals_loglikelihood_plus_logpriors_by_hand(case, variant):
    """compile_logp at a point = Σ log N(data | a P + b, σ) + Σ log priors (+ Jacobians).

    The model beam by hand comes from the independent NumPy reference of the forward
    model (``testing.reference_power``: complex128 DFT of the aperture field); the priors
    from scipy.stats with the preset's parameters.  Tolerance: 1e-9 relative to the
    log-likelihood magnitude (~1e4): the reference and the graph agree to ~1e-12 of the
    peak per sample, so the difference of the sums is at the 1e-10 level.
    """
    c, fm = case
    noise, lik = ("known", "normal") if variant == "known_normal" else ("per_map", "student_t")
    model = build_model(fm, noise=noise, likelihood=lik, tilt="pointing",
                        free_illumination=("c_dB", "q", "x0", "y0"), start=_start(c, fm))
    info = model.bayesoof
    assert info.noise == noise and info.likelihood == lik and info.tilt == "pointing"
    rng = np.random.default_rng(1)
    # a point away from the start, inside every support
    vals = {
        "K": c.K[info.free_j] + rng.normal(0, 0.01, info.free_j.size),
        "c_dB": -13.0, "q": 1.25, "x0": 1.5, "y0": -2.0,
        "amp": np.array([0.95, 1.0, 1.05]) * float(np.max(fm.observed)) / 0.6,
        "offset": np.array([0.01, -0.02, 0.005]),
        "pointing": c.pointing * 1.1,
        "sigma": np.array([1.1, 0.9, 1.0]) * float(np.median(fm.sigma)),
    }
    point = _point(model, vals)
    K_full = np.zeros(len(fm.nl))
    K_full[info.free_j] = vals["K"]
    illum = {k: vals[k] for k in ("c_dB", "q", "x0", "y0")}
    power = reference_power(fm, K_full, illum, vals["pointing"])
    idx = fm.map_index
    mu = vals["amp"][idx] * power + vals["offset"][idx]
    pri = info.priors
    scale = info.data_scale
    if noise == "known":
        loglik = stats.norm.logpdf(fm.observed, mu, fm.sigma).sum()
    else:
        loglik = stats.t.logpdf(fm.observed, pri["noise"]["nu"], mu, vals["sigma"][idx]).sum()
    rms = np.array([zernike.mode_rms(*fm.nl[j]) for j in info.free_j])
    frac = pri["illumination"]["x0"]["upper"]  # ±0.2 R: the registry's x0, y0 prior, per radius
    logprior = (
        stats.norm.logpdf(vals["K"], 0.0, pri["zernike"]["rms"] / rms).sum()
        + stats.uniform.logpdf(vals["c_dB"], -25.0, 24.0)
        + stats.uniform.logpdf(vals["q"], 1.0, 1.0)
        + stats.uniform.logpdf(vals["x0"], -frac * R, 2 * frac * R)
        + stats.uniform.logpdf(vals["y0"], -frac * R, 2 * frac * R)
        + stats.halfnorm.logpdf(vals["amp"], scale=pri["amplitude"]["scale"] * scale).sum()
        + stats.norm.logpdf(vals["offset"], 0.0, pri["offset"]["scale"] * scale).sum()
        + stats.norm.logpdf(vals["pointing"], 0.0,
                            pri["pointing"]["scale"] * fm.wavelength / (2 * R)).sum()
    )
    if noise == "per_map":
        logprior += stats.halfnorm.logpdf(vals["sigma"], scale=pri["noise"]["scale"] * scale).sum()
    # Jacobians of PyMC's transforms: interval log((x-a)(b-x)/(b-a)), log: log x
    def interval(x, a, b):
        return np.log((x - a) * (b - x) / (b - a))
    logjac = (interval(vals["c_dB"], -25.0, -1.0) + interval(vals["q"], 1.0, 2.0)
              + interval(vals["x0"], -frac * R, frac * R)
              + interval(vals["y0"], -frac * R, frac * R) + np.log(vals["amp"]).sum())
    if noise == "per_map":
        logjac += np.log(vals["sigma"]).sum()
    expected = loglik + logprior
    got_nojac = float(model.compile_logp(jacobian=False, mode="JAX")(point))
    got_jac = float(model.compile_logp(jacobian=True, mode="JAX")(point))
    tol = 1e-9 * abs(loglik)
    assert abs(got_nojac - expected) < tol, (got_nojac, expected, got_nojac - expected)
    assert abs(got_jac - (expected + logjac)) < tol, (got_jac - expected - logjac)


def test_two_data_sets_from_the_same_pieces(case):
    """A model over two data sets built from add_priors + one add_likelihood per set.

    K and the illumination are shared (one set of variables), amp and offset are per data
    set (prefix ``b_``).  compile_logp (no Jacobian) at a point = the two per-set
    Gaussian log-likelihoods, each around the NumPy reference of its forward model, plus
    every prior from scipy.stats.  Tolerance as in the single-set test: 1e-9 of the
    log-likelihood magnitude (reference and graph agree to ~1e-12 of the peak per sample).
    """
    import pymc as pm

    from bayesoof.inference.model import add_likelihood, add_priors

    c_a, fm_a = case
    c_b = make_case("effelsberg", order=3, n_grid=13, snr=150.0, seed=9, sampling=SAMPLING,
                    d_z=(-0.03, 0.0, 0.03))
    fm_b = ForwardModel(c_b.maps, c_b.telescope, 3, sampling=SAMPLING)
    spaces = []
    for fm in (fm_a, fm_b):
        sp = ParameterSpace.standard(3, "parabolic", 3, d_z=fm.data.d_z)
        sp.set_values({"K": c_a.K, **c_a.illumination}, "start")
        sp.set("amp", float(np.max(fm.observed)) / 0.6, free=True)
        sp.set("offset", 0.0, free=True)
        spaces.append(sp)
    shared = spaces[0]
    shared.set("K", free=True)
    shared.free[0] = False  # piston
    shared.set("c_dB", free=True)
    pri = load_priors()
    scales = [{"data": float(np.max(np.abs(fm.observed))), "beam": fm.wavelength / (2 * R),
               "radius": R} for fm in (fm_a, fm_b)]
    coords = {"sample_a": np.arange(fm_a.observed.size),
              "sample_b": np.arange(fm_b.observed.size), "map_b": ["m0", "m1", "m2"]}
    with pm.Model(coords=coords) as model:
        va = add_priors(shared, pri, scales[0])
        vb = add_priors(spaces[1], pri, scales[1], prefix="b_")
        vb.update({k: va[k] for k in ("K", *shared.illum_names)})  # the shared blocks
        for fm, sp, vals, tag in ((fm_a, shared, va, "a"), (fm_b, spaces[1], vb, "b")):
            add_likelihood(fm, vals, sp, noise="known", sigma=fm.sigma, likelihood="normal",
                           nu=1.0, sigma_prior=1.0, sigma_start=None, name=f"beam_{tag}",
                           dims=(f"sample_{tag}", "map" if tag == "a" else "map_b"))
    assert {v.name for v in model.free_RVs} == {"K", "c_dB", "amp", "offset", "b_amp",
                                                  "b_offset"}
    assert {v.name for v in model.observed_RVs} == {"beam_a", "beam_b"}
    rng = np.random.default_rng(4)
    free_j = np.flatnonzero(shared.free_of("K"))
    vals = {"K": c_a.K[free_j] + rng.normal(0, 0.01, free_j.size), "c_dB": -13.0,
            "amp": np.array([0.95, 1.0, 1.05]) * float(np.max(fm_a.observed)) / 0.6,
            "offset": np.array([0.01, -0.02, 0.005]),
            "b_amp": np.array([1.02, 0.97, 1.0]) * float(np.max(fm_b.observed)) / 0.6,
            "b_offset": np.array([-0.01, 0.0, 0.015])}
    K_full = np.array(c_a.K, float)
    K_full[free_j] = vals["K"]
    illum = dict(c_a.illumination, c_dB=vals["c_dB"])
    loglik = 0.0
    for fm, amp, off in ((fm_a, vals["amp"], vals["offset"]),
                         (fm_b, vals["b_amp"], vals["b_offset"])):
        mu = amp[fm.map_index] * reference_power(fm, K_full, illum) + off[fm.map_index]
        loglik += stats.norm.logpdf(fm.observed, mu, fm.sigma).sum()
    rms = np.array([zernike.mode_rms(*fm_a.nl[j]) for j in free_j])
    logprior = (stats.norm.logpdf(vals["K"], 0.0, pri["zernike"]["rms"] / rms).sum()
                + stats.uniform.logpdf(vals["c_dB"], -25.0, 24.0))
    for sc, amp, off in ((scales[0], vals["amp"], vals["offset"]),
                         (scales[1], vals["b_amp"], vals["b_offset"])):
        logprior += (stats.halfnorm.logpdf(amp, scale=pri["amplitude"]["scale"] * sc["data"]).sum()
                     + stats.norm.logpdf(off, 0.0, pri["offset"]["scale"] * sc["data"]).sum())
    got = float(model.compile_logp(jacobian=False, mode="JAX")(_point(model, vals)))
    expected = loglik + logprior
    assert abs(got - expected) < 1e-9 * abs(loglik), (got, expected, got - expected)


# ------------------------------------------------------------------ free sets, dims
def test_dims_coords_and_fixed_parameters(case):
    c, fm = case
    model = build_model(fm, start=_start(c, fm))  # defaults: tilts free, c_dB and q free
    info = model.bayesoof
    names = {v.name for v in model.free_RVs}
    assert names == {"K", "c_dB", "q", "amp", "offset"}
    assert info.tilt == "free" and 0 not in info.free_j  # piston always fixed
    assert list(model.coords["zernike"]) == zernike.coeff_names(3)[1:]
    assert list(model.named_vars_to_dims["K"]) == ["zernike"]
    assert list(model.named_vars_to_dims["amp"]) == ["map"]
    assert list(info.coords["n"]) == [n for n, _ in fm.nl[1:]]
    assert list(info.coords["l"]) == [m for _, m in fm.nl[1:]]
    np.testing.assert_array_equal(info.coords["d_z"], [-0.022, 0.0, 0.022])
    assert info.noise == "known"  # the simulated maps carry σ
    # x0, y0 fixed at the start (the asymmetric illumination), not model variables
    assert info.start["x0"] == c.illumination["x0"]


def test_model_follows_the_quick_fit_free_set(case):
    """A FitResult-like source: the free set and start come from its ParameterSpace."""
    c, fm = case
    params = _start(c, fm) | {"K": c.K, "pointing": c.pointing}
    params["K"] = c.K.copy()
    params["K"][[1, 2]] = 0.0
    space = ParameterSpace.standard(3, fm.illumination, 3, with_pointing=True,
                                    d_z=fm.data.d_z)
    space.set_values(params)
    space.free[space.slice_of("K")] = [(n, m) not in ((0, 0), (1, -1), (1, 1), (3, 1))
                                       for n, m in fm.nl]
    space.set("c_dB", free=True)
    space.set("amp", free=True)
    space.set("pointing", free=True)
    fake = types.SimpleNamespace(forward=fm, space=space, sigma=fm.sigma, cov=None)
    model = build_model(fake)
    info = model.bayesoof
    assert info.tilt == "pointing"
    assert {v.name for v in model.free_RVs} == {"K", "c_dB", "amp", "pointing"}
    assert list(model.named_vars_to_dims["pointing"]) == ["map", "uv"]
    free = [lab for lab in zernike.coeff_names(3)[3:] if lab != "K(3,1)"]
    assert list(model.coords["zernike"]) == free  # K(3,1) held fixed by the fit stays fixed
    assert info.start["K"][zernike.nl_to_j(3, 1)] == c.K[zernike.nl_to_j(3, 1)]
    assert not info.free["offset"]
    np.testing.assert_array_equal(info.start["offset"], 0.0)
    ip = model.initial_point()
    np.testing.assert_allclose(ip["pointing"], c.pointing)
    np.testing.assert_allclose(ip["K"], c.K[info.free_j])


def test_build_model_errors(case):
    c, fm = case
    with pytest.raises(ValueError, match="noise must be one of"):
        build_model(fm, noise="guess")
    with pytest.raises(ValueError, match="likelihood must be one of"):
        build_model(fm, likelihood="cauchy")
    with pytest.raises(ValueError, match="no coefficient"):
        build_model(fm, free_illumination=("c_dB", "width"))
    fm2 = ForwardModel(c.maps, c.telescope, 1, sampling=SAMPLING)
    fm2.sigma = None
    with pytest.raises(ValueError, match="needs a per-sample sigma"):
        build_model(fm2, noise="known")
    assert build_model(fm2).bayesoof.noise == "per_map"


# ------------------------------------------------------------------ prior predictive
def test_prior_predictive_is_one_call(case):
    """Prior draws and the beams they predict; K's prior sd is rms / mode_rms.

    Tolerance: 100 draws × 9 modes of K mode_rms / rms ~ N(0, 1): the sample sd has a
    relative standard error 1/sqrt(1800) = 2.4%; 12% is 5 standard errors.
    """
    c, fm = case
    model = build_model(fm, start=_start(c, fm))
    idata = prior_predictive(model, draws=100, seed=3)
    beam = idata.prior_predictive["beam"]
    assert beam.shape == (1, 100, fm.observed.size)
    assert np.all(np.isfinite(beam.values))
    K = idata.prior["K"].values.reshape(100, -1)
    rms = np.array([zernike.mode_rms(*fm.nl[j]) for j in model.bayesoof.free_j])
    s = np.std(K * rms / 0.1)
    assert abs(s - 1.0) < 0.12, s
    q = idata.prior["q"].values
    assert q.min() >= 1.0 and q.max() <= 2.0


def test_taper_coordinates_give_the_same_model_at_the_same_physical_point(case):
    """Issue 9: c_dB moved as its linear pedestal and q as itself (soft bounds; the prior
    table's ``coordinate``) instead of PyMC's logit: at the same physical point the log
    density without Jacobian is the same (1e-9 of |logp|: the same graph, round-off), and
    with Jacobian it differs by exactly the two Jacobian terms by hand."""
    from scipy.optimize import brentq

    c, fm = case
    kw = dict(noise="known", tilt="free", free_illumination=("c_dB", "q"), start=_start(c, fm))
    old = build_model(fm, **kw)
    new = build_model(fm, priors={"illumination": {"c_dB": {"coordinate": "pedestal"},
                                                   "q": {"coordinate": "soft"}}}, **kw)
    info = old.bayesoof
    vals = {"K": c.K[info.free_j] + 0.003, "c_dB": -13.0, "q": 1.25,
            "amp": np.array([0.95, 1.0, 1.05]) * float(np.max(fm.observed)) / 0.6,
            "offset": np.array([0.01, -0.02, 0.005])}
    p_old, p_new = _point(old, vals), _point(new, vals)
    assert "c_dB_pedestal__" in p_new and "q_soft__" in p_new and "q_interval__" in p_old
    both = [m.compile_fn([m.logp(jacobian=False), m.logp(jacobian=True)])(p)
            for m, p in ((old, p_old), (new, p_new))]  # one compile per model
    nojac, jac = [float(b[0]) for b in both], [float(b[1]) for b in both]
    assert abs(nojac[1] - nojac[0]) < 1e-9 * abs(nojac[0]), nojac

    def soft_logjac(x, lo, hi, to=lambda v: v, dto=lambda v: 1.0):
        """log |dx/du| by hand: y = to(x) = lo' + [softplus(k(u-lo')) - softplus(k(u-hi'))]/k,
        u by brentq (not the code's closed-form inverse), dy/du by central difference."""
        y_lo, y_hi, y = to(lo), to(hi), to(x)
        k = 50.0 / (y_hi - y_lo)

        def soft(u):
            return y_lo + (np.logaddexp(0, k * (u - y_lo)) - np.logaddexp(0, k * (u - y_hi))) / k

        u = brentq(lambda v: soft(v) - y, y_lo - 1, y_hi + 1, xtol=1e-15, rtol=1e-15)
        h = 1e-6 * (y_hi - y_lo)
        return np.log((soft(u + h) - soft(u - h)) / (2 * h) / dto(x))

    def interval(x, a, b):
        return np.log((x - a) * (b - x) / (b - a))

    def pedestal(v):
        return 10 ** (v / 20)

    def dpedestal(v):  # dC/dc_dB
        return np.log(10) / 20 * 10 ** (v / 20)

    expected = (soft_logjac(-13.0, -25.0, -1.0, pedestal, dpedestal) + soft_logjac(1.25, 1.0, 2.0)
                - interval(-13.0, -25.0, -1.0) - interval(1.25, 1.0, 2.0))
    assert abs((jac[1] - jac[0]) - expected) < 1e-9 * abs(nojac[0]), (jac[1] - jac[0], expected)
