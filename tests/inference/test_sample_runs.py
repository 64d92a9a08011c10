"""Sampler runs on a small posterior: reproducibility, interruption, diagnostics, products
by batch.

The simulated cases are in sample_cases.py.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
from sample_cases import quick_fit, simulated

from bayesoof.inference.diagnostics import chain_modes, diagnose
from bayesoof.inference.model import build_model
from bayesoof.inference.posterior import PosteriorResult
from bayesoof.inference.sample import AffineDensity, _chol, _whitened, laplace, run_sampler
from bayesoof.products.maps import phase_map, phase_map_stats
from bayesoof.products.rms import aperture_statistics, rms_draws
from bayesoof.simulate import random_coefficients


# ------------------------------------------------------------------ reproducibility
@pytest.fixture(scope="module")
def small_density():
    """Order 2, 21 × 21, the leg geometry held (``sample_legs=False``, not the default):
    the sampler mechanics tested with it do not involve the legs, and the leg coverage
    costs ~5 ms CPU per gradient on this aperture against ~1 ms for the rest (session 7)."""
    truth, data = simulated(2, seed=7, n_grid=21)
    fr = quick_fit(data, 2)
    model = build_model(fr, sample_legs=False)
    lap = laplace(model, mode="JAX")
    return model, lap


@pytest.fixture(scope="module")
def legs_density(small_density):
    """The same data's default model: the leg geometry sampled."""
    model = build_model(small_density[0].bayesoof.fit)
    return model, laplace(model, mode="JAX")


def test_laplace_conditions_on_what_the_model_holds(small_density, legs_density):
    """The leg geometry, free in the quick fit, held by the model (``sample_legs=False``): the
    whitening covariance is the quick fit's covariance of the rest GIVEN the legs (the
    Schur complement of the model that samples them, ``sample_legs=True``), not its
    marginal block, which whitened the conditional posterior badly (lat127: 17.5
    gradients per draw instead of 7.5)."""
    from bayesoof.inference.model import LEG_NAMES

    full_model, full = legs_density  # the default samples the legs
    assert not set(LEG_NAMES) & set(full_model.bayesoof.held)
    model, lap = small_density
    assert set(LEG_NAMES) <= set(model.bayesoof.held)
    keep = [full.labels.index(lab) for lab in lap.labels]
    legs = [i for i in range(len(full.labels)) if i not in keep]
    assert len(legs) == len(LEG_NAMES)
    s = full.cov
    schur = s[np.ix_(keep, keep)] - s[np.ix_(keep, legs)] @ np.linalg.solve(
        s[np.ix_(legs, legs)], s[np.ix_(legs, keep)])
    scale = np.sqrt(np.outer(np.diag(schur), np.diag(schur)))
    # 1e-6 of each entry's scale: rounding of two matrix inversions (inverting the plain
    # covariance, whose variances span ~4 decades, reached 1.8e-6 here; the correlation
    # form laplace._conditional uses passes)
    assert np.max(np.abs(lap.cov - schur) / scale) < 1e-6
    # and it matters here: the marginal block differs by > 1 % of a scale somewhere
    assert np.max(np.abs(s[np.ix_(keep, keep)] - schur) / scale) > 0.01


def test_curved_whitening_follows_the_physical_leg_values(legs_density):
    """The sampler's map z -> u (sample._whitened) is the Laplace approximation at the MAP,
    has a constant Jacobian (so the density in z needs no correction), and moves every
    other coordinate linearly with the *physical* leg values, not with their logit
    coordinates (density.AffineDensity, "curved whitening")."""
    model, lap = legs_density
    dens = _whitened(model, lap, "JAX")
    legs = dens.curved_index
    assert [dens.label_of()[i] for i in legs] == ["leg_half_width_interval__",
                                                   "shade_half_angle_interval__"]
    rest = np.setdiff1d(np.arange(dens.dim), legs)
    assert np.any(dens.curve[rest]) and not np.any(dens.curve[legs])
    # the linear part is a square root of the Laplace covariance: 1e-9 of the scale is
    # rounding of one Cholesky factorisation
    scale = np.sqrt(np.outer(np.diag(lap.cov), np.diag(lap.cov)))
    assert np.max(np.abs(dens.chol @ dens.chol.T - lap.cov) / scale) < 1e-9

    def jacobian(z, eps=1e-5):
        return np.array([(dens.to_u(z + eps * e) - dens.to_u(z - eps * e)) / (2 * eps)
                         for e in np.eye(dens.dim)]).T

    # at the centre the map's Jacobian is chol (the curved term starts at second order);
    # far out (z ~ 2.5 sd) it differs from chol, but its determinant is chol's: central
    # differences of a smooth map at step 1e-5 are good to ~1e-9 relative, 1e-6 allowed
    np.testing.assert_allclose(jacobian(np.zeros(dens.dim)), dens.chol, atol=1e-7)
    z = np.random.default_rng(1).normal(0.0, 2.5, dens.dim)
    jac = jacobian(z)
    assert np.max(np.abs(jac - dens.chol)) > 1e-3  # it is curved there
    sign, logdet = np.linalg.slogdet(jac)
    assert sign > 0 and abs(logdet - np.linalg.slogdet(dens.chol)[1]) < 1e-6
    # moving the legs alone (z_rest = 0): the rest follows the regression on the physical
    # values, u_rest - c_rest = curve · Δθ / θ'(c), θ' of the interval transform
    # (θ - lo)(hi - θ)/(hi - lo), for Δθ up to 3 sd (equal to rounding: 1e-8)
    zl = np.zeros((7, dens.dim))
    zl[:, : legs.size] = np.linspace(-3.0, 3.0, 7)[:, None] * np.array([1.0, -0.5])
    names = ("leg_half_width", "shade_half_angle")
    theta = dens.constrained_fn("FAST_COMPILE")(np.vstack([np.zeros(dens.dim), zl]))
    phys = np.stack([theta[n] for n in names], axis=1)
    space = model.bayesoof.space
    lo = np.array([space.lower[space.slice_of(n)][0] for n in names])
    hi = np.array([space.upper[space.slice_of(n)][0] for n in names])
    slope = (phys[0] - lo) * (hi - phys[0]) / (hi - lo)
    expected = ((phys[1:] - phys[0]) / slope) @ dens.curve[rest].T
    u = dens.to_u(zl)
    np.testing.assert_allclose(u[:, rest] - dens.center[rest], expected, atol=1e-8)
    # and that is not the affine map: some coordinate moves by > 0.05 of its Laplace sd
    # more (measured 0.12 sd on c_dB with this seed)
    off = np.abs(u[:, rest] - dens.center[rest] - zl @ dens.chol[rest].T)
    assert np.max(off / np.sqrt(np.diag(lap.cov)[rest])) > 0.05


