"""Full posteriors: NUTS (numpyro on JAX, or PyMC's own) and emcee, started from the MAP.

All samplers see the same log-density: the ``pm.Model`` of :mod:`bayesoof.inference.model` (one
forward graph, one residual definition), written in *whitened* coordinates

    u = u_MAP + L z,      L = chol(Σ_u),   Σ_u = D Σ_θ Dᵀ,

where ``u`` are PyMC's unconstrained values of the free parameters, ``u_MAP`` the quick
fit's MAP through PyMC's transforms, Σ_θ the quick fit's Laplace covariance of its free
parameters (the same :class:`~bayesoof.inference.params.ParameterSpace` entries, in the
same order) and D = du/dθ at the MAP (:func:`laplace`): the ONE Laplace approximation of
a run, reported in the summary, used to whiten.  Near the mode the posterior in ``z`` is
close to N(0, I), so the strong correlations of OOF holography (taper, amplitude and
defocus terms; tilts and pointing) no longer slow the samplers down: NUTS with a
diagonal mass matrix, or emcee's affine-invariant moves, see a nearly isotropic target.
The Jacobian of the map is constant, so the draws of ``z`` mapped back through ``u`` are
draws of the model's posterior (whitening changes the efficiency, never the target).

Every chain starts inside the mode found by the quick fit: ``z ~ N(0, jitter² I)``
(jitter 0.1 by default) instead of PyMC's U(-1, 1) jitter of the unconstrained values,
which for K in waves lands chains in far phase-wrapped modes.  Chains that still
disagree are reported (:mod:`bayesoof.inference.diagnostics`), never averaged.

Samplers (one argument, ``sampler``):

* ``"numpyro"`` -- numpyro's NUTS kernel on the JAX backend (the log-density graph is
  compiled by pytensor's JAX linker), driven in chunks of iterations so that one
  compilation serves warm-up and sampling and Ctrl-C keeps the finished chunks.  Chains
  run in parallel when JAX has one CPU device per core: :func:`sample` sets
  ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` when JAX has not started
  yet (else chains are vectorised on one device).
* ``"pymc"`` -- PyMC's NUTS on the same graph (C backend, BLAS limited to one thread):
  always available; chains in worker processes unless JAX has already started in the
  process (fork() is then unsafe, chains run in turn).
* ``"nuts"`` -- numpyro when JAX is installed, else PyMC.
* ``"emcee"`` -- emcee's ensemble sampler on the same log-density (vectorised over the
  walkers with ``jax.vmap``; walkers start from the Laplace approximation), returned as
  InferenceData with walkers as chains.

Measured (bench/bench_sample.py: order 5, three 97 × 97 maps, 27 free parameters, 2-core
CPU): the whitened posterior needs tree depth 3 (7 gradients per draw), no divergence,
and gives bulk ESS ≈ 2 per draw; numpyro and PyMC reach similar ESS per second of
sampling (130-140), numpyro paying ~8 s of compilation per run, PyMC none after the
first (pytensor's C cache).  Defaults: 4 chains, 500 warm-up (300 sufficed in every
case measured), 1000 draws (R-hat's tail variant needs about that many to stay below
1.01 with ~30 parameters).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from bayesoof.inference.threads import blas_threads

__all__ = [
    "SAMPLERS",
    "AffineDensity",
    "have_jax",
    "laplace",
    "run_sampler",
    "sample",
    "sample_model",
]

SAMPLERS = ("nuts", "numpyro", "pymc", "emcee")


def have_jax() -> bool:
    """Whether JAX and numpyro are importable (the fast NUTS backend)."""
    try:
        import jax  # noqa: F401
        import numpyro  # noqa: F401
    except ImportError:
        return False
    from bayesoof.physics import jax_ops  # noqa: F401  (JAX versions of pytensor's FFT Ops)

    return True


def _default_mode() -> str:
    """Compile mode for NumPy-side functions: JAX when installed, else pytensor's default."""
    return "JAX" if have_jax() else pytensor.config.mode


def _jax_initialised() -> bool:
    """Whether JAX's runtime (and its thread pool) has started in this process."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # noqa: BLE001 - private API moved: assume the worst
        return True


def _host_devices() -> None:
    """Give JAX one CPU device per core, so that numpyro runs chains in parallel.

    Only possible before JAX starts (it reads ``XLA_FLAGS`` once); a device count already
    in ``XLA_FLAGS`` is respected.  Same effect as ``numpyro.set_host_device_count``.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _jax_initialised() or "xla_force_host_platform_device_count" in flags:
        return
    n = os.cpu_count() or 1
    if n > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


