"""The one residual definition shared by the quick fit, the PyMC model and emcee.

Each map i is modelled as ``data = a_i (1 + g_i t) P_i(u, v; θ) + b_i + c_i t + noise``
with a per-map amplitude a_i and offset b_i (both in the data's power units), their drifts
along the scan time t ∈ [-1/2, 1/2] (relative gain drift g_i, baseline drift c_i in data
units; :mod:`bayesoof.inference.nuisances`; 0 when not free) and P_i the normalised
power of :meth:`bayesoof.physics.forward.ForwardModel.power`.  The standardised residual is
``(data - model) / σ`` with σ the per-sample noise (same units as the data).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from scipy.optimize import minimize, minimize_scalar

from bayesoof.inference.nuisances import scan_time

__all__ = [
    "MISFIT_MODELS",
    "Discrepancy",
    "NoisePerMap",
    "HACCovariance",
    "StudentT",
    "hac_score_covariance",
    "misfit_model",
    "predict",
    "beam_from_power",
    "pyoof_normalised_residuals",
    "standardized_residuals",
]


def predict(forward, K, illum: dict, amp, offset, pointing=None, focus_offset=None,
            blockage=None, gain_drift=None, baseline_drift=None, aperture_error=None):
    """Model beam values a_i (1 + g_i t) P_i + b_i + c_i t at every sample (tensor, data units).

    ``amp`` and ``offset`` are (n_maps,) tensors; ``focus_offset`` (n_maps,) m moves each
    map's effective d_z to ``d_z + focus_offset``; ``blockage`` holds free leg dimensions;
    ``gain_drift`` g_i (relative) and ``baseline_drift`` c_i (data units), (n_maps,), are
    the per-map drifts along the scan time t in [-1/2, 1/2]
    (:func:`bayesoof.inference.nuisances.scan_time`); the rest (``aperture_error``, the
    model-error term) as in ``ForwardModel.power``.
    """
    power = model_power(forward, K, illum, pointing, focus_offset, blockage, aperture_error)
    return beam_from_power(forward, power, amp, offset, gain_drift, baseline_drift)


def beam_from_power(forward, power, amp, offset, gain_drift=None, baseline_drift=None):
    """a_i (1 + g_i t) P_i + b_i + c_i t from the normalised power P (tensor or NumPy).

    The linear part of :func:`predict` (the per-map gain, baseline and their drifts).
    """
    idx = forward.map_index
    as_t = pt.as_tensor_variable if isinstance(power, pt.TensorVariable) else np.asarray
    gain = as_t(amp)[idx]
    base = as_t(offset)[idx]
    if gain_drift is not None or baseline_drift is not None:
        t = scan_time(forward.data)
        if gain_drift is not None:
            gain = gain * (1.0 + as_t(gain_drift)[idx] * t)
        if baseline_drift is not None:
            base = base + as_t(baseline_drift)[idx] * t
    return gain * power + base


def model_power(forward, K, illum: dict, pointing=None, focus_offset=None, blockage=None,
                aperture_error=None, **_):
    """Normalised power P_i at every sample, with the nuisances of :func:`predict`.

    Extra keyword arguments (``amp``, ``offset``, the drifts) are ignored, so that the parameter
    space's ``predict`` arguments can be passed as they are.
    """
    d_z = None if focus_offset is None else forward.data.d_z + focus_offset
    return forward.power(K, illum, pointing, d_z=d_z, blockage=blockage or None,
                         aperture_error=aperture_error)


def standardized_residuals(model, observed, sigma):
    """(observed - model) / σ, elementwise (tensor)."""
    return (observed - model) / sigma


def pyoof_normalised_residuals(power, observed, map_slices):
    """pyoof's residual: min-max normalised data minus min-max normalised model, per map.

    For comparison with pyoof only (no noise weighting; not a likelihood).
    """
    parts = []
    for sl in map_slices:
        p, d = power[sl], observed[sl]
        pn = (p - pt.min(p)) / (pt.max(p) - pt.min(p))
        dn = (d - d.min()) / (d.max() - d.min())
        parts.append(dn - pn)
    return pt.concatenate(parts)


# ====================================================================== misfit models
# When the adequacy test (bayesoof.inference.adequacy) finds a misfit, the noise-only
# likelihood makes the uncertainties far too small.  Each class below replaces it by a
# likelihood that admits the misfit, in one definition: ``whiten`` maps the standardised
# residual vector r = (data - model)/σ to a vector w with Σ w² = -2 log L + const (so the
# quick fit's least squares maximises that likelihood), ``whiten_jacobian`` gives the
# matching Jacobian for the Laplace covariance, ``fit_hyper`` learns the per-map
# hyper-parameters by maximum likelihood at fixed θ (the fit alternates), and
# ``logp_tensor`` is the same log-likelihood as a PyTensor graph for the PyMC model
# (hyper-parameters fixed at the quick fit's values: empirical Bayes).

MISFIT_MODELS = ("discrepancy", "noise_per_map", "student_t", "hac")


class NoisePerMap:
    """Per-map noise learned jointly: r_i ~ N(0, s_i²), s_i by maximum likelihood.

    Equivalent to one white variance-inflation factor s_i² per map.  It scales each map's
    weight but keeps the residuals independent, so it cannot describe structured misfit.
    """

    name = "noise_per_map"

    def __init__(self, map_slices):
        self.map_slices = list(map_slices)
        self.s = np.ones(len(self.map_slices))

    def fit_hyper(self, r) -> None:
        """s_i² = mean(r_i²) (the maximum-likelihood value)."""
        self.s = np.array([np.sqrt(np.mean(np.asarray(r)[sl] ** 2)) for sl in self.map_slices])

    def _scale(self, n: int) -> np.ndarray:
        out = np.empty(n)
        for sl, s in zip(self.map_slices, self.s, strict=True):
            out[sl] = s
        return out

    def whiten(self, r) -> np.ndarray:
        """r_i / s_i."""
        return np.asarray(r) / self._scale(np.size(r))

    def whiten_jacobian(self, r, jac) -> np.ndarray:
        """J_i / s_i (the Jacobian of :meth:`whiten`)."""
        return np.asarray(jac) / self._scale(np.size(r))[:, None]

    laplace_jacobian = whiten_jacobian

    def logp_tensor(self, r):
        """Σ log N(r_i; 0, s_i²) as a PyTensor graph (constants dropped)."""
        scale = self._scale(self.map_slices[-1].stop)
        return -0.5 * pt.sum((r / scale) ** 2)

    def describe(self) -> dict:
        """Hyper-parameters for summary.json."""
        return {"model": self.name, "noise_scale": self.s.tolist(),
                "meaning": "per-map noise sd = noise_scale x sigma, learned jointly"}

    def sentence(self) -> str:
        """Short account for the CLI line."""
        return f"noise learned per map (sd x {self.s.min():.2f}-{self.s.max():.2f})"


class StudentT:
    """Robust Student-t likelihood: r_i ~ t_ν(0, s_i), s_i by maximum likelihood.

    w = sign(r) sqrt((ν+1) log(1 + (r/s)²/ν)) has Σ w² = -2 log L + const.  The Laplace
    covariance uses the expected Fisher information (ν+1)/((ν+3) s²) per sample (the
    observed one is not positive definite at large residuals).
    """

    name = "student_t"

    def __init__(self, map_slices, nu: float = 4.0):
        self.map_slices = list(map_slices)
        self.nu = float(nu)
        self.s = np.ones(len(self.map_slices))

    def fit_hyper(self, r) -> None:
        """s_i by a 1-d maximum-likelihood search per map."""
        nu = self.nu
        out = []
        for sl in self.map_slices:
            x2 = np.asarray(r)[sl] ** 2

            def nll(logs, x2=x2):
                s2 = np.exp(2 * logs)
                return x2.size * logs + 0.5 * (nu + 1) * np.sum(np.log1p(x2 / (nu * s2)))

            rms = np.sqrt(np.mean(x2))
            res = minimize_scalar(nll, bounds=(np.log(rms) - 5, np.log(rms) + 2), method="bounded")
            out.append(float(np.exp(res.x)))
        self.s = np.array(out)

    def _scale(self, n: int) -> np.ndarray:
        return NoisePerMap._scale(self, n)

    def whiten(self, r) -> np.ndarray:
        """The signed square root of each sample's -2 log t density (+ const)."""
        x = np.asarray(r) / self._scale(np.size(r))
        return np.sign(x) * np.sqrt((self.nu + 1) * np.log1p(x * x / self.nu))

    def whiten_jacobian(self, r, jac) -> np.ndarray:
        """Jacobian of :meth:`whiten` (for the optimiser)."""
        s = self._scale(np.size(r))
        x = np.asarray(r) / s
        w = self.whiten(r)
        small = np.abs(x) < 1e-8
        dw = np.where(small, np.sqrt((self.nu + 1) / self.nu),
                      (self.nu + 1) * x / (self.nu + x * x) / np.where(small, 1.0, w))
        return np.asarray(jac) * (dw / s)[:, None]

    def laplace_jacobian(self, r, jac) -> np.ndarray:
        """J scaled by the square root of the expected Fisher information per sample."""
        s = self._scale(np.size(r))
        return np.asarray(jac) * (np.sqrt((self.nu + 1) / (self.nu + 3)) / s)[:, None]

    def logp_tensor(self, r):
        """Σ log t_ν(r_i; 0, s_i) as a PyTensor graph (constants dropped)."""
        scale = self._scale(self.map_slices[-1].stop)
        return -0.5 * (self.nu + 1) * pt.sum(pt.log1p((r / scale) ** 2 / self.nu))

    def describe(self) -> dict:
        """Hyper-parameters for summary.json."""
        return {"model": self.name, "nu": self.nu, "scale": self.s.tolist(),
                "meaning": "Student-t residuals with scale = scale x sigma per map"}

    def sentence(self) -> str:
        """Short account for the CLI line."""
        return (f"Student-t likelihood (nu {self.nu:g}, scale x "
                f"{self.s.min():.2f}-{self.s.max():.2f})")


