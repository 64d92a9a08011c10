"""The sampler registry: every registered runner honours the contract of samplers/base.py.

Target: a 3-dimensional standard normal written as a PyMC model and seen through an
AffineDensity (the form every sampler receives).  Each runner must return draws of the
right shape, the same draws for the same seed, and sample the target: 400 draws x 2
chains of a N(0, 1) coordinate have a mean with standard error ~ 1/sqrt(800 / IAT); a
bound of 0.35 on |mean| and [0.75, 1.3] on the sd holds for an integrated
autocorrelation time up to ~25 (emcee's walkers at this length), and fails for a sampler
that ignores the density (e.g. stuck at the start: sd 0) or samples the wrong scale.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

from bayesoof.cli import app
from bayesoof.inference.density import AffineDensity, have_jax
from bayesoof.inference.sample import run_sampler, sampler_names
from bayesoof.inference.samplers import available_samplers, get_sampler


@pytest.fixture(scope="module")
def gaussian():
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0, shape=3)
    return model


def _density(model, name):
    mode = "JAX" if get_sampler(name).compile_mode == "JAX" and have_jax() else "FAST_RUN"
    return AffineDensity(model, np.zeros(3), None, mode=mode)


@pytest.mark.parametrize("name", sorted(available_samplers()))
def test_every_registered_sampler_honours_the_contract(gaussian, name):
    spec = get_sampler(name)
    if spec.available():
        pytest.skip(spec.available())
    dens = _density(gaussian, name)
    kw = dict(draws=400, tune=300, chains=2, seed=5)
    a = run_sampler(dens, name, **kw)
    b = run_sampler(dens, name, **kw)
    assert a.z.ndim == 3 and a.z.shape[1:] == (400, 3)
    assert a.z.shape[0] == (2 if not spec.ensemble else a.info["walkers"])
    np.testing.assert_array_equal(a.z, b.z)  # same seed, same draws
    flat = a.z.reshape(-1, 3)
    assert np.all(np.abs(flat.mean(axis=0)) < 0.35), flat.mean(axis=0)
    sd = flat.std(axis=0)
    assert np.all((sd > 0.75) & (sd < 1.3)), sd
    assert a.n_grad_sampling > 0 and not a.interrupted


def test_cli_offers_every_registered_sampler():
    parser = app.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["sample"]
    action = next(a for a in sub._actions if a.dest == "sampler")
    assert set(action.choices) == set(sampler_names()) == {"nuts", *available_samplers()}
    assert {"numpyro", "pymc", "emcee", "nutpie"} <= set(available_samplers())


def test_unknown_sampler_and_option_are_named():
    with pytest.raises(ValueError, match="sampler must be one of"):
        get_sampler("gibbs")
    with pytest.raises(TypeError, match="unknown option"):
        run_sampler(None, "emcee", not_an_option=1)


def test_c_compiled_density_holds_no_pymc_op():
    """The C-compiled density (nutpie's, PyMC's, the Laplace step's) holds no PyMC Op.

    A PyMC Op with C code (the parameter check ``CheckParameterValue``) would be keyed in
    PyTensor's shared C-module cache, and every later cache refresh -- the quick fit's
    included -- would import PyMC, ArviZ and matplotlib to unpickle that key.  The plain
    ``pytensor.function`` of the same graph keeps the check (so this test can fail; it is
    compiled with the Python linker, which writes nothing to the C-module cache).
    """
    import pytensor
    from pytensor.compile.mode import Mode

    from bayesoof.inference.density import compile_function

    with pm.Model() as model:
        s = pm.HalfNormal("s", 1.0)
        pm.Normal("x", 0.0, s, observed=np.array([0.3, -0.2]))
    dens = AffineDensity(model, np.zeros(1), None, mode="FAST_RUN")

    def pymc_ops(fn):
        return [type(n.op).__module__ for n in fn.maker.fgraph.toposort()
                if type(n.op).__module__.startswith("pymc")]

    outs = [dens.logp_graph, dens.grad_graph]
    assert pymc_ops(pytensor.function([dens.z], outs, mode=Mode(linker="py",
                                                                optimizer="fast_run")))
    fn = compile_function([dens.z], outs, mode="FAST_RUN")
    assert not pymc_ops(fn)
    lp, g = fn(np.zeros(1))
    assert np.isfinite(lp) and np.all(np.isfinite(g))


def test_nutpie_stops_at_the_first_converged_check_keeping_the_first_draws(gaussian):
    """A StopRule is asked in order at its checks only; the run keeps the first n draws.

    The rule here says "converged" from 150 draws on, so the run must stop at the check
    150 (not 100, not the cap) and keep exactly the first 150 draws of each chain of the
    fixed run with the same seed (NUTS after warm-up does not depend on what follows).
    The stopped run's chains are in 2 worker processes, the fixed run's in threads of this
    process: the draws must not depend on that either.
    """
    from bayesoof.inference.samplers.base import StopRule

    dens = _density(gaussian, "nutpie")
    asked = []

    def converged(z, stats):
        asked.append(z.shape[1])
        assert z.shape[0] == 2 and np.isfinite(z).all() and stats["lp"].shape == z.shape[:2]
        return z.shape[1] >= 150

    rule = StopRule(converged, first=100, every=50)
    assert rule.checks(400) == [100, 150, 200, 250, 300, 350]
    kw = dict(tune=200, chains=2, seed=4)
    stopped = get_sampler("nutpie").run(dens, draws=400, stop=rule, processes=2, **kw)
    fixed = run_sampler(dens, "nutpie", draws=400, processes=1, **kw)
    assert asked == [100, 150]
    assert stopped.z.shape == (2, 150, 3) and stopped.info["stopped_at"] == 150
    np.testing.assert_array_equal(stopped.z, fixed.z[:, :150])
    assert stopped.stats["n_steps"].shape == (2, 150) and not stopped.interrupted


def test_nutpie_in_processes_keeps_the_draws_on_ctrl_c_and_checkpoints(gaussian, monkeypatch):
    """Ctrl-C in this process (here raised by the checkpoint callback, at the first look
    after 1 ms) stops the worker processes; the run keeps what every chain drew: fewer
    than the 20 000 asked, the first n draws of the uninterrupted run with the same seed,
    flagged interrupted; the checkpoint got the draws so far."""
    from bayesoof.inference.samplers import nutpie_chains

    monkeypatch.setattr(nutpie_chains, "POLL_S", 0.001)
    monkeypatch.setattr("bayesoof.inference.checkpoint.INTERVAL", 0.0)
    dens = _density(gaussian, "nutpie")
    seen = []

    def checkpoint(raw):
        seen.append(raw)
        if raw.z.shape[1] > 0:
            raise KeyboardInterrupt

    kw = dict(tune=100, chains=2, seed=8)
    raw = get_sampler("nutpie").run(dens, draws=20_000, processes=2, on_checkpoint=checkpoint,
                                    **kw)
    n = raw.z.shape[1]
    assert raw.interrupted and 0 < n < 20_000
    assert seen and seen[-1].interrupted and seen[-1].z.shape[1] <= n
    fixed = run_sampler(dens, "nutpie", draws=n, processes=1, **kw)
    np.testing.assert_array_equal(raw.z, fixed.z)


def test_nutpie_caps_the_tree_depth_while_short_trees_mix(gaussian):
    """By default nutpie's trees on the C density stop at depth NUTPIE_MAX_DEPTH (2: at most
    4 leapfrog steps) when they mix, as on this 3-d normal.  With the cap at 10 the same run
    takes more than 4 steps on some draws (trees of depth 3), so the assertion can fail."""
    from bayesoof.inference.samplers.base import NUTPIE_MAX_DEPTH

    assert NUTPIE_MAX_DEPTH == 2
    dens = _density(gaussian, "nutpie")
    kw = dict(draws=200, tune=100, chains=2, seed=3, processes=1)
    capped = run_sampler(dens, "nutpie", **kw)
    free = run_sampler(dens, "nutpie", max_tree_depth=10, **kw)
    assert capped.info["max_tree_depth"] == 2
    assert "short_trees_dropped_gradients" not in capped.info
    assert capped.stats["n_steps"].max() <= 4 and capped.stats["tree_depth"].max() <= 2
    assert free.stats["n_steps"].max() > 4 and free.info["max_tree_depth"] == 10


def test_nutpie_starts_again_with_long_trees_when_short_ones_do_not_mix(gaussian, monkeypatch):
    """When the probe says short trees do not mix (here made to, with an ESS per draw no
    sampler reaches), the run is dropped after NUTPIE_PROBE_DRAWS draws and made again with
    depth 10: the same draws as a run asked for depth 10, a warning, the dropped run's
    gradients counted, and raw.info saying what happened."""
    from bayesoof.inference.samplers import nutpie_nuts

    monkeypatch.setattr(nutpie_nuts, "NUTPIE_PROBE_ESS_PER_DRAW", 1e6)
    dens = _density(gaussian, "nutpie")
    kw = dict(draws=300, tune=100, chains=2, seed=6, processes=1)
    with pytest.warns(RuntimeWarning, match="do not mix"):
        fell = run_sampler(dens, "nutpie", **kw)
    long = run_sampler(dens, "nutpie", max_tree_depth=10, **kw)
    np.testing.assert_array_equal(fell.z, long.z)
    dropped = fell.info["short_trees_dropped_gradients"]
    assert fell.info["max_tree_depth"] == 10 and "short_trees_dropped_gradients" not in long.info
    assert dropped > 0 and fell.n_grad == long.n_grad + dropped


def test_convergence_rule_is_the_verdicts_rhat_ess_test(gaussian):
    """The rule passes 4 chains of 500 independent N(0, 1) draws (R-hat ~ 1.001, ESS ~ 2000)
    and fails when one chain sits 0.5 sd off (R-hat 1.015 > 1.01) or with 60 draws per
    chain (bulk / tail ESS ~ 270 / 290 < 400)."""
    from bayesoof.inference.sample import convergence_rule

    dens = _density(gaussian, "nutpie")
    z = np.random.default_rng(0).normal(size=(4, 500, 3))
    assert convergence_rule(dens).converged(z, {})
    shifted = z.copy()
    shifted[0] += 0.5
    assert not convergence_rule(dens).converged(shifted, {})
    assert not convergence_rule(dens).converged(z[:, :60], {})


def test_until_converged_needs_a_sampler_that_can_stop(gaussian):
    with pytest.raises(ValueError, match="cannot stop when converged"):
        run_sampler(_density(gaussian, "pymc"), "pymc", until_converged=True)