# ====================================================================== log density
class AffineDensity:
    """Log posterior density of a ``pm.Model`` in coordinates ``z``: ``u = center + chol @ z``.

    ``u`` is the flat vector of the model's value variables (PyMC's unconstrained
    parameters, in ``model.value_vars`` order); the Jacobian terms of PyMC's transforms
    are included (``model.logp(jacobian=True)``), the constant log|det chol| is not.

    Parameters
    ----------
    model : pm.Model
    center : array (d,)
        Flat unconstrained point.
    chol : array (d, d), optional
        Linear map (default identity).
    mode : str, optional
        Pytensor compile mode of the NumPy-side functions: "JAX" (default when JAX is
        installed) or a C/Numba mode such as "FAST_RUN".
    """

    def __init__(self, model: pm.Model, center, chol=None, mode: str | None = None):
        self.model = model
        self.mode = mode or _default_mode()
        self.value_vars = list(model.value_vars)
        self.names = [v.name for v in self.value_vars]
        ip = model.initial_point()
        self.shapes = [np.shape(ip[n]) for n in self.names]
        self.sizes = [int(np.prod(s, dtype=int)) for s in self.shapes]
        self.dim = int(sum(self.sizes))
        self.center = np.asarray(center, float).reshape(self.dim)
        self.chol = np.eye(self.dim) if chol is None else np.asarray(chol, float)
        self.z = pt.vector("z", dtype="float64")
        u = pt.as_tensor_variable(self.center) + pt.dot(pt.as_tensor_variable(self.chol), self.z)
        self.replacements = {}
        i = 0
        for v, shp, size in zip(self.value_vars, self.shapes, self.sizes, strict=True):
            piece = u[i : i + size].reshape(shp) if shp else u[i]
            self.replacements[v] = pt.specify_shape(piece, shp)
            i += size
        logp = model.logp(jacobian=True)
        self.logp_graph = pytensor.clone_replace(logp, replace=self.replacements)
        self.grad_graph = pt.grad(self.logp_graph, self.z)
        self._fns: dict = {}

    # ---------------------------------------------------------------- flat helpers
    def flatten(self, point: dict) -> np.ndarray:
        """Flat vector of a point dict of value variables (name -> array)."""
        return np.concatenate([np.ravel(np.asarray(point[n], float)) for n in self.names])

    def unflatten(self, u) -> dict:
        """Point dict of value variables from a flat vector ``u``."""
        out, i = {}, 0
        for n, shp, size in zip(self.names, self.shapes, self.sizes, strict=True):
            out[n] = np.asarray(u[i : i + size]).reshape(shp)
            i += size
        return out

    def to_u(self, z) -> np.ndarray:
        """Unconstrained values ``u = center + chol z`` (works on (..., d))."""
        return self.center + np.asarray(z, float) @ self.chol.T

    def label_of(self) -> list[str]:
        """One label per flat coordinate, e.g. ``K[3]``, ``c_dB_interval__``."""
        labels = []
        for n, size in zip(self.names, self.sizes, strict=True):
            labels += [n] if size == 1 and not self.shapes[self.names.index(n)] else [
                f"{n}[{k}]" for k in range(size)
            ]
        return labels

    # ---------------------------------------------------------------- compiled
    def logp_dlogp(self, mode: str | None = None):
        """NumPy callable ``z -> (logp, dlogp/dz)``; compiled once per mode."""
        mode = mode or self.mode
        key = ("logp_dlogp", mode)
        if key not in self._fns:
            fn = pytensor.function([self.z], [self.logp_graph, self.grad_graph], mode=mode)

            def call(z, _fn=fn):
                lp, g = _fn(np.asarray(z, float))
                return float(lp), np.asarray(g, float)

            self._fns[key] = call
        return self._fns[key]

    def jax_logp(self):
        """JAX function ``z -> logp`` (scalar), for numpyro and vectorised emcee."""
        if "jax" not in self._fns:
            from pymc.sampling.jax import get_jaxified_graph

            f = get_jaxified_graph(inputs=[self.z], outputs=[self.logp_graph])
            self._fns["jax"] = lambda z, _f=f: _f(z)[0]
        return self._fns["jax"]

    def logp_batch(self, mode: str | None = None):
        """NumPy callable ``Z (n, d) -> logp (n,)`` (jax.vmap when JAX is installed)."""
        mode = mode or self.mode
        key = ("batch", mode)
        if key not in self._fns:
            if mode == "JAX":
                import jax

                f = jax.jit(jax.vmap(self.jax_logp()))

                def call(Z, _f=f):
                    out = np.asarray(_f(np.asarray(Z, float)), float)
                    return np.where(np.isfinite(out), out, -np.inf)
            else:
                single = pytensor.function([self.z], self.logp_graph, mode=mode)

                def call(Z, _f=single):
                    out = np.array([float(_f(z)) for z in np.asarray(Z, float)])
                    return np.where(np.isfinite(out), out, -np.inf)

            self._fns[key] = call
        return self._fns[key]

    def constrained_fn(self, mode: str | None = None):
        """Callable ``Z (n, d) -> dict name -> (n, *shape)`` of the model's free variables.

        Values are on the constrained scale (e.g. ``q`` in [1, 2]); names are those of
        ``model.free_RVs`` and ``model.deterministics``.
        """
        mode = mode or self.mode
        key = ("constrained", mode)
        if key in self._fns:
            return self._fns[key]
        model = self.model
        wanted = [v.name for v in model.free_RVs] + [v.name for v in model.deterministics]
        outs = [v for v in model.unobserved_value_vars if v.name in wanted]
        names = [v.name for v in outs]
        graphs = pytensor.clone_replace(outs, replace=self.replacements)
        if mode == "JAX":
            import jax
            from pymc.sampling.jax import get_jaxified_graph

            f = jax.jit(jax.vmap(get_jaxified_graph(inputs=[self.z], outputs=graphs)))

            def call(Z, _f=f):
                Z = np.asarray(Z, float)
                res = {n: [] for n in names}
                for s in range(0, Z.shape[0], 4096):
                    vals = _f(Z[s : s + 4096])
                    for n, v in zip(names, vals, strict=True):
                        res[n].append(np.asarray(v, float))
                return {n: np.concatenate(v) for n, v in res.items()}
        else:
            fn = pytensor.function([self.z], graphs, mode=mode)

            def call(Z, _f=fn):
                rows = [_f(z) for z in np.asarray(Z, float)]
                return {n: np.array([np.asarray(r[k], float) for r in rows])
                        for k, n in enumerate(names)}

        self._fns[key] = call
        return call