class Discrepancy:
    """Correlated model discrepancy on the beam maps, marginalised (low-rank Gaussian process).

    In units of σ, each map's residual is ``r = Φ_i c_i + s_i ε`` with ε white, and the
    discrepancy ``Φ_i c_i`` a smooth relative error of the beam: basis functions
    ``φ_k(u) = e(u) exp(-|u - u_k|² / (2 h²))`` on a square lattice of centres u_k with
    spacing h (``correlation`` beam widths λ/D), ``e = (model beam - offset)/σ`` the
    map's signal in units of σ raised to ``envelope_power`` (relative to its peak for
    powers other than 1), and ``c_i ~ N(0, τ_i² I)``: τ_i is the rms relative error of
    the beam that the model cannot describe.  ``s_i`` (noise scale) and τ_i are learned
    per map by maximising the marginal likelihood at fixed θ; θ is then refitted under
    the marginal likelihood ``N(r; 0, s_i² I + τ_i² Φ_i Φ_iᵀ)``, whose profile over c
    is the least-squares vector ``w = [(r - Φ ĉ)/s; ĉ/τ]`` (ĉ the posterior mean of c):
    Σ w² = rᵀ C⁻¹ r, and (M J)ᵀ (M J) = Jᵀ C⁻¹ J is the marginal Fisher information.
    """

    name = "discrepancy"

    def __init__(self, map_slices, positions, signal, beam_width: float,
                 correlation: float = 1.0, envelope_power: float = 1.0,
                 min_column: float = 1e-3):
        self.map_slices = list(map_slices)
        self.correlation = float(correlation)
        self.envelope_power = float(envelope_power)
        h = self.correlation * float(beam_width)
        self.basis = []
        for sl, (u, v) in zip(self.map_slices, positions, strict=True):
            u, v = np.asarray(u, float), np.asarray(v, float)
            e = np.clip(np.asarray(signal, float)[sl], 0.0, None)
            if self.envelope_power != 1.0:
                peak = max(float(e.max()), 1e-300)
                e = peak * (e / peak) ** self.envelope_power
            cu = np.arange(u.min(), u.max() + h / 2, h)
            cv = np.arange(v.min(), v.max() + h / 2, h)
            CU, CV = (a.ravel() for a in np.meshgrid(cu, cv))
            phi = e[:, None] * np.exp(-((u[:, None] - CU) ** 2 + (v[:, None] - CV) ** 2)
                                       / (2.0 * h * h))
            norms = np.linalg.norm(phi, axis=0)
            keep = norms > min_column * norms.max() if norms.max() > 0 else norms > 0
            self.basis.append(np.ascontiguousarray(phi[:, keep]))
        self._eig = [np.linalg.eigh(p.T @ p) for p in self.basis]
        self.s = np.ones(len(self.map_slices))
        self.tau = np.full(len(self.map_slices), 1e-6)
        self._setup()

    def _setup(self) -> None:
        """Precompute A_i = (ΦᵀΦ + (s/τ)² I)⁻¹ per map from the eigen-decomposition."""
        self._A = []
        for (lam, vec), s, t in zip(self._eig, self.s, self.tau, strict=True):
            self._A.append((vec / (lam + (s / t) ** 2)) @ vec.T)

    def fit_hyper(self, r) -> None:
        """Maximise the marginal likelihood over (s_i, τ_i) per map at fixed residuals."""
        r = np.asarray(r, float)
        s_out, t_out = [], []
        for sl, (lam, vec), phi in zip(self.map_slices, self._eig, self.basis, strict=True):
            ri = r[sl]
            n = ri.size
            rr = float(ri @ ri)
            b2 = (vec.T @ (phi.T @ ri)) ** 2
            lam = np.clip(lam, 0.0, None)

            def nll(x, rr=rr, b2=b2, lam=lam, n=n):
                s2, t2 = np.exp(2 * x[0]), np.exp(2 * x[1])
                quad = (rr - np.sum(b2 * t2 / (s2 + t2 * lam))) / s2
                return 0.5 * (quad + n * np.log(s2) + np.sum(np.log1p(t2 * lam / s2)))

            x0 = np.array([0.0, np.log(max(np.sqrt(max(rr / n - 1.0, 1e-6)), 1e-3))])
            best = min((minimize(nll, x0 + d, method="Nelder-Mead",
                                 options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 400})
                        for d in (np.zeros(2), np.array([0.0, 2.0]), np.array([0.0, -3.0]))),
                       key=lambda res: res.fun)
            s_out.append(float(np.exp(best.x[0])))
            t_out.append(float(min(max(np.exp(best.x[1]), 1e-6), 1e3)))
        self.s, self.tau = np.array(s_out), np.array(t_out)
        self._setup()

    def _apply(self, x) -> np.ndarray:
        """M x for a vector or a matrix x (rows: samples); returns the stacked [data; prior]."""
        x = np.asarray(x, float)
        top, bottom = [], []
        for sl, phi, A, s, t in zip(self.map_slices, self.basis, self._A, self.s, self.tau,
                                    strict=True):
            c = A @ (phi.T @ x[sl])
            top.append((x[sl] - phi @ c) / s)
            bottom.append(c / t)
        return np.concatenate(top + bottom)

    def whiten(self, r) -> np.ndarray:
        """[(r - Φĉ)/s; ĉ/τ] per map: Σ w² = rᵀ C⁻¹ r."""
        return self._apply(r)

    def whiten_jacobian(self, r, jac) -> np.ndarray:
        """M J (linear in r: the same map applied to the Jacobian's columns)."""
        return self._apply(jac)

    laplace_jacobian = whiten_jacobian

    def residual_covariance_jacobian(self, jac) -> np.ndarray:
        """Jᵀ C J with C = s² I + τ² Φ Φᵀ per map (the middle of the sandwich)."""
        jac = np.asarray(jac, float)
        out = np.zeros((jac.shape[1], jac.shape[1]))
        for sl, phi, s, t in zip(self.map_slices, self.basis, self.s, self.tau, strict=True):
            ji = jac[sl]
            pj = phi.T @ ji
            out += s * s * (ji.T @ ji) + t * t * (pj.T @ pj)
        return out

    def logp_tensor(self, r):
        """-½ rᵀ C⁻¹ r per map as a PyTensor graph (hyper-parameters fixed; log|C| constant)."""
        total = 0.0
        for sl, phi, A, s in zip(self.map_slices, self.basis, self._A, self.s, strict=True):
            ri = r[sl]
            b = pt.dot(phi.T, ri)
            total = total - 0.5 * (pt.sum(ri * ri) - pt.dot(b, pt.dot(A, b))) / s**2
        return total

    def describe(self) -> dict:
        """Hyper-parameters for summary.json."""
        return {"model": self.name, "relative_error_rms": self.tau.tolist(),
                "noise_scale": self.s.tolist(), "correlation_beamwidths": self.correlation,
                "envelope_power": self.envelope_power,
                "basis_functions": [int(p.shape[1]) for p in self.basis],
                "meaning": ("beam = model x (1 + smooth relative error of rms "
                            "relative_error_rms, correlation length correlation_beamwidths "
                            "lambda/D) + noise of sd noise_scale x sigma; marginalised")}

    def sentence(self) -> str:
        """Short account for the CLI line."""
        return (f"model-discrepancy likelihood on (relative beam error "
                f"{100 * self.tau.min():.2g}-{100 * self.tau.max():.2g} %, noise x "
                f"{self.s.min():.2f}-{self.s.max():.2f}, learned per map)")


