"""Adding an illumination model or a sampler is one new file: the registries pick it up.

Each test writes ONE module into a scratch folder that it adds to the package's search
path (``physics/illumination`` or ``inference/samplers``), exactly the file a contributor
would add there, and edits nothing else.  It then checks that every consumer sees the new
component: for an illumination model the fit configuration, the parameter space, the
priors, the simulator's forward model and ``--illumination``; for a sampler ``--sampler``,
``sampler_names`` and ``run_sampler`` under the common contract.  The registries are
restored afterwards.  The real examples are ``physics/illumination/cosine_squared.py``
(test: ``tests/physics/test_illumination_cosine_squared.py``) and
``inference/samplers/nutpie_nuts.py`` (test: the registry-wide contract test in
``tests/inference/test_samplers.py``).
"""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

ILLUMINATION_FILE = '''
"""Linear taper on a pedestal, C + (1 - C)(1 - r'/R): one new file."""

from bayesoof.physics.illumination import (
    EDGE_TAPER,
    OFFSET_CENTRE,
    Illumination,
    register,
    tensor_module,
)


def linear_demo(x, y, radius, c_dB, x0=0.0, y0=0.0, module=None):
    m = module or tensor_module()
    C = 10.0 ** (c_dB / 20.0)
    r = m.sqrt((x - x0) ** 2 + (y - y0) ** 2) / radius
    return C + (1.0 - C) * (1.0 - r)


register(Illumination("linear_demo", linear_demo, (EDGE_TAPER, *OFFSET_CENTRE),
                      description="linear taper on a pedestal"))
'''

SAMPLER_FILE = '''
"""Random-walk Metropolis on the whitened density: one new file."""

import time

import numpy as np

from bayesoof.inference.samplers.base import RawDraws, Sampler, register


def run(density, *, draws, tune, chains, seed, jitter=0.1, progressbar=None, step=1.4):
    t0 = time.perf_counter()
    logp = density.logp_batch()
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, jitter, (chains, density.dim))
    lp = logp(z)
    out, lps = np.empty((chains, draws, density.dim)), np.empty((chains, draws))
    for i in range(tune + draws):
        prop = z + step * rng.standard_normal(z.shape)
        lq = logp(prop)
        accept = np.log(rng.uniform(size=chains)) < lq - lp
        z[accept], lp[accept] = prop[accept], lq[accept]
        if i >= tune:
            out[:, i - tune], lps[:, i - tune] = z, lp
    wall = time.perf_counter() - t0
    return RawDraws(out, {"lp": lps}, (tune + draws) * chains, draws * chains, wall, wall)


register(Sampler("rwm_demo", run, "random-walk Metropolis", options={"step": 1.4}))
'''