# ====================================================================== mode + Laplace
@dataclass
class LaplaceResult:
    """Whitening centre and Laplace covariance in PyMC's unconstrained coordinates."""

    u_mode: np.ndarray
    cov: np.ndarray
    logp: float
    converged: bool
    n_iter: int
    message: str
    wall_time: float
    labels: list[str] = field(default_factory=list)


def laplace(model: pm.Model, mode: str | None = None) -> LaplaceResult:
    """The quick fit's Laplace approximation, in PyMC's unconstrained coordinates.

    The sampler whitens with the ONE Laplace covariance of the run, the quick fit's:
    centre ``u_MAP`` = the model's initial point (the fit's MAP through PyMC's
    transforms) and covariance ``Σ_u = D Σ_θ Dᵀ``, with Σ_θ the quick fit's Laplace
    covariance of its free parameters under the likelihood the model samples (the same
    entries in the same order: the model's variables are the blocks of the fit's
    :class:`ParameterSpace`; see :func:`_fit_record`) and D = du/dθ at the MAP (diagonal:
    PyMC's transforms act entry by entry).  No second optimisation runs.

    Coordinates the quick fit has no variance for (the per-map σ of ``noise='per_map'``,
    entries freed by :func:`build_model`'s options, or every coordinate of a model built
    from a forward model alone) get ``1 / (-∂²logp/∂u_i²)`` at the centre, by central
    differences of the exact gradient (a diagonal Laplace approximation), uncorrelated
    with the rest.  ``mode`` is the compile mode of the log density.
    """
    t0 = time.perf_counter()
    info = model.bayesoof
    base = AffineDensity(model, _flat(model, model.initial_point()), mode=mode)
    fg = base.logp_dlogp()
    lp, _ = fg(np.zeros(base.dim))
    if not np.isfinite(lp):
        raise FloatingPointError(
            "the log posterior is not finite at the start point (the quick fit's MAP): "
            "check the priors admit it"
        )
    fit = info.fit
    cov = np.zeros((base.dim, base.dim))
    known = np.zeros(base.dim, bool)
    rec = _fit_record(fit, info.likelihood)
    if rec is not None:
        theta_pos = {int(f): t for t, f in enumerate(rec.space.free_index)}
        full_of = np.full(base.dim, -1)  # full-vector index of each coordinate
        slope = np.ones(base.dim)  # du/dθ of each coordinate
        i = 0
        for v, shp, size in zip(base.value_vars, base.shapes, base.sizes, strict=True):
            rv = model.values_to_rvs[v]
            if info.space.has(rv.name):
                sl = info.space.slice_of(rv.name)
                full_of[i : i + size] = np.arange(sl.start, sl.stop)[info.space.free[sl]]
                slope[i : i + size] = _transform_slope(model, rv, base.center[i : i + size], shp)
            i += size
        rows = np.array([theta_pos.get(int(f), -1) for f in full_of])
        known = rows >= 0
        k = np.flatnonzero(known)
        sub = np.asarray(rec.cov, float)[np.ix_(rows[k], rows[k])]
        cov[np.ix_(k, k)] = sub * np.outer(slope[k], slope[k])
    rest = np.flatnonzero(~known)
    for i in rest:  # diagonal Laplace of what the quick fit did not fit
        h = 1e-4
        e = np.zeros(base.dim)
        e[i] = h
        curv = -(fg(e)[1][i] - fg(-e)[1][i]) / (2.0 * h)
        cov[i, i] = 1.0 / curv if curv > 0 else 1.0
    msg = "quick fit's Laplace covariance mapped to PyMC's unconstrained coordinates"
    if rest.size:
        labels = base.label_of()
        msg += f"; diagonal Laplace for {', '.join(labels[i] for i in rest)}"
    return LaplaceResult(
        u_mode=base.center.copy(),
        cov=cov,
        logp=float(lp),
        converged=bool(getattr(fit, "converged", True)),
        n_iter=0,
        message=msg,
        wall_time=time.perf_counter() - t0,
        labels=base.label_of(),
    )