def misfit_model(kind: str, forward, signal, beam_width: float, correlation: float = 1.0,
                 envelope_power: float = 1.0, nu: float = 4.0):
    """Build the misfit likelihood ``kind`` (one of :data:`MISFIT_MODELS`) for a forward model.

    ``signal``: the fitted beam minus offsets, over σ (per sample); ``beam_width`` λ/D in
    rad; the other arguments as in the classes.
    """
    slices = forward.map_slices
    if kind == "noise_per_map":
        return NoisePerMap(slices)
    if kind == "student_t":
        return StudentT(slices, nu)
    if kind == "discrepancy":
        pos = [(m.u, m.v) for m in forward.data.maps]
        return Discrepancy(slices, pos, signal, beam_width, correlation, envelope_power)
    raise ValueError(f"misfit model {kind!r}; expected one of {MISFIT_MODELS}")


def hac_score_covariance(jac, r, map_slices, positions, bandwidth: float) -> np.ndarray:
    """Spatial HAC estimate of the variance of the score Jᵀr under correlated residuals.

    ``B = Σ_i Σ_j w_ij (J_i r_i)(J_j r_j)ᵀ`` over pairs of samples of the same map, with the
    product Bartlett weight ``w = (1 - |Δu|/L)(1 - |Δv|/L)`` for |Δu|, |Δv| < L (a positive
    semi-definite kernel; Conley 1999).  With white residuals it reduces to Σ r_i² J_iᵀ J_i
    (about the noise-only information times the reduced χ²); structured residuals add the
    cross terms.  The least-squares covariance under misfit is then ``A⁻¹ B A⁻¹``.
    ``positions`` per map (u, v) and ``bandwidth`` L in the same unit (rad).

    The weight is separable, so on a map whose distinct u and v values span a small
    table (a lattice, full or not, even with rounded coordinates) ``Σ_j w_ij g_j`` is the
    table of scores smoothed by two banded matrices ``W_u[a, b] = max(1 - |u_a - u_b|/L, 0)``
    and ``W_v`` (the same pairs and weights as the definition, no neighbour search);
    scattered maps sum over the pairs within L found by a k-d tree.
    """
    jac, r = np.asarray(jac, float), np.asarray(r, float)
    out = np.zeros((jac.shape[1], jac.shape[1]))
    for sl, (u, v) in zip(map_slices, positions, strict=True):
        g = jac[sl] * r[sl, None]
        smoothed = _bartlett_separable(g, np.asarray(u, float), np.asarray(v, float),
                                       bandwidth)
        if smoothed is None:
            out += _hac_pairs(g, np.asarray(u, float), np.asarray(v, float), bandwidth)
        else:
            out += g.T @ smoothed
    return out