def _drop_file_in(package, name: str, text: str, folder, monkeypatch) -> str:
    """Write ``name``.py into ``folder``, put ``folder`` on ``package``'s path; module name."""
    (folder / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    return f"{package.__name__}.{name}"


def _forget(package, module: str) -> None:
    sys.modules.pop(module, None)
    short = module.rsplit(".", 1)[1]
    if hasattr(package, short):
        delattr(package, short)


def test_an_illumination_model_is_one_new_file(tmp_path, monkeypatch):
    from bayesoof.cli import app
    from bayesoof.inference.config import load_fit_config
    from bayesoof.inference.params import ParameterSpace
    from bayesoof.inference.priors import load_priors
    from bayesoof.physics import illumination as il
    from bayesoof.simulate import simulate

    monkeypatch.setattr(il, "_REGISTRY", dict(il._REGISTRY))
    module = _drop_file_in(il, "linear_demo", ILLUMINATION_FILE, tmp_path, monkeypatch)
    try:
        assert "linear_demo" in il.available_illuminations()
        cfg = load_fit_config({"fit": {"illumination": "linear_demo"}})
        sp = ParameterSpace.from_config(cfg, 3, 1e-4, radius=50.0)
        assert sp.illum_names == ("c_dB", "x0", "y0")
        assert sp.upper[sp.illum_index["x0"]] == 0.2 * 50.0  # the registry's rule, in m
        pri = load_priors({"illumination": {"c_dB": {"dist": "normal", "mu": -12.0,
                                                     "sigma": 2.0}}})
        assert pri["illumination"]["x0"]["per"] == "radius"
        args = app.build_parser().parse_args(["fit", "x.fits", "--illumination", "linear_demo"])
        assert args.illumination == "linear_demo"
        # the simulator's forward graph evaluates it: with c_dB = 0 dB (C = 1) the taper is
        # flat, so the beam equals the uniformly illuminated one to rounding (1e-12 of the
        # peak: the same graph with another constant aperture amplitude)
        kw = dict(n_grid=7, extent=3.0, d_z=(0.0,), snr=None)
        K = np.zeros(3)
        flat = simulate("effelsberg", K, illumination_kind="linear_demo",
                        illumination={"c_dB": 0.0, "x0": 0.0, "y0": 0.0}, **kw)
        ref = simulate("effelsberg", K, illumination_kind="parabolic",
                       illumination={"c_dB": 0.0, "q": 1.0, "x0": 0.0, "y0": 0.0}, **kw)
        peak = ref.maps[0].beam.max()
        np.testing.assert_allclose(flat.maps[0].beam, ref.maps[0].beam, atol=1e-12 * peak)
        tapered = simulate("effelsberg", K, illumination_kind="linear_demo",
                           illumination={"c_dB": -12.0, "x0": 0.0, "y0": 0.0}, **kw)
        assert tapered.maps[0].beam.max() < 0.9 * peak  # a taper lowers the peak
    finally:
        _forget(il, module)
    monkeypatch.undo()
    assert "linear_demo" not in il.available_illuminations()


def test_a_sampler_is_one_new_file(tmp_path, monkeypatch):
    import pymc as pm

    import bayesoof.inference.samplers as samplers
    from bayesoof.cli import app
    from bayesoof.inference.density import AffineDensity
    from bayesoof.inference.sample import run_sampler, sampler_names
    from bayesoof.inference.samplers import base

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    module = _drop_file_in(samplers, "rwm_demo", SAMPLER_FILE, tmp_path, monkeypatch)
    try:
        assert "rwm_demo" in samplers.available_samplers() and "rwm_demo" in sampler_names()
        args = app.build_parser().parse_args(["sample", "x.fits", "--sampler", "rwm_demo"])
        assert args.sampler == "rwm_demo"
        with pm.Model() as model:
            pm.Normal("x", 0.0, 1.0, shape=3)
        dens = AffineDensity(model, np.zeros(3), None, mode="FAST_RUN")
        # the contract of tests/inference/test_samplers.py: shapes, same seed -> same draws,
        # N(0, 1) moments (|mean| < 0.35, sd in [0.75, 1.3]: bounds stated there; random-walk
        # Metropolis at step 1.4 in 3-d has an autocorrelation time of ~10, inside them)
        kw = dict(draws=400, tune=300, chains=2, seed=5)
        a, b = run_sampler(dens, "rwm_demo", **kw), run_sampler(dens, "rwm_demo", **kw)
        assert a.z.shape == (2, 400, 3)
        np.testing.assert_array_equal(a.z, b.z)
        flat = a.z.reshape(-1, 3)
        assert np.all(np.abs(flat.mean(axis=0)) < 0.35), flat.mean(axis=0)
        assert np.all((flat.std(axis=0) > 0.75) & (flat.std(axis=0) < 1.3)), flat.std(axis=0)
        with pytest.raises(TypeError, match="unknown option"):
            run_sampler(dens, "rwm_demo", not_an_option=1, **kw)
    finally:
        _forget(samplers, module)
    monkeypatch.undo()
    assert "rwm_demo" not in samplers.available_samplers()