def _fit_record(fit, likelihood: str):
    """The quick fit's record whose Laplace covariance belongs to the model's likelihood.

    When the fit switched a misfit likelihood on but the model samples the noise-only
    one (the default with the sandwich covariance), that is the noise-only record
    (``fit.plain_last``); otherwise the last order.  None without a fit.
    """
    if fit is None or getattr(fit, "cov", None) is None:
        return None
    if likelihood != "misfit" and getattr(fit, "plain_last", None) is not None:
        return fit.plain_last
    return fit.last if hasattr(fit, "last") else None


def _transform_slope(model, rv, u: np.ndarray, shape) -> np.ndarray:
    """du/dθ of PyMC's transform of ``rv`` at the unconstrained values ``u`` (flat)."""
    tr = model.rvs_to_transforms.get(rv)
    if tr is None:
        return np.ones(u.size)
    eps = 1e-6
    args = rv.owner.inputs
    xp = np.asarray(tr.backward(pt.as_tensor((u + eps).reshape(shape)), *args).eval())
    xm = np.asarray(tr.backward(pt.as_tensor((u - eps).reshape(shape)), *args).eval())
    return 2 * eps / np.ravel(xp - xm)


def _flat(model, point: dict) -> np.ndarray:
    names = [v.name for v in model.value_vars]
    return np.concatenate([np.ravel(np.asarray(point[n], float)) for n in names])


def _chol(cov: np.ndarray) -> np.ndarray:
    cov = 0.5 * (cov + cov.T)
    for eps in (0.0, 1e-12, 1e-10, 1e-8, 1e-6):
        try:
            return np.linalg.cholesky(cov + eps * np.diag(np.diag(cov)))
        except np.linalg.LinAlgError:
            continue
    w, v = np.linalg.eigh(cov)
    return v * np.sqrt(np.clip(w, 1e-300, None))


# ====================================================================== samplers
#: what sampler="nuts" means when JAX is installed (chosen by bench/bench_sample.py)
DEFAULT_NUTS = "numpyro"


def resolve_sampler(sampler: str) -> str:
    """The sampler a name stands for: 'nuts' -> numpyro with JAX, else PyMC."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "nuts":
        return DEFAULT_NUTS if have_jax() else "pymc"
    if sampler == "numpyro" and not have_jax():
        raise ImportError("sampler='numpyro' needs jax and numpyro (pip install bayesoof[jax])")
    return sampler

@dataclass
class RawDraws:
    """What a sampler returns: whitened draws and per-draw statistics."""

    z: np.ndarray  # (chains, draws, d)
    stats: dict  # name -> (chains, draws)
    n_grad: int  # gradient (or density, for emcee) evaluations, warm-up included
    n_grad_sampling: int  # the same, after warm-up
    wall_time: float  # s, compilation included
    sampling_time: float  # s, compilation excluded where it can be told apart
    interrupted: bool = False
    info: dict = field(default_factory=dict)


def _progress(progressbar, label: str, total: int, unit: str = "iterations"):
    """A :class:`bayesoof.inference.progress.Progress` when wanted (None: in notebooks)."""
    from bayesoof.inference import progress

    return progress.Progress(label, total, unit=unit) if progress.wanted(progressbar) else None


@contextlib.contextmanager
def _logging_off():
    """Silence the logging module (emcee logs multi-line notices through the root logger)."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _ckpt_interval() -> float:
    from bayesoof.inference.checkpoint import INTERVAL

    return INTERVAL


def _jitter(rng, chains: int, dim: int, scale: float) -> np.ndarray:
    return rng.normal(0.0, scale, size=(chains, dim))


