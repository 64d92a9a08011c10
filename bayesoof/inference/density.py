"""The log posterior density of a PyMC model in whitened coordinates, compiled for samplers.

:class:`AffineDensity` writes the model's log density (PyMC's ``model.logp`` with the
Jacobians of its transforms) in coordinates ``z`` with ``u = center + chol z``; the
samplers of :mod:`bayesoof.inference.samplers` call its compiled forms (NumPy value and
gradient, JAX, batched).  Compiled functions are cached on the density
(:meth:`AffineDensity.cached`).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

__all__ = ["AffineDensity", "compile_function", "flat_point", "have_jax", "host_devices",
           "jax_initialised"]


def compile_function(inputs, outputs, mode=None):
    """``pytensor.function`` through PyMC's compile, as PyMC's own samplers compile.

    PyMC's parameter checks (``CheckParameterValue``) become ``-inf`` switches there, so no
    PyMC Op reaches PyTensor's shared C-module cache: a key holding one would import PyMC
    (and ArviZ, matplotlib) on every later cache refresh, the quick fit's included.
    """
    from pymc.pytensorf import compile as compile_pymc

    return compile_pymc(inputs, outputs, mode=mode)


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


def jax_initialised() -> bool:
    """Whether JAX's runtime (and its thread pool) has started in this process."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # noqa: BLE001 - private API moved: assume the worst
        return True


def host_devices() -> None:
    """Give JAX one CPU device per core, so that numpyro runs chains in parallel.

    Only possible before JAX starts (it reads ``XLA_FLAGS`` once); a device count already
    in ``XLA_FLAGS`` is respected.  Same effect as ``numpyro.set_host_device_count``.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if jax_initialised() or "xla_force_host_platform_device_count" in flags:
        return
    n = os.cpu_count() or 1
    if n > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()



def flat_point(model, point: dict) -> np.ndarray:
    """Flat vector of a point dict of the model's value variables (``value_vars`` order)."""
    names = [v.name for v in model.value_vars]
    return np.concatenate([np.ravel(np.asarray(point[n], float)) for n in names])


