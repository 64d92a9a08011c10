"""Raw draws on disk: periodic checkpoints while sampling, and a lossless round trip."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

from bayesoof.inference import checkpoint
from bayesoof.inference.sample import AffineDensity, LaplaceResult, run_sampler


@pytest.fixture(scope="module")
def density():
    with pm.Model() as model:
        pm.Normal("a", 0.0, 1.0, shape=2)
        pm.HalfNormal("s", 1.0)
    return AffineDensity(model, np.zeros(3), mode="FAST_RUN")


def test_emcee_checkpoints_periodically(density, monkeypatch):
    monkeypatch.setattr(checkpoint, "INTERVAL", 0.0)  # every step, for the test
    seen = []
    raw = run_sampler(density, "emcee", draws=6, tune=4, seed=1, walkers=8,
                      compile_mode="FAST_RUN", on_checkpoint=seen.append)
    kept = [r.z.shape[1] for r in seen]
    # one checkpoint per step; kept draws grow 0 (burn-in) ... 6, all marked interrupted
    assert len(seen) == 10 and kept == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]
    assert all(r.interrupted for r in seen)
    np.testing.assert_array_equal(seen[-1].z, raw.z)  # the last one holds every draw
    assert not raw.interrupted


def test_pymc_checkpoints_periodically(density, monkeypatch):
    monkeypatch.setattr(checkpoint, "INTERVAL", 0.0)  # every iteration, for the test
    seen = []
    raw = run_sampler(density, "pymc", draws=6, tune=4, chains=2, seed=1, cores=1,
                      compile_mode="FAST_RUN", on_checkpoint=seen.append)
    kept = [r.z.shape[1] for r in seen]
    # cores=1 runs the chains in turn: one checkpoint per iteration of each chain; the kept
    # draws are cut to the slowest chain, so they grow only while chain 1 samples
    assert len(seen) == 20 and kept == [0] * 14 + [1, 2, 3, 4, 5, 6]
    assert all(r.interrupted and r.z.shape[0] == 2 for r in seen)
    np.testing.assert_array_equal(seen[-1].z, raw.z)  # the last one holds every draw
    for key, value in raw.stats.items():
        np.testing.assert_array_equal(seen[-1].stats[key], value, err_msg=key)
    assert seen[-1].n_grad == raw.n_grad
    assert not raw.interrupted


def test_save_and_load_raw_round_trip(density, tmp_path):
    raw = run_sampler(density, "emcee", draws=5, tune=2, seed=2, walkers=8,
                      compile_mode="FAST_RUN")
    lap = LaplaceResult(u_mode=np.arange(3.0), cov=np.eye(3) * 0.5, logp=-1.25,
                        converged=True, n_iter=4, message="ok", wall_time=0.1,
                        labels=["a[0]", "a[1]", "s_log__"])
    recipe = {"data": "/x/obs.fits", "telescope": "effelsberg", "order": 3,
              "fit_kwargs": {}, "priors": None, "model_kwargs": {}}
    path = checkpoint.save_raw(tmp_path, raw, density, lap, {"sampler": "emcee", "seed": 2},
                               recipe)
    back = checkpoint.load_raw(path)
    np.testing.assert_array_equal(back["raw"].z, raw.z)
    np.testing.assert_array_equal(back["raw"].stats["lp"], raw.stats["lp"])
    assert back["raw"].n_grad == raw.n_grad and back["raw"].info == raw.info
    np.testing.assert_array_equal(back["chol"], density.chol)
    assert back["curve"].shape == density.curve.shape == (3, 0)  # no curved variable here
    np.testing.assert_array_equal(back["laplace"].cov, lap.cov)
    assert back["laplace"].labels == lap.labels and back["recipe"] == recipe
    assert back["value_vars"] == density.names and back["partial"] is False
    with pytest.raises(FileNotFoundError, match="no raw draws"):
        checkpoint.load_raw(tmp_path / "elsewhere")