def _run_numpyro(density, z0, draws, tune, seed, target_accept, max_tree_depth,
                 chain_method, chunk, progressbar=None, on_checkpoint=None) -> RawDraws:
    """numpyro's NUTS kernel driven in fixed-size chunks of iterations.

    One jitted function advances every chain by ``chunk`` iterations (``lax.scan`` of
    numpyro's ``sample_kernel``; warm-up adaptation is part of the kernel state), so the
    graph is compiled once for warm-up and sampling alike, and Ctrl-C between chunks
    keeps every finished iteration.  Chains are vectorised (``vmap``); with several JAX
    devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``) they are also split
    across devices (``pmap``), i.e. across CPU cores.
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc import hmc

    t0 = time.perf_counter()
    chains, d = z0.shape
    n_dev = jax.local_device_count()
    if chain_method == "auto":
        chain_method = "parallel" if n_dev > 1 and chains > 1 else "vectorized"
    groups = min(n_dev, chains) if chain_method == "parallel" else 1
    if chains % groups:
        groups = 1
    chain_method = "parallel" if groups > 1 else "vectorized"
    shape = (groups, chains // groups) if groups > 1 else (chains,)
    key = ("nuts", shape, tune, chunk, target_accept, max_tree_depth)
    if key not in density._fns:  # compiled once per density and settings
        f = density.jax_logp()
        init_kernel, sample_kernel = hmc(potential_fn=lambda z: -f(z), algo="NUTS")

        def init_one(z, key):
            return init_kernel(z, tune, step_size=1.0, target_accept_prob=target_accept,
                               max_tree_depth=max_tree_depth, rng_key=key)

        def advance(state):
            def body(s, _):
                s = sample_kernel(s)
                return s, (s.z, s.diverging, s.num_steps, s.energy, s.potential_energy,
                           s.accept_prob, s.adapt_state.step_size)

            return jax.lax.scan(body, state, None, length=chunk)

        if groups > 1:
            density._fns[key] = (jax.pmap(jax.vmap(init_one)), jax.pmap(jax.vmap(advance)))
        else:
            density._fns[key] = (jax.jit(jax.vmap(init_one)), jax.jit(jax.vmap(advance)))
    init_fn, step_fn = density._fns[key]
    keys = jax.random.split(jax.random.PRNGKey(int(seed)), chains)
    state = init_fn(jnp.asarray(z0).reshape(shape + (d,)), keys.reshape(shape + keys.shape[1:]))
    total = tune + draws
    out: list = []
    interrupted = False
    t_compiled = None
    def collect(interrupted: bool) -> RawDraws:
        wall = time.perf_counter() - t0
        names = ("z", "diverging", "num_steps", "energy", "potential_energy", "accept_prob",
                 "step_size")
        if out:
            cols = {n: np.concatenate([o[k] for o in out], axis=1)[:, :total]
                    for k, n in enumerate(names)}
        else:
            cols = {n: np.zeros((chains, 0) + ((d,) if n == "z" else ())) for n in names}
        n_steps_all = cols["num_steps"]
        keep = slice(min(tune, n_steps_all.shape[1]), None)
        n_steps = n_steps_all[:, keep]
        depth = np.ceil(np.log2(n_steps + 1.0)).astype(int)
        stats = {
            "diverging": cols["diverging"][:, keep].astype(bool),
            "n_steps": n_steps,
            "tree_depth": depth,
            "energy": cols["energy"][:, keep],
            "lp": -cols["potential_energy"][:, keep],
            "acceptance_rate": cols["accept_prob"][:, keep],
            "step_size": cols["step_size"][:, keep],
            "reached_max_treedepth": depth >= max_tree_depth,
        }
        per_iter = (wall - ((t_compiled or t0) - t0)) / max(len(out) - 1, 1) / chunk
        return RawDraws(
            z=cols["z"][:, keep], stats=stats, n_grad=int(np.sum(n_steps_all)),
            n_grad_sampling=int(np.sum(n_steps)), wall_time=wall,
            sampling_time=per_iter * max(n_steps.shape[1], 0),
            interrupted=interrupted or n_steps.shape[1] < draws,
            info={"chain_method": chain_method, "devices": int(groups), "chunk": int(chunk),
                  "first_chunk_time": (t_compiled - t0) if t_compiled else None},
        )

    prog = _progress(progressbar, f"numpyro NUTS, {chains} chains", chains * total)
    last_saved = time.perf_counter()
    try:
        done = 0
        while done < total:
            state, got = step_fn(state)
            got = [np.asarray(g).reshape((chains, chunk) + np.shape(g)[len(shape) + 1 :])
                   for g in got]
            out.append(got)
            done += chunk
            if t_compiled is None:
                t_compiled = time.perf_counter()
            if prog is not None:
                prog.update(chains * min(done, total), "warm-up" if done <= tune else "sampling")
            if on_checkpoint is not None and time.perf_counter() - last_saved > _ckpt_interval():
                on_checkpoint(collect(True))
                last_saved = time.perf_counter()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if prog is not None:
            prog.close("interrupted" if interrupted else "")
    return collect(interrupted)


def _run_pymc(density, z0, draws, tune, seed, target_accept, max_tree_depth, cores,
              compile_mode, progressbar=None) -> RawDraws:
    from pytensor.graph.replace import graph_replace

    t0 = time.perf_counter()
    chains, d = z0.shape

    with pm.Model() as zmodel:
        z = pm.Flat("z", shape=d)
        pm.Potential("logp", graph_replace(density.logp_graph, {density.z: z}, strict=False))
    kw = {}
    if compile_mode:
        kw["compile_kwargs"] = {"mode": compile_mode}
    prog = _progress(progressbar, f"PyMC NUTS, {chains} chains", chains * (tune + draws))
    callback = None
    if prog is not None:
        counted = [0]

        def callback(trace, draw, _prog=prog, _n=counted):  # once per iteration of a chain
            _n[0] += 1
            _prog.update(_n[0], "warm-up" if draw.tuning else "sampling")

    with zmodel, warnings.catch_warnings(), prog or contextlib.nullcontext():
        warnings.filterwarnings("ignore", message=".*[Tt]he number of samples is too small.*")
        step = pm.NUTS(target_accept=target_accept, max_treedepth=max_tree_depth, **kw)
        t_start = time.perf_counter()
        idata = pm.sample(
            draws=draws, tune=tune, chains=chains, cores=cores, step=step,
            initvals=[{"z": z0[c]} for c in range(chains)], random_seed=int(seed),
            progressbar=False, compute_convergence_checks=False,
            discard_tuned_samples=False, callback=callback,
            return_inferencedata=True,
        )
    wall = time.perf_counter() - t0
    post = idata.posterior["z"].values  # (chains, draws, d): kept draws only
    ss = idata.sample_stats
    warm = getattr(idata, "warmup_sample_stats", None)
    n_warm = int(np.sum(warm["n_steps"].values)) if warm is not None else 0
    interrupted = post.shape[1] < draws
    stats = {
        "diverging": ss["diverging"].values.astype(bool),
        "n_steps": ss["n_steps"].values,
        "tree_depth": ss["tree_depth"].values,
        "energy": ss["energy"].values,
        "lp": ss["lp"].values,
        "acceptance_rate": ss["acceptance_rate"].values,
        "step_size": ss["step_size"].values,
        "reached_max_treedepth": ss["reached_max_treedepth"].values,
    }
    n_steps_all = np.r_[n_warm, np.sum(stats["n_steps"])]
    return RawDraws(
        z=post, stats=stats, n_grad=int(np.sum(n_steps_all)),
        n_grad_sampling=int(np.sum(stats["n_steps"])), wall_time=wall,
        sampling_time=time.perf_counter() - t_start, interrupted=interrupted,
        info={"cores": cores, "compile_mode": compile_mode or pytensor.config.mode},
    )


def _run_emcee(density, draws, tune, seed, walkers, init_scale, thin, mode,
               progressbar=None, on_checkpoint=None) -> RawDraws:
    import emcee

    t0 = time.perf_counter()
    d = density.dim
    walkers = int(walkers or max(2 * d + 2, 32))
    walkers += walkers % 2
    if walkers < 2 * d:
        raise ValueError(f"emcee needs at least 2 x {d} = {2 * d} walkers for {d} free "
                         f"parameters (its stretch move pairs them), got {walkers}")
    logp = density.logp_batch(mode)
    rng = np.random.default_rng(seed)
    p0 = rng.normal(0.0, init_scale, size=(walkers, d))
    logp(p0[:2])  # compile outside the timed loop
    t_start = time.perf_counter()
    sampler = emcee.EnsembleSampler(walkers, d, logp, vectorize=True)
    sampler.random_state = np.random.RandomState(seed % 2**32).get_state()
    n_iter = 0
    interrupted = False
    total = tune + draws * thin
    def collect(interrupted: bool, final: bool = True) -> RawDraws:
        chain = sampler.get_chain()  # (steps, walkers, d)
        lp = sampler.get_log_prob()
        keep = slice(min(tune, chain.shape[0]), chain.shape[0], thin)
        z = np.swapaxes(chain[keep], 0, 1)
        lps = np.swapaxes(lp[keep], 0, 1)
        try:
            if not final:
                raise ValueError("periodic checkpoint: no autocorrelation time yet")
            with np.errstate(all="ignore"), warnings.catch_warnings(), _logging_off():
                warnings.simplefilter("ignore")  # emcee's "chain too short" notice: reported below
                tau = sampler.get_autocorr_time(discard=min(tune, chain.shape[0]), quiet=True)
        except Exception:  # noqa: BLE001 - too short chains
            tau = np.full(d, np.nan)
        return RawDraws(
            z=z, stats={"lp": lps}, n_grad=n_iter * walkers,
            n_grad_sampling=max(n_iter - tune, 0) * walkers,
            wall_time=time.perf_counter() - t0,
            sampling_time=time.perf_counter() - t_start,
            interrupted=interrupted,
            info={"walkers": walkers, "thin": thin,
                  "acceptance_fraction": float(np.mean(sampler.acceptance_fraction)),
                  "autocorr_time_max": float(np.nanmax(tau)) if np.any(np.isfinite(tau)) else None},
        )

    prog = _progress(progressbar, f"emcee, {walkers} walkers", total, unit="steps")
    last_saved = time.perf_counter()
    try:
        for _ in sampler.sample(p0, iterations=total, store=True, progress=False):
            n_iter += 1
            if prog is not None:
                prog.update(n_iter, "burn-in" if n_iter <= tune else "sampling")
            if on_checkpoint is not None and time.perf_counter() - last_saved > _ckpt_interval():
                on_checkpoint(collect(True, final=False))
                last_saved = time.perf_counter()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if prog is not None:
            prog.close("interrupted" if interrupted else "")
    return collect(interrupted)


def run_sampler(
    density: AffineDensity,
    sampler: str = "nuts",
    draws: int = 1000,
    tune: int = 500,
    chains: int = 4,
    seed: int = 0,
    jitter: float = 0.1,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    chain_method: str = "auto",
    cores: int | None = None,
    compile_mode: str | None = None,
    walkers: int | None = None,
    emcee_init: float = 1.0,
    thin: int = 1,
    chunk: int = 50,
    progressbar: bool | None = None,
    on_checkpoint=None,
) -> RawDraws:
    """Run one sampler on a whitened density; return draws of ``z`` and statistics.

    Parameters
    ----------
    density : AffineDensity
        The model's log posterior in whitened coordinates ``z``.
    sampler : {'nuts', 'numpyro', 'pymc', 'emcee'}
    draws, tune, chains : int
        Kept iterations per chain, warm-up iterations, chains (NUTS).  emcee: steps kept
        per walker (``draws``, thinned by ``thin``) after ``tune`` burn-in steps.
    seed : int
        Seeds the start points and the sampler: the same seed gives the same draws.
    jitter : float
        NUTS chains start at ``z ~ N(0, jitter² I)``: inside the MAP's mode.
    target_accept, max_tree_depth : NUTS settings.
    chain_method : {'auto', 'parallel', 'vectorized'}
        numpyro: chains across JAX devices (one per core) or vectorised on one.
    cores : int, optional
        PyMC: worker processes (default: one per chain up to the CPU count; 1 once JAX
        has started, as fork() is then unsafe).
    compile_mode : str, optional
        PyMC / emcee: pytensor mode of the density (default: the density's).
    walkers : int, optional
        emcee walkers (default max(2 d + 2, 32)), started at ``z ~ N(0, emcee_init² I)``
        (the Laplace approximation).
    chunk : int
        numpyro: iterations per compiled call (Ctrl-C is honoured between calls).
    progressbar : bool or None
        Report progress on stderr (:mod:`bayesoof.inference.progress`: a live line on a
        terminal or in a notebook, a log line every 10 % or 30 s otherwise).  None
        (default): on in a Jupyter notebook, off in scripts.
    on_checkpoint : callable, optional
        numpyro and emcee: called with the :class:`RawDraws` so far every
        :data:`bayesoof.inference.checkpoint.INTERVAL` s (to keep them on disk).
    """
    sampler = resolve_sampler(sampler)
    rng = np.random.default_rng(seed)
    if sampler == "emcee":
        return _run_emcee(density, draws, tune, seed, walkers, emcee_init, thin, compile_mode,
                          progressbar, on_checkpoint)
    z0 = _jitter(rng, chains, density.dim, jitter)
    if sampler == "numpyro":
        return _run_numpyro(density, z0, draws, tune, seed, target_accept, max_tree_depth,
                            chain_method, chunk, progressbar, on_checkpoint)
    if cores is None:
        # PyMC runs parallel chains in fork()ed processes, which may deadlock once JAX's
        # thread pool exists (JAX warns so): chains run in turn then
        cores = 1 if _jax_initialised() else min(chains, os.cpu_count() or 1)
    return _run_pymc(density, z0, draws, tune, seed, target_accept, max_tree_depth, cores,
                     compile_mode, progressbar)


# ====================================================================== public API
def sample_model(
    model: pm.Model,
    sampler: str = "nuts",
    draws: int = 1000,
    tune: int = 500,
    chains: int = 4,
    seed: int = 0,
    laplace_result: LaplaceResult | None = None,
    products: bool = True,
    n_predictive: int = 100,
    prior_draws: int = 0,
    checkpoint=None,
    recipe: dict | None = None,
    **kwargs,
):
    """Sample the posterior of a model built by :func:`bayesoof.inference.model.build_model`.

    Finds the posterior mode and Laplace covariance from the model's start point (the
    quick fit's MAP), whitens, runs ``sampler`` and assembles a
    :class:`bayesoof.inference.posterior.PosteriorResult`.  ``n_predictive`` thinned draws give the
    posterior predictive beams; ``prior_draws`` > 0 adds the ``prior`` and
    ``prior_predictive`` groups.  Extra keywords go to :func:`run_sampler`.

    ``checkpoint``: a directory; the raw draws are written there
    (:mod:`bayesoof.inference.checkpoint`) as soon as sampling ends, before assembly, and
    every minute during long numpyro / emcee runs; ``recipe`` says how to rebuild the
    model for :func:`bayesoof.inference.checkpoint.finish`.
    """
    from bayesoof.inference import checkpoint as ckpt
    from bayesoof.inference.posterior import assemble

    t0 = time.perf_counter()
    name = resolve_sampler(sampler)
    mode = kwargs.get("compile_mode")
    if mode is None:
        mode = "JAX" if name in ("numpyro", "emcee") and have_jax() else "FAST_RUN"
    kwargs["compile_mode"] = mode
    if name == "numpyro":
        _host_devices()
    with blas_threads(1):
        lap = laplace_result or laplace(model, mode=mode)
        density = AffineDensity(model, lap.u_mode, _chol(lap.cov), mode=mode)
        settings = {"sampler": name, "draws": draws, "tune": tune, "chains": chains,
                    "seed": seed, **{k: v for k, v in kwargs.items() if _jsonable(v)}}
        if checkpoint is not None:
            def keep(partial_raw, _d=density):  # periodic: the draws so far
                ckpt.save_raw(checkpoint, partial_raw, _d, lap, settings, recipe, partial=True)

            kwargs["on_checkpoint"] = keep
        raw = run_sampler(density, name, draws=draws, tune=tune, chains=chains, seed=seed,
                          **kwargs)
        if checkpoint is not None:  # before anything else can fail
            ckpt.save_raw(checkpoint, raw, density, lap, settings, recipe)
        result = assemble(model, density, raw, lap, settings, t0, products=products,
                          n_predictive=n_predictive, seed=seed)
        if prior_draws and result.idata is not None:
            from bayesoof.inference.model import prior_predictive

            result.idata.extend(prior_predictive(model, draws=prior_draws, seed=seed))
        return result


def _jsonable(v) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


def sample(
    data,
    telescope=None,
    order: int = 5,
    sampler: str = "nuts",
    draws: int = 1000,
    tune: int = 500,
    chains: int = 4,
    seed: int = 0,
    priors=None,
    fit_result=None,
    fit_kwargs: dict | None = None,
    model_kwargs: dict | None = None,
    save_dir=None,
    products: bool = True,
    **kwargs,
):
    """Full posterior of the aperture phase: quick fit, then NUTS or emcee from the MAP.

    Parameters
    ----------
    data : BeamMaps, str or Path
        Beam maps (or a file :func:`bayesoof.data.fitsio.read_beam_maps` reads).
    telescope : Telescope or str
        Telescope preset name, TOML path or Telescope.
    order : int
        Largest Zernike order.
    sampler : {'nuts', 'numpyro', 'pymc', 'emcee'}
        'nuts' is numpyro on JAX when available, else PyMC's NUTS.
    draws, tune, chains : int
        Kept draws per chain, warm-up iterations per chain, chains (emcee: walkers are
        chosen from the dimension, see ``walkers``; ``chains`` is ignored).
    seed : int
        Seeds the quick fit's restarts, the chain jitter and the sampler: same seed, same
        draws.
    priors : None, str, Path or dict
        Prior settings (:func:`bayesoof.inference.model.load_priors`).
    fit_result : FitResult, optional
        Reuse a quick fit instead of running one.
    fit_kwargs, model_kwargs : dict, optional
        Extra keywords of :func:`bayesoof.fit` and
        :func:`bayesoof.inference.model.build_model`.
    save_dir : path, optional
        Save the quick fit and the posterior into a new run directory under it.
    products : bool
        Compute the phase / surface maps and rms posteriors.
    **kwargs
        ``n_predictive`` and ``prior_draws`` of :func:`sample_model`; sampler settings of
        :func:`run_sampler` (``target_accept``, ``jitter``, ``walkers``, ``chain_method``,
        ``progressbar``...).

    Returns
    -------
    PosteriorResult
        Never raises on interruption: Ctrl-C keeps the MAP and the draws made so far
        (``result.interrupted``).
    """
    from bayesoof.inference.model import build_model

    if fit_result is None:
        from bayesoof.inference.fit import fit as quick_fit

        kw = dict(fit_kwargs or {})
        kw.setdefault("seed", seed)
        if telescope is not None:
            kw["telescope"] = telescope
        fit_result = quick_fit(data, order=order, **kw)
    run_dir = None
    if save_dir is not None:
        from bayesoof.inference import checkpoint as ckpt

        run_dir = fit_result.save(save_dir)
        kwargs.setdefault("checkpoint", run_dir)
        fk = dict(fit_kwargs or {})
        fk.setdefault("seed", seed)
        kwargs.setdefault("recipe", ckpt.recipe(data, telescope or fit_result.telescope,
                                                fit_result.order, fk, priors, model_kwargs))
    model = build_model(fit_result, priors=priors, **(model_kwargs or {}))
    try:
        result = sample_model(model, sampler=sampler, draws=draws, tune=tune, chains=chains,
                              seed=seed, products=products, **kwargs)
    except Exception as exc:
        where = kwargs.get("checkpoint")
        if where is not None and (Path(where) / "raw_draws.npz").is_file():
            exc.add_note(f"the draws are kept in {where}: finish with "
                         f"bayesoof.inference.checkpoint.finish({str(where)!r}) or "
                         f"'bayesoof finish {where}'")
        raise
    except KeyboardInterrupt:
        from bayesoof.inference.posterior import PosteriorResult

        warnings.warn("interrupted before any draw was kept: only the MAP is available",
                      stacklevel=2)
        result = PosteriorResult.empty(model, fit_result, interrupted=True)
    result.fit = fit_result
    if run_dir is not None:
        with contextlib.suppress(TypeError):
            run_dir = os.fspath(run_dir)
        result.save(run_dir)
    return result