# largest table (distinct u × distinct v values) smoothed densely, per sample of the map
_TABLE_PER_SAMPLE = 4


def _bartlett_separable(g, u, v, bandwidth: float):
    """``Σ_j w_ij g_j`` for every sample i (n, p), or None when the table would be too large."""
    uu, iu = np.unique(u, return_inverse=True)
    vv, iv = np.unique(v, return_inverse=True)
    if uu.size * vv.size > _TABLE_PER_SAMPLE * max(u.size, 1):
        return None
    wu = np.clip(1.0 - np.abs(uu[:, None] - uu[None, :]) / bandwidth, 0.0, None)
    wv = np.clip(1.0 - np.abs(vv[:, None] - vv[None, :]) / bandwidth, 0.0, None)
    table = np.zeros((uu.size, vv.size, g.shape[1]))
    cell = iu * vv.size + iv
    if np.unique(cell).size == cell.size:  # one sample per position (a lattice map)
        table.reshape(-1, g.shape[1])[cell] = g
    else:
        np.add.at(table, (iu, iv), g)  # samples sharing a position add up
    table = (wu @ table.reshape(uu.size, -1)).reshape(table.shape)  # along u
    table = np.matmul(wv, table)  # along v, for every u row
    return table[iu, iv]


def _hac_pairs(g, u, v, bandwidth: float) -> np.ndarray:
    """``Σ_ij w_ij g_i g_jᵀ`` over the pairs within ``bandwidth`` (k-d tree; scattered maps)."""
    from scipy.sparse import coo_matrix
    from scipy.spatial import cKDTree

    pts = np.column_stack([u, v])
    pairs = cKDTree(pts).query_pairs(bandwidth, p=np.inf, output_type="ndarray")
    d = np.abs(pts[pairs[:, 0]] - pts[pairs[:, 1]]) / bandwidth
    w = (1.0 - d[:, 0]) * (1.0 - d[:, 1])
    n = g.shape[0]
    W = coo_matrix((w, (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    cross = g.T @ (W @ g)
    return g.T @ g + cross + cross.T


class HACCovariance:
    """Record of the spatial-HAC sandwich (not a likelihood: θ stays the least-squares one).

    The posterior has no counterpart: ``logp_tensor`` is the noise-only Gaussian.
    """

    name = "hac"

    def __init__(self, bandwidth: float):
        self.bandwidth = float(bandwidth)

    def describe(self) -> dict:
        """For summary.json."""
        return {"model": self.name, "bandwidth_beamwidths": self.bandwidth,
                "meaning": ("least-squares estimate; covariance A^-1 B A^-1 with B the "
                            "spatial-HAC (product Bartlett, bandwidth in lambda/D) variance of "
                            "the score J'r under correlated residuals")}

    def sentence(self) -> str:
        """Short account for the CLI line."""
        return (f"spatial-HAC sandwich covariance (residual correlation within "
                f"{self.bandwidth:g} beam widths)")

    def logp_tensor(self, r):
        """Noise-only Gaussian log-likelihood (constants dropped)."""
        return -0.5 * pt.sum(r * r)