@pytest.mark.parametrize("sampler", ["numpyro", "pymc", "emcee"])
def test_same_seed_same_draws(small_density, sampler):
    model, lap = small_density
    mode = "FAST_RUN" if sampler == "pymc" else "JAX"
    dens = AffineDensity(model, lap.u_mode, _chol(lap.cov), mode=mode)
    kw = dict(draws=20, tune=50, chains=2, compile_mode=mode)
    a = run_sampler(dens, sampler, seed=3, **kw)
    b = run_sampler(dens, sampler, seed=3, **kw)
    c = run_sampler(dens, sampler, seed=4, **kw)
    assert a.z.shape[1] == 20 and a.z.size
    np.testing.assert_array_equal(a.z, b.z)
    assert not np.array_equal(a.z, c.z)


# ------------------------------------------------------------------ interruption
def test_interrupt_keeps_draws(small_density):
    """Ctrl-C during sampling: what was drawn is kept and flagged."""
    model, lap = small_density
    dens = AffineDensity(model, lap.u_mode, _chol(lap.cov), mode="JAX")
    run_sampler(dens, "numpyro", draws=50, tune=50, chains=2, seed=0, chunk=25)
    key = next(k for k in dens._fns if k[0] == "nuts")
    init_fn, step_fn = dens._fns[key]
    calls = {"n": 0}

    def interrupted_step(state):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return step_fn(state)

    dens._fns[key] = (init_fn, interrupted_step)
    raw = run_sampler(dens, "numpyro", draws=50, tune=50, chains=2, seed=0, chunk=25)
    assert raw.interrupted and raw.z.shape[1] == 25  # 3 chunks of 25: 50 warm-up + 25 kept
    # emcee: the density raises after 40 batched evaluations (2 per iteration: ~19
    # iterations, 10 of them burn-in)
    batch = dens.logp_batch()
    dens._fns[("batch", "JAX")] = _raise_after(batch, 40)
    raw = run_sampler(dens, "emcee", draws=100, tune=10, seed=0)
    assert raw.interrupted and 0 < raw.z.shape[1] < 100


def _raise_after(fn, n):
    count = {"n": 0}

    def wrapped(Z):
        count["n"] += 1
        if count["n"] > n:
            raise KeyboardInterrupt
        return fn(Z)

    return wrapped


def test_interrupt_before_any_draw_keeps_the_map(small_density, monkeypatch):
    import importlib

    smp = importlib.import_module("bayesoof.inference.sample")  # the module

    model, lap = small_density
    fr = model.bayesoof.fit

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(smp, "sample_model", boom)
    with pytest.warns(UserWarning, match="only the MAP"):
        res = smp.sample(fr.data, telescope="effelsberg", order=2, fit_result=fr)
    assert isinstance(res, PosteriorResult) and res.interrupted and res.idata is None
    assert res.fit is fr and not res.converged


# ------------------------------------------------------------------ diagnostics
def test_chain_modes_detects_disagreeing_chains():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4, 200, 5))
    assert not chain_modes(draws)["multimodal"]
    draws[3] += np.array([0, 0, 8.0, 0, 0])  # one chain in a far mode
    lp = np.zeros((4, 200))
    lp[3] -= 5.0
    m = chain_modes(draws, lp)
    assert m["multimodal"] and m["primary"] == [0, 1, 2] and len(m["modes"]) == 2


