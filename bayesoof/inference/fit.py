"""Quick fit: noise-weighted least squares (the MAP with flat priors), order by order.

Each map is modelled as ``data = a_i (1 + g_i t) P_i(u, v; θ) + b_i + c_i t + noise`` (the
drifts g_i, c_i along the scan time t when free, :mod:`bayesoof.inference.nuisances`) with
the residual of
:mod:`bayesoof.inference.likelihood` (``(data - predict) / σ``), σ from the file or estimated
(:mod:`bayesoof.data.noise`).  Orders 1 → N are fitted in turn, each started from the previous
solution (pyoof's ``fit_previous``), with :func:`scipy.optimize.least_squares` ('trf',
bounds) and an exact Jacobian compiled from the PyTensor graph: forward-mode derivatives
(``pytensor.gradient.Rop``) of the residual vector, vectorised over the free directions
(``vectorize_graph``), so one pass costs about ``n_free`` far-field transforms.

One compiled function serves every order and every start: it takes the parameter
vector (in two parts, see :class:`Objective`), matrices whose rows select the free
directions, the data and σ; the order-n fit is the order-N model with K(n' > n) fixed at
0.  Compiled functions are cached per geometry (sample positions, d_z, wavelength,
telescope, aperture sampling, order, illumination, residual), so refitting new data on
the same grid does not recompile, in the process and across runs
(:mod:`bayesoof.inference.compiled_cache`: re-linking only, no graph rewriting).
While fitting, BLAS runs single-threaded (``fit.blas_threads``, via threadpoolctl): the
products are small and two threads competing on a 2-core machine were several times slower.

The covariance is the Laplace approximation ``(JᵀJ)⁻¹`` of the standardised residuals
at the optimum: with σ known it is used as is (no χ² rescaling); ``covariance_scale =
"chi2"`` multiplies it by the reduced χ², and the pyoof residual (unweighted) always does.

Parameters (see :mod:`bayesoof.inference.params`, ``presets/fit/default.toml``): K in waves, the
illumination coefficients, per-map amplitude a_i and offset b_i, optionally per-map
pointing.  pyoof's illumination amplitude i_amp has no counterpart: P scales as i_amp²,
which the free a_i absorb (pyoof's min-max normalisation removes scale and offset per
map in the same way); the preset ``"pyoof"`` reproduces pyoof's free/fixed set.
Multi-start (``n_starts``): the extra starts add N(0, start_scale / mode_rms(n, l)) waves
to the free K (seeded), re-solve a_i, b_i, and the lowest χ² wins.  When the last order's
reduced χ² exceeds ``cold_start_above`` it is fitted again from the configured start (the
continuation from the lower orders can end in a wrong basin; README, "Orders 1..N"); both
solves stop early when they can no longer change the answer
(:mod:`bayesoof.inference.stopping`) and only the better one is polished.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import get_mode
from pytensor.gradient import DisconnectedInputError, Rop
from pytensor.graph.replace import vectorize_graph
from scipy.optimize import least_squares

from bayesoof.data.containers import BeamMaps, DataError
from bayesoof.data.noise import resolve_sigma
from bayesoof.inference import compiled_cache
from bayesoof.inference.gram_svd import trf_gram_svd
from bayesoof.inference.likelihood import (
    HACCovariance,
    hac_score_covariance,
    misfit_model,
    model_power,
    predict,
    pyoof_normalised_residuals,
    standardized_residuals,
)
from bayesoof.inference.model_error import (
    add_model_error_block,
    apply_model_error,
    error_columns,
    marginalise,
    shift_in_sd,
)
from bayesoof.inference.nuisances import (
    add_nuisance_blocks,
    forward_options,
    hold_below_last_order,
    resampling_extent,
    resolve_illumination,
    scan_time,
)
from bayesoof.inference.params import (
    FitConfigError,
    ParameterSpace,
    load_fit_config,
    map_labels,
)
from bayesoof.inference.results import FitResult, OrderResult
from bayesoof.inference.stopping import PoorFitStop, SameBasinStop
from bayesoof.inference.threads import blas_threads
from bayesoof.physics import zernike
from bayesoof.physics.forward import ForwardModel
from bayesoof.physics.telescope import get_telescope

__all__ = ["FitConfigError", "FitWarning", "Objective", "fit", "laplace_covariance"]

_CACHE: OrderedDict[str, Objective] = OrderedDict()
_CACHE_SIZE = 4
DEGENERATE_RCOND = 1e-10  # smallest/largest singular value of the column-scaled Jacobian


class FitWarning(UserWarning):
    """A fit result to read with care (not converged, parameter at a bound, degeneracy)."""


# ------------------------------------------------------------------ objective
class Objective:
    """Standardised residuals and their exact Jacobian, compiled once for a geometry.

    The graph takes the full parameter vector in three parts: the *shape* entries (K,
    illumination, pointing), which move the far field, the *linear* ones (amp, offset),
    and the *held* ones (blocks with ``Block.held``: the aperture model error, fixed in
    the solve, whose Jacobian only :mod:`~bayesoof.inference.model_error` asks for).
    Each part has its own forward-mode Jacobian (``Rop`` vectorised over a matrix of
    directions): along a linear direction the far field is untouched, so those columns
    cost no transform, and a Jacobian without held columns computes none of their
    tangents (in one part with the shape entries, every direction would carry the held
    block's zero tangent through its (n², J) basis product).

    Parameters
    ----------
    forward : ForwardModel
        At the largest order fitted.
    space : ParameterSpace
        Layout of the full parameter vector (which entries are free does not matter here).
    residual : {'likelihood', 'pyoof'}
        'likelihood': ``(data - a_i P_i - b_i) / σ``; 'pyoof': min-max normalised data
        minus min-max normalised P per map (σ unused).
    """

    def __init__(self, forward: ForwardModel, space: ParameterSpace, residual: str = "likelihood"):
        t0 = time.perf_counter()
        n_full = space.n_full

        def entries(which) -> np.ndarray:
            return np.concatenate([np.arange(n_full)[space.slice_of(b.name)]
                                   for b in space.blocks if which(b)] or [np.zeros(0, int)])

        lin = entries(lambda b: b.linear)
        held = entries(lambda b: b.held and not b.linear)
        shape = np.setdiff1d(np.arange(n_full), np.r_[lin, held])
        self.indices = (shape, lin, held)
        parts_in = (pt.vector("theta_shape"), pt.vector("theta_linear"),
                    pt.vector("theta_held"))
        # predict's arguments straight from the three parts, through the space's one
        # mapping (ParameterSpace.unpack_from), so that nothing upstream of the far field
        # depends on the linear part (its Jacobian then costs no transform)
        pos = np.empty(n_full, int)
        part = np.empty(n_full, int)
        for k, idx in enumerate(self.indices):
            pos[idx], part[idx] = np.arange(idx.size), k

        def take(sl: slice):
            idx = np.arange(n_full)[sl]
            if np.unique(part[idx]).size != 1:
                raise ValueError(f"a block spans two parts of the objective's input: {sl}")
            return parts_in[part[idx[0]]][pos[idx]] if idx.size else parts_in[0][:0]

        parts = space.unpack_from(take)
        observed, sigma = pt.vector("observed"), pt.vector("sigma")
        power = model_power(forward, **parts)
        if residual == "likelihood":
            r = standardized_residuals(predict(forward, **parts), observed, sigma)
        else:
            r = pyoof_normalised_residuals(power, observed, forward.map_slices)
        outs = [r, power]
        self._dirs = []
        self._connected = []
        for x in parts_in:
            d, D = pt.vector(f"d_{x.name}"), pt.matrix(f"D_{x.name}")
            self._dirs.append(D)
            # Rop by the transposed-L_op construction: unlike the ops' own R_op it leaves
            # out every node the direction does not reach, and it covers all ops (max/min)
            try:
                jvp = Rop(r, x, d, use_op_rop_implementation=False)
            except DisconnectedInputError:  # the pyoof residual ignores amp and offset
                self._connected.append(False)
                continue
            self._connected.append(True)
            outs.append(vectorize_graph(jvp, {d: D}))  # (n_directions, n_samples)
        self._fn = pytensor.function(
            [*parts_in, *self._dirs, observed, sigma], outs, trust_input=True,
            on_unused_input="ignore", mode=_mode(),
        )
        compiled_cache.slim(self._fn)  # what only the rewriting used: lighter to keep and store
        self.n_full = n_full
        self._n_samples = forward.observed.size
        self.residual = residual
        # no directions for a value alone (no tangent computed); one zero direction for a
        # graph that cannot batch zero of them (see _value)
        self._empty_batches = True
        self._select: dict[tuple, tuple] = {}
        self._last_power: tuple[bytes, np.ndarray | None] = (b"", None)
        self.compile_time = time.perf_counter() - t0

    def _call(self, full, dirs, observed, sigma):
        full = np.asarray(full, float)
        out = self._fn(*(np.ascontiguousarray(full[idx]) for idx in self.indices),
                       *dirs, observed, sigma)
        self._last_power = (full.tobytes(), out[1])  # P depends on ``full`` alone
        return out

    def _batch(self, idx, rows: int) -> np.ndarray:
        """Directions (rows, |idx|) for one part: at least one when empty batches fail."""
        return np.zeros((rows if rows or self._empty_batches else 1, idx.size))

    def _value(self, full, observed, sigma):
        """The function's outputs without a Jacobian (an empty batch of directions)."""
        if self._empty_batches:
            try:
                return self._call(full, [self._batch(i, 0) for i in self.indices],
                                  observed, sigma)
            except ValueError:  # e.g. a reshape that cannot infer a size from 0 elements
                self._empty_batches = False
                self._select.clear()
        return self._call(full, [self._batch(i, 0) for i in self.indices], observed, sigma)

    def residuals(self, full, observed, sigma) -> np.ndarray:
        """Residuals (n_samples,) at the full parameter vector ``full``."""
        return self._value(full, observed, sigma)[0]

    def power(self, full) -> np.ndarray:
        """Normalised power P (n_samples,) of the forward model at ``full``.

        Taken from the last call when that was at the same ``full`` (a solve's last
        evaluation is at its solution), else evaluated.
        """
        key, power = self._last_power
        if power is not None and key == np.asarray(full, float).tobytes():
            return power.copy()
        zeros = np.zeros(self._n_samples)
        return self._value(full, zeros, zeros + 1.0)[1]

    def _directions(self, free_index) -> tuple:
        key = tuple(int(i) for i in free_index)
        if key not in self._select:
            dirs, rows = [], []
            for idx in self.indices:
                at = {int(k): i for i, k in enumerate(idx)}
                cols = [k for k in key if k in at]
                d = self._batch(idx, len(cols))
                d[np.arange(len(cols)), [at[k] for k in cols]] = 1.0
                dirs.append(d)
                rows.append([key.index(k) for k in cols])  # their positions in free_index
            self._select[key] = (dirs, rows)
        return self._select[key]

    def jacobian(self, full, free_index, observed, sigma) -> tuple[np.ndarray, np.ndarray]:
        """Residuals (n_samples,) and the Jacobian (n_samples, n_free) in ``free_index`` order.

        The Jacobian is the transpose of a C-ordered (n_free, n_samples) array.
        """
        dirs, rows = self._directions(free_index)
        try:
            out = list(self._call(full, dirs, observed, sigma))
        except ValueError:
            if not self._empty_batches:
                raise
            self._empty_batches = False  # a part without directions gets a dummy one
            self._select.clear()
            return self.jacobian(full, free_index, observed, sigma)
        r = out.pop(0)
        out.pop(0)  # the power
        alloc = np.empty if all(self._connected) else np.zeros  # every row written, or not
        jac_t = alloc((sum(len(at) for at in rows), r.size))
        for connected, at in zip(self._connected, rows, strict=True):
            if connected:
                block = out.pop(0)
                if at:  # (a dummy direction, when there is none, is not copied)
                    jac_t[at] = block[: len(at)]
        return r, jac_t.T


def _mode():
    """Compilation mode: FAST_RUN, without the BLAS rewrites when PyTensor has no BLAS.

    Without a BLAS linked to PyTensor those rewrites only cost compile time (the products
    run through NumPy either way).
    """
    compiled_cache.remember_compiler_probes()  # PyTensor's g++ probes, kept from earlier
    mode = get_mode("FAST_RUN")
    return mode if pytensor.config.blas__ldflags else mode.excluding("BlasOpt")


def _fingerprint(forward: ForwardModel, space: ParameterSpace, residual: str) -> str | None:
    """Key of the compiled objective; None (no caching) for custom telescope callables."""
    tel = forward.telescope
    if tel.blockage_func is not None or tel.opd_func is not None:
        return None
    h = hashlib.sha1()
    s = forward.sampling
    h.update(repr((tel.to_dict(), forward.order, forward.illumination, forward.method,
                   forward.wavelength, s.dx, s.n, s.supersample, residual,
                   [(b.name, b.shape, b.arg, b.key, b.linear, b.held) for b in space.blocks],
                   forward.describe())).encode())
    for m in forward.data.maps:
        h.update(np.float64(m.d_z).tobytes())
        h.update(m.u.tobytes())
        h.update(m.v.tobytes())
    return h.hexdigest()


def _objective(forward: ForwardModel, space: ParameterSpace, residual: str) -> Objective:
    key = _fingerprint(forward, space, residual)
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        obj = _CACHE[key]
        obj.cached = True
        return obj
    t0 = time.perf_counter()
    # on disk, also keyed by the full parameter layout (what the graph's inputs mean)
    disk_key = None if key is None else key + repr(tuple(space.names))
    obj = compiled_cache.load(disk_key) if disk_key is not None else None
    if obj is not None:  # compiled in an earlier run: only re-linked
        obj.compile_time = time.perf_counter() - t0
    else:
        with compiled_cache.gc_paused():  # graph building and rewriting: no garbage to find
            obj = Objective(forward, space, residual)
        if key is not None:
            compiled_cache.store(disk_key, obj)
    obj.cached = False
    if key is not None:
        _CACHE[key] = obj
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return obj


# ------------------------------------------------------------------ covariance
def laplace_covariance(jac: np.ndarray, names=None) -> tuple[np.ndarray, float]:
    """``(JᵀJ)⁻¹`` by SVD of the column-scaled Jacobian, and its reciprocal condition.

    ``jac`` (n_samples, n_free) is the Jacobian of the standardised residuals.  Columns are
    scaled to unit norm first (the parameters' units differ by orders of magnitude).  A tall
    Jacobian is reduced to the R of its QR first (Householder, backward stable: the same
    singular values and V, 2.5× cheaper on pyoof's example than the SVD with its U).  When
    the smallest singular value is below 1e-10 of the largest a :class:`FitWarning` names
    the parameters of the degenerate direction; the pseudo-inverse is returned.
    """
    norms = np.linalg.norm(jac, axis=0)
    norms[norms == 0] = 1.0
    scaled = jac / norms
    if scaled.shape[0] > scaled.shape[1]:  # tall: R of its QR has the same s and V, and the
        scaled = np.linalg.qr(scaled, mode="r")  # SVD then forms no (n_samples, n_free) U
    _, s, vt = np.linalg.svd(scaled, full_matrices=False)
    rcond = float(s[-1] / s[0]) if s[0] > 0 else 0.0
    if rcond < DEGENERATE_RCOND:
        vec = vt[-1]
        top = np.argsort(-np.abs(vec))[:3]
        labels = [names[i] if names is not None else str(i) for i in top]
        warnings.warn(
            f"degenerate parameters (reciprocal condition {rcond:.2g}): the combination of "
            f"{', '.join(labels)} is not constrained by the data; the covariance is a "
            "pseudo-inverse and its variances are not meaningful",
            FitWarning,
            stacklevel=3,
        )
    inv = np.where(s > DEGENERATE_RCOND * s[0], 1.0 / np.where(s > 0, s, 1.0) ** 2, 0.0)
    cov = (vt.T * inv) @ vt
    return cov / np.outer(norms, norms), rcond


# ------------------------------------------------------------------ one order
@dataclass(frozen=True)
class _Seed:
    """Raw residuals (n_samples,) and Jacobian (n_samples, n_free) known at ``values``.

    ``values`` is a full parameter vector; the Jacobian's columns follow the free index of
    the space the seed is for.
    """

    values: np.ndarray
    residuals: np.ndarray
    jacobian: np.ndarray
    passes: int = 0  # passes of the objective that making the seed took (counted on use)

    @classmethod
    def at_solution(cls, res: OrderResult) -> _Seed:
        """The residuals and Jacobian a solve ended with, at its solution."""
        return cls(res.space.values.copy(), res.residuals, res.jacobian)


def _continuation_seed(prev: OrderResult, space: ParameterSpace, objective: Objective,
                       observed, sigma) -> _Seed | None:
    """Seed of the next order's start from the previous order's solution, or None.

    When the start's full vector is the previous solution's (new coefficients start where
    the previous order held them), its residuals are the previous ones and so are the
    Jacobian's columns of the entries free in both; only the newly free columns are
    computed (one pass along them).  None when the vectors differ, or when the pass's
    residuals are not the previous ones (another objective).
    """
    if not np.array_equal(space.values, prev.space.values):
        return None
    index, before = space.free_index, prev.space.free_index  # (both ascending)
    carried = np.isin(index, before)
    jac = np.empty((prev.residuals.size, index.size), order="F")  # (the objective's layout)
    if not carried.all():
        r, jac[:, ~carried] = objective.jacobian(space.values, index[~carried], observed, sigma)
        if not np.array_equal(r, prev.residuals):
            return None
    jac[:, carried] = prev.jacobian[:, np.searchsorted(before, index[carried])]
    return _Seed(space.values.copy(), prev.residuals, jac, passes=int(not carried.all()))


@dataclass
class _Problem:
    """Residuals and Jacobian of one start for least_squares, in the free parameters θ.

    The Jacobian is computed with the residuals (``eager``, the default): the compiled
    function returns both in one pass, and the solver asks for the Jacobian at nearly every
    point whose residuals it asked for (a trial step it accepts).  Measured on pyoof's
    example: 41 of 42 trial points accepted, so the value-only passes (~11 ms each of a
    ~50 ms Jacobian pass) are saved, one Jacobian wasted per rejected step.
    """

    objective: Objective
    observed: np.ndarray
    sigma: np.ndarray
    space: ParameterSpace
    transform: object = None  # a misfit likelihood of likelihood.py (whitens r and J)
    eager: bool = True

    def __post_init__(self) -> None:
        self.n_eval = 0
        self.n_jac = 0
        self._last = (None, None)
        self._last_jac = (None, None)  # (θ, raw (r, J)) of the last eager pass

    def seed(self, seed: _Seed | None) -> None:
        """Take the raw residuals and Jacobian already known at the start, if they are there.

        Used only when ``seed.values`` is this start's full vector; the solver's first
        residuals and Jacobian at θ₀ then cost no pass of the objective.
        """
        if seed is None or not np.array_equal(seed.values, self.space.values):
            return
        theta = self.space.theta
        self.n_eval += seed.passes
        self._last_jac = (theta.copy(), (seed.residuals, seed.jacobian))
        r = seed.residuals if self.transform is None else self.transform.whiten(seed.residuals)
        self._last = (theta.copy(), r)

    def residuals(self, theta) -> np.ndarray:
        theta = np.asarray(theta, float)
        if self._last[0] is not None and np.array_equal(theta, self._last[0]):
            return self._last[1]
        self.n_eval += 1
        full = self.space.full(theta)
        if self.eager:
            r, jac = self.objective.jacobian(full, self.space.free_index, self.observed,
                                             self.sigma)
            self._last_jac = (theta.copy(), (r, jac))
        else:
            r = self.objective.residuals(full, self.observed, self.sigma)
        if self.transform is not None:
            r = self.transform.whiten(r)
        self._last = (theta.copy(), r)
        return r

    def jacobian(self, theta) -> np.ndarray:
        theta = np.asarray(theta, float)
        self.n_jac += 1
        if self._last_jac[0] is not None and np.array_equal(theta, self._last_jac[0]):
            r, jac = self._last_jac[1]
        else:
            r, jac = self.objective.jacobian(
                self.space.full(theta), self.space.free_index, self.observed, self.sigma
            )
        return jac if self.transform is None else self.transform.whiten_jacobian(r, jac)


def solve_linear(power, data, weight, t=None, free=(True, True, False, False),
                 fixed=(1.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """Weighted linear least squares of one map: (a, g, b, c) of ``a (1 + g t) P + b + c t``.

    The model is linear in (a, a g, b, c): the columns P, t P, 1, t.  ``free`` says which
    of (a, g, b, c) are solved; the others stay at ``fixed`` (their values: a, g, b, c).
    ``weight`` = 1/σ per sample; ``t`` the scan time (needed when g or c is involved).
    A fixed a with a free g solves for the product a g; a free a with a fixed g ≠ 0
    takes the column (1 + g t) P.
    """
    p, d, w = (np.asarray(x, float) for x in (power, data, weight))
    t = np.zeros_like(p) if t is None else np.asarray(t, float)
    a0, g0, b0, c0 = (float(x) for x in fixed)
    fa, fg, fb, fc = (bool(x) for x in free)
    cols, names = [], []
    rhs = d.copy()
    if fa:
        cols.append(p * (1.0 + (0.0 if fg else g0) * t))
        names.append("a")
    if fg:
        cols.append(t * p)
        names.append("ag")
        if not fa:
            rhs -= a0 * p
    if not fa and not fg:
        rhs -= a0 * (1.0 + g0 * t) * p
    if fb:
        cols.append(np.ones_like(p))
        names.append("b")
    else:
        rhs -= b0
    if fc:
        cols.append(t)
        names.append("c")
    else:
        rhs -= c0 * t
    out = dict(zip("agbc", (a0, g0, b0, c0), strict=True))
    if cols:
        A = np.column_stack(cols) * w[:, None]
        sol, *_ = np.linalg.lstsq(A, rhs * w, rcond=None)
        got = dict(zip(names, sol, strict=True))
        out["a"] = got.get("a", a0)
        out["b"], out["c"] = got.get("b", b0), got.get("c", c0)
        if fg:
            out["g"] = got["ag"] / out["a"] if out["a"] != 0 else 0.0
    return np.array([out["a"], out["g"], out["b"], out["c"]])


def _linear_amp_offset(space: ParameterSpace, objective: Objective, observed, sigma, slices,
                       t=None):
    """Start a_i, b_i (and the drifts g_i, c_i) by weighted linear least squares per map.

    Each map against P at the start (:func:`solve_linear`); ``t`` the scan time of every
    sample (:func:`~bayesoof.inference.nuisances.scan_time`), used when the drift blocks exist.
    """
    if objective.residual != "likelihood":
        return
    names = ["amp", "gain_drift", "offset", "baseline_drift"]
    present = [space.has(n) for n in names]
    free = [space.free[space.slice_of(n)] if h else np.zeros(space.n_maps, bool)
            for n, h in zip(names, present, strict=True)]
    if not any(f.any() for f in free):
        return
    vals = [space.values[space.slice_of(n)].copy() if h else np.zeros(space.n_maps)
            for n, h in zip(names, present, strict=True)]
    power = objective.power(space.values)
    for i, sl in enumerate(slices):
        p, d = power[sl], observed[sl]
        sol = solve_linear(p, d, 1.0 / sigma[sl], None if t is None else t[sl],
                           [f[i] for f in free], [v[i] for v in vals])
        if not sol[0] > 0:  # a start the data cannot place (e.g. a map of pure noise)
            sol[0] = max(float(np.ptp(d)), 1e-30) / max(float(np.max(p)), 1e-30)
            sol[1] = vals[1][i]
        if present[1]:  # keep g inside its bounds (a start outside fails check_start)
            g = space.slice_of("gain_drift")
            sol[1] = np.clip(sol[1], space.lower[g][i], space.upper[g][i])
        for v, x in zip(vals, sol, strict=True):
            v[i] = x
    for n, h, v in zip(names, present, vals, strict=True):
        if h:
            space.values[space.slice_of(n)] = v


def _perturbed(space: ParameterSpace, order: int, scale: float, rng) -> ParameterSpace:
    """Copy with the free K of this order shifted by N(0, scale / mode_rms) waves."""
    out = space.copy()
    for j, (n, m) in enumerate(space.nl):
        if out.free[j] and n <= order:
            step = rng.normal(0.0, scale / zernike.mode_rms(n, m))
            out.values[j] = np.clip(out.values[j] + step, out.lower[j], out.upper[j])
    return out


def _solve(problem: _Problem, cfg: dict, final: bool, stop=None):
    """Run least_squares; stop when an iteration lowers χ² by less than ``chi2_tol``.

    ``stop``: a callback of :mod:`bayesoof.inference.stopping` (may end the solve early).

    scipy's ``ftol`` is relative to the cost F = χ²/2; ``chi2_tol / (2 F_start)`` (or the
    configured ``ftol`` if larger) stops at the latest once the χ² decrease per iteration
    falls below ``chi2_tol``.  Orders below the last only start the next one and use the
    looser ``chi2_tol_intermediate``.
    """
    f = cfg["fit"]
    lo, hi = problem.space.bounds()
    x0 = np.clip(problem.space.theta, lo, hi)
    cost0 = 0.5 * float(np.sum(problem.residuals(x0) ** 2))
    tol = f["chi2_tol"] if final else f["chi2_tol_intermediate"]
    ftol = max(f["ftol"], tol / (2.0 * cost0)) if cost0 > 0 else f["ftol"]
    with trf_gram_svd():  # the trust-region step's SVD from the Gram matrix (gram_svd.py)
        return least_squares(
            problem.residuals,
            x0,
            jac=problem.jacobian,
            bounds=(lo, hi),
            method="trf",
            x_scale="jac",
            ftol=min(ftol, 0.5) or None,
            xtol=f["xtol"] or None,
            gtol=f["gtol"] or None,
            max_nfev=f["max_nfev"],
            callback=stop,
        )


def _fit_order(order, space, objective, observed, sigma, cfg, slices, rng, final=True, t=None,
               stop=None, seed=None):
    """Fit one order from ``space`` (and ``n_starts - 1`` perturbed starts).

    ``stop``: a factory of :mod:`bayesoof.inference.stopping` callbacks, one per start;
    ``seed``: a :class:`_Seed` known at ``space`` (not at the perturbed starts).
    """
    t0 = time.perf_counter()
    f = cfg["fit"]
    starts = [space]
    for _ in range(f["n_starts"] - 1):
        trial = _perturbed(space, order, f["start_scale"], rng)
        _linear_amp_offset(trial, objective, observed, sigma, slices, t)
        starts.append(trial)
    best, costs, n_eval, n_jac = None, [], 0, 0
    for start in starts:
        start.check_start(f"order {order} start")
        prob = _Problem(objective, observed, sigma, start)
        if start is space:
            prob.seed(seed)
        res = _solve(prob, cfg, final, None if stop is None else stop())
        n_eval += prob.n_eval
        n_jac += prob.n_jac
        costs.append(2.0 * float(res.cost))
        if best is None or res.cost < best[1].cost:
            best = (start, res)
    start, res = best
    sol = start.copy()
    sol.values[sol.free] = res.x
    jac = res.jac
    chi2 = float(np.sum(res.fun**2))
    dof = max(res.fun.size - res.x.size, 1)
    cov, rcond = laplace_covariance(jac, sol.free_names)
    scaled = f["covariance_scale"] == "chi2" or objective.residual == "pyoof"
    if scaled:
        cov = cov * chi2 / dof
    at_bound = [sol.free_names[i] for i in np.flatnonzero(res.active_mask)]
    converged = bool(res.status > 0)
    return OrderResult(
        power=objective.power(sol.values),
        order=order,
        space=sol,
        cov=cov,
        chi2=chi2,
        dof=dof,
        residuals=np.asarray(res.fun, float),
        jacobian=np.asarray(jac, float),
        converged=converged,
        status=int(res.status),
        message=str(res.message),
        n_eval=n_eval,
        n_jac=n_jac,
        n_iter=int(res.njev) if res.njev is not None else n_jac,
        wall_time=time.perf_counter() - t0,
        start_costs=costs,
        at_bound=at_bound,
        rcond=rcond,
        covariance_scaled=scaled,
        init=start.values.copy(),
    )


COLD_START_FTOL = 0.01  # the cold start's first solve stops when an iteration gains < 1 % of chi2
STOPPED = -2  # least_squares status when a stopping.py callback ended the solve


def _apply_start(space: ParameterSpace, start) -> bool:
    """Copy the free entries given in ``start`` into ``space``; True when amp was given.

    ``start`` is a FitResult or a dict in the ``params`` form (K of any length: truncated
    or zero-padded).  Fixed entries keep their configured values.
    """
    p = start.params if hasattr(start, "params") and hasattr(start, "theta") else dict(start)
    trial = space.copy()
    trial.set_values(p, "start")
    space.values[space.free] = trial.values[space.free]
    return p.get("amp") is not None


def _run(data, tel, cfg, orders, sigma, sampling, method, verbose, start=None):
    """Build the model, then fit ``orders`` in turn; returns what FitResult needs."""
    f = cfg["fit"]
    N = f["order"]
    sig, origin = resolve_sigma(data, cfg["noise"]["source"], cfg["noise"]["outer_fraction"],
                                sigma)
    beam_width = data.wavelength / (2.0 * tel.radius)
    space = ParameterSpace.from_config(cfg, data.n_maps, beam_width, d_z=data.d_z,
                                       map_names=map_labels(data), radius=tel.radius)
    add_nuisance_blocks(space, cfg, tel, data.d_z)  # focus offsets, legs ([focus], [legs])
    add_model_error_block(space, cfg)  # fixed; its Jacobian only (model_error.py)
    forward = ForwardModel(data, tel, N, f["illumination"], method, sampling,
                           **forward_options(space))
    given_amp = False
    if start is not None:  # the start of every coefficient; checked before compiling
        given_amp = _apply_start(space, start)
        space.check_start("start")
    objective = _objective(forward, space, f["residual"])
    observed = np.ascontiguousarray(forward.observed, float)
    t_scan = scan_time(data)  # drift nuisance: scan time of every sample
    rng = np.random.default_rng(f["seed"])
    results: list[OrderResult] = []
    state = {"forward": forward, "objective": objective}  # replaced on a resampling refit

    def fit_at(k, sp, label="", ftol=None, stop=None, seed=None):
        """Fit order k from ``sp``, refitting on finer pixels when the focus offsets need it.

        ``ftol``: stop at scipy's relative tolerance alone (a first, rough solve); ``stop``:
        a factory of early-stop callbacks (:mod:`bayesoof.inference.stopping`); ``seed``:
        a :class:`_Seed` at ``sp`` from the present objective.
        """
        sp.check_start(f"{cfg['source']}: order {k} {label}start")
        fwd, obj = state["forward"], state["objective"]
        final, c = k == orders[-1], cfg
        if ftol is not None:
            final, c = False, {**cfg, "fit": {**f, "ftol": ftol, "chi2_tol_intermediate": 0.0}}
        res = _fit_order(k, sp, obj, observed, sig, c, fwd.map_slices, rng,
                         final=final, t=t_scan, stop=stop, seed=seed)
        extent = None if sampling is not None else resampling_extent(res.space, fwd, data.d_z)
        if extent is not None:  # fitted focus offsets beyond what the sampling resolves
            fwd = ForwardModel(data, tel, N, f["illumination"], method, None,
                               d_z_extent=extent, **forward_options(space))
            obj = _objective(fwd, space, f["residual"])
            state.update(forward=fwd, objective=obj)
            if verbose:
                print(f"order {k}: effective d_z beyond the aperture sampling's; refitting "
                      f"on {fwd.sampling.n} pixels across")
            res = _fit_order(k, res.space, obj, observed, sig, c, fwd.map_slices, rng,
                             final=final, t=t_scan, stop=stop)
        if verbose:
            print(
                f"order {k}: {label}chi2 = {res.chi2:.6g} (reduced {res.chi2 / res.dof:.4g}), "
                f"{res.n_iter} Jacobians, {res.n_eval} evaluations, {res.wall_time:.2f} s"
                + (f"  (stopped: {stop.func.REASON})" if res.status == STOPPED else
                   "" if res.converged else f"  NOT CONVERGED: {res.message}")
            )
        return res

    def configured_start(k):
        """Order k at the configured start (or the user's), amplitudes solved linearly."""
        sp = space.at_order(k)
        if not given_amp:
            _linear_amp_offset(sp, state["objective"], observed, sig,
                               state["forward"].map_slices, t_scan)
        return sp

    threshold = f["cold_start_above"]
    cold_start = bool(threshold and len(orders) > 1 and f["fit_previous"]
                      and f["residual"] == "likelihood")  # (pyoof's residual: no noise scale)
    for k in orders:
        if results and f["fit_previous"]:
            sp = space.at_order(k)
            prev = results[-1].space
            keep = np.ones(sp.n_full, bool)  # new coefficients keep their configured start
            keep[: len(sp.nl)] = [n <= results[-1].order for n, _ in sp.nl]
            sp.values[keep] = prev.values[keep]
        else:
            sp = configured_start(k)
        if k != orders[-1] and f["nuisances_last_order_only"]:  # nuisances.py
            sp = hold_below_last_order(sp)
        seed = (_continuation_seed(results[-1], sp, state["objective"], observed, sig)
                if results and f["fit_previous"] else None)  # the previous r and J carry over
        stop = None
        if cold_start and k == orders[-1]:  # a poor continuation stops early (stopping.py)
            dof = max(observed.size - int(np.count_nonzero(sp.free)), 1)
            stop = partial(PoorFitStop, threshold, dof)
        results.append(fit_at(k, sp, stop=stop, seed=seed))
    last = results[-1]
    if cold_start and last.chi2 / last.dof > threshold:
        # The continuation from the lower orders can end in a wrong basin (the lower orders
        # bend K to mimic the missing ones): a second start from the configured values,
        # solved only until an iteration gains < 1 % of chi2 or it enters the
        # continuation's basin; the better of the two is then polished.
        kept = dict(state)  # the continuation's model, restored if the cold start loses
        basin = partial(SameBasinStop, last.space.values[last.space.free], last.residuals,
                        last.jacobian, last.chi2)
        cold = fit_at(orders[-1], configured_start(orders[-1]), "configured start: ",
                      ftol=COLD_START_FTOL, stop=basin)
        won = cold.chi2 < last.chi2
        if not won:
            state.update(kept)  # a refit on finer pixels for the cold start alone is dropped
        tries = [last, cold]
        best = cold if won else last
        if won or last.status == STOPPED:
            what = "configured start" if won else "continuation"
            tries.append(fit_at(orders[-1], best.space, f"{what}, polished: ",
                                seed=_Seed.at_solution(best)))
            best = tries[-1]
        results[-1] = replace(
            best, start_costs=last.start_costs + cold.start_costs,
            n_eval=sum(r.n_eval for r in tries), n_jac=sum(r.n_jac for r in tries),
            n_iter=sum(r.n_iter for r in tries), wall_time=sum(r.wall_time for r in tries),
            cold_start="won" if won else "lost")
    forward, objective = state["forward"], state["objective"]
    return forward, sig, origin, objective, results


# ------------------------------------------------------------------ misfit likelihood
def misfit_refit(result, kind: str | None = None, **options):
    """Refit the last order of ``result`` under a misfit likelihood; (OrderResult, model).

    ``kind`` and ``options`` (correlation, envelope_power, nu, iterations) default to the
    ``[misfit]`` table of the result's configuration.  The likelihood's hyper-parameters
    are learned at the noise-only solution, θ is refitted under the new likelihood, and
    this alternates ``iterations`` times.  The returned record keeps the plain
    standardised residuals (for the adequacy test) and χ² = Σ r²; its covariance is the
    Laplace covariance of the misfit likelihood (``laplace_jacobian``).
    """
    with blas_threads(result.config["fit"]["blas_threads"]):  # as the fit: small products
        return _misfit_refit(result, kind, **options)


def _misfit_refit(result, kind, **options):
    cfg = result.config
    m = dict(cfg["misfit"])
    if kind is not None:
        m["model"] = kind
    m.update({k: v for k, v in options.items() if v is not None})
    forward, sig, last = result.forward, np.asarray(result.sigma, float), result.last
    observed = np.ascontiguousarray(forward.observed, float)
    objective = _objective(forward, last.space, cfg["fit"]["residual"])
    # the aperture model error's columns when it is marginalised (model_error.py): every
    # covariance below is then the marginal one, H⁻¹ (M + P) H⁻¹
    error = error_columns(result, objective, observed, sig)
    p = last.space.params_dict()
    signal = p["amp"][forward.map_index] * last.power / sig  # a_i P_i / σ at the MAP
    beam_width = forward.wavelength / (2.0 * result.telescope.radius)
    if m["model"] == "hac":  # θ stays; spatial-HAC sandwich covariance around it
        t0 = time.perf_counter()
        jac = last.jacobian
        pos = [(mm.u, mm.v) for mm in forward.data.maps]
        if error is None:
            meat = hac_score_covariance(jac, last.residuals, forward.map_slices, pos,
                                        m["hac_bandwidth"] * beam_width)
            cov = last.cov @ meat @ last.cov
        else:
            jac_a, sd_a = error(last.space)
            meat = hac_score_covariance(np.hstack([jac, jac_a]), last.residuals,
                                        forward.map_slices, pos, m["hac_bandwidth"] * beam_width)
            cov = marginalise(jac, jac_a, last.residuals, sd_a, meat)[2]
        rec = OrderResult(
            order=last.order, space=last.space, cov=cov, chi2=last.chi2, dof=last.dof,
            residuals=last.residuals, jacobian=jac, converged=last.converged,
            status=last.status, message=last.message, n_eval=last.n_eval, n_jac=last.n_jac,
            n_iter=last.n_iter, wall_time=last.wall_time + time.perf_counter() - t0,
            start_costs=list(last.start_costs), at_bound=list(last.at_bound),
            cold_start=last.cold_start,
            rcond=last.rcond, init=last.init, power=last.power,
        )
        return rec, HACCovariance(m["hac_bandwidth"])
    model = misfit_model(m["model"], forward, signal, beam_width, m["correlation"],
                         m["envelope_power"], m["nu"])
    t0 = time.perf_counter()
    space, r = last.space, last.residuals
    n_eval = n_jac = 0
    if m["model"] == "discrepancy" and m["covariance"] == "sandwich":
        # θ stays the noise-only least-squares estimate; its covariance under residuals of
        # covariance C (learned): (JᵀJ)⁻¹ Jᵀ C J (JᵀJ)⁻¹
        model.fit_hyper(r)
        jac = last.jacobian
        if error is None:
            cov = last.cov @ model.residual_covariance_jacobian(jac) @ last.cov
        else:
            jac_a, sd_a = error(space)
            meat = model.residual_covariance_jacobian(np.hstack([jac, jac_a]))
            cov = marginalise(jac, jac_a, r, sd_a, meat)[2]
        rec = OrderResult(
            order=last.order, space=space, cov=cov, chi2=last.chi2, dof=last.dof,
            residuals=r, jacobian=jac, converged=last.converged, status=last.status,
            message=last.message, n_eval=last.n_eval, n_jac=last.n_jac, n_iter=last.n_iter,
            wall_time=last.wall_time + time.perf_counter() - t0,
            start_costs=list(last.start_costs), at_bound=list(last.at_bound),
            cold_start=last.cold_start,
            rcond=last.rcond, init=last.init, power=last.power,
        )
        return rec, model
    with blas_threads(cfg["fit"]["blas_threads"]):
        for _ in range(max(int(m["iterations"]), 1)):
            model.fit_hyper(r)
            prob = _Problem(objective, observed, sig, space, transform=model)
            res = _solve(prob, cfg, final=True)
            n_eval, n_jac = n_eval + prob.n_eval, n_jac + prob.n_jac
            space = space.copy()
            space.values[space.free] = res.x
            r, jac = objective.jacobian(space.values, space.free_index, observed, sig)
        cov, rcond = laplace_covariance(model.laplace_jacobian(r, jac), space.free_names)
        if error is not None:  # the error held at its estimate in the refit: marginalised
            jac_a, sd_a = error(space)
            cov = marginalise(model.laplace_jacobian(r, jac), model.laplace_jacobian(r, jac_a),
                              model.whiten(r), sd_a)[2]
    dof = max(r.size - int(space.free.sum()), 1)
    rec = OrderResult(
        order=last.order, space=space, cov=cov, chi2=float(np.sum(r * r)), dof=dof,
        residuals=np.asarray(r, float), jacobian=np.asarray(jac, float),
        converged=bool(res.status > 0), status=int(res.status), message=str(res.message),
        n_eval=n_eval, n_jac=n_jac, n_iter=n_jac, wall_time=time.perf_counter() - t0,
        at_bound=[space.free_names[i] for i in np.flatnonzero(res.active_mask)],
        rcond=rcond, init=last.space.values.copy(), power=objective.power(space.values),
        cold_start=last.cold_start,
    )
    return rec, model


def _apply_misfit_policy(result) -> None:
    """Switch the misfit likelihood on when ``[misfit] remedy`` says so (in place)."""
    m = result.config["misfit"]
    result.uncertainty = {"model": "normal", "switched_on": False,
                          "meaning": "noise only: sigma taken as known, model exact"}
    if result.config["fit"]["residual"] != "likelihood" or m["remedy"] == "never":
        return
    misfit = not result.adequacy.adequate
    if m["remedy"] == "auto" and not misfit:
        return
    plain = result.last
    rec, model = misfit_refit(result)
    result.orders[-1] = rec
    result.plain_last = plain
    result.misfit_model = model
    why = "the adequacy test found a misfit" if misfit else "configured (remedy = always)"
    result.uncertainty = {**model.describe(), "switched_on": True, "reason": why,
                          "remedy": f"uncertainties from a {model.sentence()}, switched on "
                                    f"because {why}"}
    for key in ("adequacy", "statistics"):  # recomputed at the refitted solution
        result.__dict__.pop(key, None)


# ------------------------------------------------------------------ public entry point
def _as_beam_maps(data) -> BeamMaps:
    if isinstance(data, BeamMaps):
        data.validate(require_signal=True)
        return data
    if isinstance(data, (str, Path)):
        from bayesoof.data.fitsio import read_beam_maps

        return read_beam_maps(data)
    raise DataError(
        f"fit: data must be BeamMaps or the path of a FITS file, got {type(data).__name__}"
    )


def fit(
    data,
    telescope="effelsberg",
    order: int | None = None,
    config=None,
    *,
    illumination: str | None = None,
    sigma=None,
    orders=None,
    start=None,
    fit_previous: bool | None = None,
    residual: str | None = None,
    n_starts: int | None = None,
    seed: int | None = None,
    sampling=None,
    method: str = "auto",
    verbose: bool = False,
) -> FitResult:
    """Fit Zernike (and illumination) coefficients to OOF beam maps, orders 1 → N.

    Parameters
    ----------
    data : BeamMaps or str or Path
        The beam maps, or a FITS file (pyoof or Nikolic format).
    telescope : str, Path or Telescope
        Preset name (e.g. 'effelsberg'), TOML file or Telescope.
    order : int, optional
        Largest Zernike order N (default: ``fit.order`` of the configuration, 5).
    config : None, str, Path or dict
        Fit configuration: a preset name ('default', 'pyoof'), a TOML file or a dict;
        it overrides ``bayesoof/presets/fit/default.toml`` entry by entry.
    illumination : {'parabolic', 'gaussian'}, optional
        Overrides ``fit.illumination``.
    sigma : float, sequence or ndarray, optional
        Noise σ in data units (one value, one per map or one per sample); overrides the
        file's σ and the estimate.
    orders : sequence of int, optional
        Orders to fit, increasing (default ``1..N``); each starts from the previous one
        when ``fit_previous``.
    start : FitResult or dict, optional
        Start values in the ``params`` form (K of any length; missing entries keep the
        configured start): the first order starts there, and coefficients entering at a
        later order start at their value here.  Fixed entries keep their configured values.
    fit_previous, residual, n_starts, seed : optional
        Override the ``[fit]`` entries of the same name.
    sampling : ApertureGrid, optional
        Aperture pixels of the forward model (default: its own choice).
    method : {'auto', 'direct', 'fft'}
        Far-field transform of the forward model.
    verbose : bool
        Print one line per order.

    Returns
    -------
    FitResult
        See :class:`bayesoof.inference.results.FitResult`.
    """
    t_start = time.perf_counter()
    if order is not None and (int(order) != order or order < 1):
        raise FitConfigError(f"order must be an integer >= 1, got {order!r}")
    cfg = load_fit_config(
        config, order=None if order is None else int(order), illumination=illumination,
        fit_previous=fit_previous, residual=residual, n_starts=n_starts, seed=seed,
    )
    f = cfg["fit"]
    N = f["order"]
    if orders is None:
        orders = list(range(1, N + 1))
    else:
        orders = [int(k) for k in orders]
        if not orders or any(k < 1 or k > N for k in orders) or sorted(set(orders)) != orders:
            raise FitConfigError(
                f"orders must be increasing integers in 1..{N} (the fit order), got {orders}"
            )
    data = _as_beam_maps(data)
    tel = get_telescope(telescope)
    cfg = resolve_illumination(cfg, tel)  # "preset": the telescope's declared illumination
    with blas_threads(f["blas_threads"]):
        forward, sig, origin, objective, results = _run(
            data, tel, cfg, orders, sigma, sampling, method, verbose, start
        )
    last = results[-1]
    if not last.converged:
        warnings.warn(f"order {last.order} did not converge: {last.message}", FitWarning,
                      stacklevel=2)
    if last.at_bound:
        warnings.warn(
            f"order {last.order}: {', '.join(last.at_bound)} ended at a bound; the Laplace "
            "covariance of a bounded parameter is not meaningful",
            FitWarning,
            stacklevel=2,
        )
    result = FitResult(
        data=data,
        telescope=tel,
        forward=forward,
        sigma=sig,
        sigma_origin=origin,
        config=cfg,
        orders=results,
        wall_time=0.0,
        compile_time=0.0 if objective.cached else objective.compile_time,
    )
    with blas_threads(f["blas_threads"]):  # its Jacobians and products: as the fit's
        apply_model_error(result, objective)  # before the verdict: it judges the joint solution
        _apply_misfit_policy(result)
    if result.model_error is not None:  # (the K move in the sd finally reported)
        result.model_error["K_shift_max_sd"] = shift_in_sd(result)
        result.uncertainty = {**result.uncertainty, "model_error": result.model_error}
    result.wall_time = time.perf_counter() - t_start
    return result