class AffineDensity:
    """Log posterior density of a ``pm.Model`` in coordinates ``z``: ``u = center + chol @ z``.

    ``u`` is the flat vector of the model's value variables (PyMC's unconstrained
    parameters, in ``model.value_vars`` order); the Jacobian terms of PyMC's transforms
    are included (``model.logp(jacobian=True)``), the constant log|det chol| is not.

    **Curved whitening** (``curve``): for the *curved* coordinates ℓ (the bounded
    variables named by ``curved``, by default the leg geometry of
    :data:`bayesoof.inference.model.LEG_NAMES`), the other coordinates follow their
    regression on the *physical* value θ_ℓ = backward(u_ℓ) rather than on u_ℓ::

        u = center + chol z + curve · [(θ_ℓ(u_ℓ) - θ_ℓ(c_ℓ)) / θ'_ℓ(c_ℓ) - (u_ℓ - c_ℓ)]

    with u_ℓ = (center + chol z)_ℓ.  The bracket is the part of θ_ℓ that is not linear in
    u_ℓ, in units of u_ℓ (zero to first order at the centre), and ``curve`` (d, n_ℓ) holds
    the regression of each coordinate on u_ℓ (zero rows on ℓ).  When ``chol`` is lower
    triangular with the ℓ coordinates first (:func:`bayesoof.inference.sample._whitening`),
    u_ℓ depends on z_ℓ only, the map's Jacobian is block triangular with the blocks of
    ``chol`` on its diagonal, so its determinant is constant and the density in z needs
    no correction.  Why: a parameter correlated linearly with others in physical units
    (the leg width with the amplitudes, r ≈ 0.8-0.98) lies on a *curved* ridge in the
    logit coordinates of its bounds wherever its posterior reaches towards a bound, and a
    linear whitening leaves that curve for NUTS to diverge on (measured,
    /work/notes/s7-legs.md).  ``curve`` zero (the default) is the plain affine map.

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
    curve : array (d, n_ℓ), optional
        Regression of the coordinates on the curved ones (default zero: affine).
    curved : tuple of str, optional
        Names of the free variables whose coordinates are curved (default: those of
        ``LEG_NAMES`` the model samples through a transform).
    """

    def __init__(self, model: pm.Model, center, chol=None, mode: str | None = None,
                 curve=None, curved: tuple[str, ...] | None = None):
        self.model = model
        self.mode = mode or _default_mode()
        self.value_vars = list(model.value_vars)
        self.names = [v.name for v in self.value_vars]
        ip = model.initial_point()
        self.shapes = [np.shape(ip[n]) for n in self.names]
        self.sizes = [int(np.prod(s, dtype=int)) for s in self.shapes]
        self.dim = int(sum(self.sizes))
        # the whitening is held in shared variables, so that compiled functions serve a
        # new whitening (whiten): the Laplace step and the sampler compile the density once
        self._center = pytensor.shared(np.zeros(self.dim), name="whitening_center",
                                      shape=(self.dim,))
        self._chol = pytensor.shared(np.eye(self.dim), name="whitening_chol",
                                    shape=(self.dim, self.dim))
        self._fns: dict = {}  # compiled functions by key (see cached)
        self.z = pt.vector("z", dtype="float64")
        u_lin = self._center + pt.dot(self._chol, self.z)
        self.curved_index, bent = self._curved_part(model, u_lin, curved)
        self._curve = pytensor.shared(np.zeros((self.dim, self.curved_index.size)),
                                      name="whitening_curve",
                                      shape=(self.dim, self.curved_index.size))
        u = u_lin if bent is None else u_lin + pt.dot(self._curve, bent)
        self._u = u
        self.whiten(center, chol, curve)
        self.replacements = {}
        i = 0
        for v, shp, size in zip(self.value_vars, self.shapes, self.sizes, strict=True):
            piece = u[i : i + size].reshape(shp) if shp else u[i]
            self.replacements[v] = pt.specify_shape(piece, shp)
            i += size
        logp = model.logp(jacobian=True)
        self.logp_graph = pytensor.clone_replace(logp, replace=self.replacements)
        self.grad_graph = pt.grad(self.logp_graph, self.z)

    def _curved_part(self, model, u_lin, curved):
        """Flat indices of the curved coordinates and the bracket of the class docstring.

        Returns ``(index, bracket)``; ``bracket`` is None when no coordinate is curved.
        """
        if curved is None:
            from bayesoof.inference.model import LEG_NAMES

            curved = LEG_NAMES
        index, parts = [], []
        i = 0
        for v, shp, size in zip(self.value_vars, self.shapes, self.sizes, strict=True):
            rv = model.values_to_rvs[v]
            tr = model.rvs_to_transforms.get(rv)
            if rv.name in curved and tr is not None:
                u_l, c_l = u_lin[i : i + size], self._center[i : i + size]
                theta = tr.backward(u_l.reshape(shp) if shp else u_l[0], *rv.owner.inputs)
                theta_c = tr.backward(c_l.reshape(shp) if shp else c_l[0], *rv.owner.inputs)
                slope = pt.grad(pt.sum(theta_c), c_l)  # dθ/du at the centre (elementwise)
                parts.append((pt.flatten(theta - theta_c)) / slope - (u_l - c_l))
                index += range(i, i + size)
            i += size
        if not parts:
            return np.zeros(0, int), None
        return np.array(index, int), pt.concatenate(parts)

    def whiten(self, center, chol=None, curve=None) -> AffineDensity:
        """Set the map ``u = center + chol z (+ curve · bracket)``; returns self.

        ``chol`` None: identity; ``curve`` None: zero (affine; see the class docstring).
        The C-compiled value and gradient (:meth:`function`) read it at each call and are
        kept; other compiled forms (JAX ones bake it in) are dropped, to be rebuilt.
        """
        self.center = np.asarray(center, float).reshape(self.dim).copy()
        self.chol = np.eye(self.dim) if chol is None else np.array(chol, float)
        if self.chol.shape != (self.dim, self.dim):
            raise ValueError(f"chol must be ({self.dim}, {self.dim}), got {self.chol.shape}")
        n_curved = self.curved_index.size
        self.curve = np.zeros((self.dim, n_curved)) if curve is None \
            else np.array(curve, float).reshape(self.dim, -1)
        if self.curve.shape != (self.dim, n_curved):
            raise ValueError(f"curve must be ({self.dim}, {n_curved}), got {self.curve.shape}")
        if np.any(self.curve[self.curved_index]):
            raise ValueError("curve must be zero on the curved coordinates themselves")
        self._center.set_value(self.center)
        self._chol.set_value(self.chol)
        self._curve.set_value(self.curve)
        self._fns = {k: v for k, v in self._fns.items() if k[0] == "fn" and k[1] != "JAX"}
        return self

    def cached(self, key, build):
        """The compiled object stored under ``key``, built by ``build()`` on first use.

        Samplers and products keep their compiled functions of this density here (one
        compilation per density and settings).
        """
        if key not in self._fns:
            self._fns[key] = build()
        return self._fns[key]

    def predictive_fn(self, graphs):
        """Compiled ``z -> graphs`` for graphs of the model's random variables (cached).

        Used for the posterior predictive (the model beam and σ of each draw).
        """
        def build():
            g = self.model.replace_rvs_by_values(list(graphs))
            g = pytensor.clone_replace(g, replace=self.replacements)
            return compile_function([self.z], g, mode=self.mode)

        return self.cached(("predictive", tuple(id(v) for v in graphs)), build)

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
        """Unconstrained values ``u`` of whitened ``z`` (works on (..., d))."""
        z = np.asarray(z, float)
        if not np.any(self.curve):
            return self.center + z @ self.chol.T
        fn = self.cached(("to_u",), lambda: compile_function([self.z], self._u,
                                                             mode="FAST_COMPILE"))
        flat = z.reshape(-1, self.dim)
        return np.array([fn(zi) for zi in flat]).reshape(z.shape)

    def label_of(self) -> list[str]:
        """One label per flat coordinate, e.g. ``K[3]``, ``c_dB_interval__``."""
        labels = []
        for n, size in zip(self.names, self.sizes, strict=True):
            labels += [n] if size == 1 and not self.shapes[self.names.index(n)] else [
                f"{n}[{k}]" for k in range(size)
            ]
        return labels

    # ---------------------------------------------------------------- compiled
    def function(self, mode: str | None = None):
        """The compiled PyTensor function ``z -> [logp, dlogp/dz]``; once per mode.

        The samplers that call it from several threads take a ``.copy()`` each.
        """
        mode = mode or self.mode
        return self.cached(("fn", mode), lambda: compile_function(
            [self.z], [self.logp_graph, self.grad_graph], mode=mode))

    def logp_dlogp(self, mode: str | None = None):
        """NumPy callable ``z -> (logp, dlogp/dz)``; compiled once per mode."""
        mode = mode or self.mode
        key = ("logp_dlogp", mode)
        if key not in self._fns:
            fn = self.function(mode)

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
                single = compile_function([self.z], self.logp_graph, mode=mode)

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
            fn = compile_function([self.z], graphs, mode=mode)

            def call(Z, _f=fn):
                rows = [_f(z) for z in np.asarray(Z, float)]
                return {n: np.array([np.asarray(r[k], float) for r in rows])
                        for k, n in enumerate(names)}

        self._fns[key] = call
        return call