def test_diagnose_says_plainly_what_failed():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 100))
    x[0] += 3.0  # one chain elsewhere: R-hat >> 1.01
    idata = az.from_dict(
        posterior={"a": x},
        sample_stats={"diverging": np.eye(4, 100, dtype=bool),
                      "tree_depth": np.full((4, 100), 3),
                      "energy": rng.normal(size=(4, 100))},
    )
    d = diagnose(idata)
    assert not d["converged"]
    text = " ".join(d["problems"])
    assert "R-hat" in text and "divergent" in text and "ESS" in text
    assert d["divergences"] == 4


def test_diagnose_judges_the_draws_as_sampled_when_told():
    """The verdict on K is the sampled K's (the stop rule's), not the adjusted K's.

    Sampled: two coefficients sharing a unit-variance common part, with chain offsets of
    ±0.05 in their small difference (R-hat ≈ 1.001, converged).  The adjustment's affine
    map can single out that difference (here: it becomes a coefficient of sd 1 with
    chain offsets of ±1, R-hat ≫ 1.01), which the stop rule never tested.
    """
    rng = np.random.default_rng(3)
    common = rng.normal(size=(4, 1000))
    small = 0.05 * (rng.normal(size=(4, 1000)) + np.array([0.0, 1.0, 0.0, -1.0])[:, None])
    sampled = np.stack([common + small, common - small], axis=-1)
    adjusted = np.stack([small / 0.05, common], axis=-1)
    idata = az.from_dict(posterior={"K": adjusted, "K_noise_only": sampled},
                         dims={"K": ["zernike"], "K_noise_only": ["zernike"]},
                         coords={"zernike": ["K(1,-1)", "K(1,1)"]})
    judged = diagnose(idata, var_names=["K"], replace={"K": "K_noise_only"})
    assert judged["converged"], judged["problems"]
    assert judged["r_hat_max"] < 1.01 and judged["worst_r_hat"].startswith("K[")
    plain = diagnose(idata, var_names=["K"])
    assert not plain["converged"] and plain["r_hat_max"] > 1.1
    assert plain["worst_r_hat"] == "K[K(1,-1)]"


def test_diagnose_flags_a_saturated_safeguard_cap_but_not_a_design_cap():
    """Every transition at depth 10 (NUTS's usual safeguard) is a problem; every transition
    at nutpie's design cap 2 (TREEDEPTH_DESIGN_MAX = 4) is reported, not a problem."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 500))

    def at(depth):
        return az.from_dict(posterior={"a": x}, sample_stats={
            "tree_depth": np.full((4, 500), depth), "energy": rng.normal(size=(4, 500))})

    safeguard = diagnose(at(10), max_treedepth=10)
    design = diagnose(at(2), max_treedepth=2)
    assert not safeguard["converged"] and "maximum tree depth" in " ".join(safeguard["problems"])
    assert design["converged"] and design["max_treedepth_fraction"] == 1.0


# ------------------------------------------------------------------ products by batch
def test_phase_map_stats_matches_quick_fit_map_and_is_batch_invariant():
    K = random_coefficients(4, 0.05, seed=2)
    rng = np.random.default_rng(0)
    draws = K + 0.002 * rng.normal(size=(300, K.size))
    a = phase_map_stats(draws, 50.0, n=41, wavelength=0.009)
    b = phase_map_stats(draws, 50.0, n=41, wavelength=0.009, max_bytes=8 * 300 * 7)
    for k in ("phase_mean", "phase_sd", "phase_lo", "phase_hi"):
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-12)
    one = phase_map_stats(K[None, :], 50.0, n=41)
    ref = phase_map(K, None, 50.0, 0.009, n=41)
    np.testing.assert_allclose(one["phase_mean"], ref.phase, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(one["x"], ref.x)


def test_rms_draws_match_products_definitions(small_density):
    model, _ = small_density
    fm = model.bayesoof.forward
    K = random_coefficients(2, 0.05, seed=3)
    illum = {"c_dB": -12.0, "q": 1.4, "x0": 0.0, "y0": 0.0}
    ref = aperture_statistics(K, None, fm, illum)
    got = rms_draws(np.tile(K, (3, 1)),
                    {k: np.full(3, v) if k == "c_dB" else v for k, v in illum.items()}, fm)
    for k in ("phase_rms", "phase_rms_weighted", "surface_rms", "ruze_weighted"):
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12)
    # per-draw illumination path (c_dB varies) gives the same where c_dB is the same
    mixed = rms_draws(np.tile(K, (2, 1)), {"c_dB": np.array([-12.0, -20.0]), "q": 1.4,
                                           "x0": 0.0, "y0": 0.0}, fm)
    np.testing.assert_allclose(mixed["phase_rms_weighted"][0], ref["phase_rms_weighted"],
                               rtol=1e-12)
    assert mixed["phase_rms_weighted"][1] != mixed["phase_rms_weighted"][0]
