"""The elevation (gravity) model of a campaign, with uncertainty: a hierarchical model.

For every Zernike term j and observation i at elevation el_i::

    K_ij = A_j sin(el_i) + B_j cos(el_i) + C_j + η_ij,      η_ij ~ N(0, τ_j²)

η is the per-observation scatter (thermal, wind, ...), with its own learned scale τ_j per
term.  K in waves at one reference wavelength (the first observation's; coefficients
measured at another wavelength are rescaled by λ_i / λ_ref, i.e. compared as surface).

**Two-stage, not joint.**  Each observation enters through a Gaussian likelihood of its K,
``K̂_i ~ N(K_i, Σ_i)``: the quick fit's Laplace approximation (a flat-prior least-squares
fit, so ``(K̂_i, Σ_i)`` is the likelihood, not a posterior) or, for a sampled posterior,
its mean and covariance with the Gaussian K prior divided out.  The scatter η is then
integrated analytically: ``K̂_i ~ N(X_i β, Σ_i + diag(τ²))``, and only β = (A, B, C) and τ
are sampled (NUTS).  Why: the per-observation fits are the expensive part (the forward
model); they run once, in parallel on Dask, and the hierarchical model then costs seconds,
can be refitted with other priors or terms, and needs no graph holding every map of the
campaign.  It loses nothing when each observation's likelihood in K is Gaussian, which
holds at the S/N the method needs (≥ 100–200); ``joint_laplace`` fits the joint model
(all maps, every observation's nuisance parameters, β, with τ fixed) and
``tests/campaign/test_gravity.py`` shows the two agree on a small campaign.

Sampling: β and η enter linearly, so both are integrated analytically; NUTS samples only
τ from its exact marginal posterior, and each draw of τ gets one exact draw of β | τ (see
:func:`build_model`).  (Sampling β and τ together funnels: sin, cos and 1 are nearly
collinear over a limited elevation range, and the spread of the poorly determined
combinations of A, B, C grows with τ.)  Priors (weakly informative, in units of each mode's rms):
``A, B, C ~ N(0, (coef_rms / mode_rms)²)``, ``τ_j ~ HalfNormal(scatter_rms / mode_rms)``,
coef_rms = 1 wave and scatter_rms = 0.1 wave of rms phase per mode (the per-observation
K prior of ``presets/priors/default.toml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayesoof.physics import zernike

__all__ = [
    "COEF_RMS",
    "SCATTER_RMS",
    "GravityError",
    "GravityResult",
    "Stage1",
    "conditional_coefficients",
    "design",
    "fit_gravity",
    "joint_laplace",
    "load_gravity",
    "marginal_loglik",
    "posterior_K_draws",
    "stage1_from_fits",
    "stage1_from_posteriors",
]

COEF_RMS = 1.0  # waves of rms phase per mode: prior sd of A, B, C (× 1 / mode_rms)
SCATTER_RMS = 0.1  # waves of rms phase per mode: HalfNormal scale of τ (× 1 / mode_rms)
TERMS = ("A", "B", "C")


class GravityError(ValueError):
    """The observations cannot support the gravity model (too few, missing elevation...)."""


def design(elevation_deg) -> np.ndarray:
    """Design matrix (n, 3): sin(el), cos(el), 1 for elevations in degrees."""
    el = np.deg2rad(np.asarray(elevation_deg, float))
    return np.stack([np.sin(el), np.cos(el), np.ones_like(el)], axis=-1)


# ------------------------------------------------------------------ stage 1
@dataclass
class Stage1:
    """Per-observation Gaussian likelihood of K: means (n, J) and covariances (n, J, J).

    K in waves at ``wavelength`` (m); ``elevation`` in degrees; ``nl`` the (n, l) of the J
    columns; ``labels`` names the observations.  ``terms``: the columns modelled (free in
    every observation: piston and any fixed term are left out).
    """

    elevation: np.ndarray
    K: np.ndarray
    cov: np.ndarray
    nl: list
    wavelength: float
    labels: list
    source: str = "laplace"
    terms: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        self.elevation = np.asarray(self.elevation, float)
        self.K = np.asarray(self.K, float)
        self.cov = np.asarray(self.cov, float)
        n, J = self.K.shape
        if self.cov.shape != (n, J, J) or self.elevation.shape != (n,) or len(self.nl) != J:
            raise GravityError(
                f"stage 1: shapes disagree (K {self.K.shape}, cov {self.cov.shape}, "
                f"elevation {self.elevation.shape}, {len(self.nl)} terms)"
            )
        if not np.all(np.isfinite(self.elevation)):
            bad = [self.labels[i] for i in np.flatnonzero(~np.isfinite(self.elevation))]
            raise GravityError(f"no elevation (MEANEL) for {', '.join(map(str, bad))}")
        if self.terms is None:
            var = np.diagonal(self.cov, axis1=1, axis2=2)
            self.terms = np.flatnonzero(np.all(var > 0, axis=0))
        if n < 4:
            raise GravityError(
                f"the gravity model needs at least 4 observations (3 coefficients per term "
                f"and a scatter scale), got {n}"
            )
        if np.ptp(self.elevation) < 5.0:
            raise GravityError(
                f"elevations span only {np.ptp(self.elevation):.1f} deg: A sin(el) + B cos(el)"
                " + C cannot be separated"
            )

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return self.K.shape[0]

    @property
    def term_names(self) -> list[str]:
        """Names K(n,l) of the modelled terms."""
        return [f"K({n},{l})" for n, l in (self.nl[j] for j in self.terms)]

    @property
    def y(self) -> np.ndarray:
        """Modelled columns of K, (n, J')."""
        return self.K[:, self.terms]

    @property
    def S(self) -> np.ndarray:
        """Their covariances, (n, J', J')."""
        return self.cov[:, self.terms][:, :, self.terms]

    @property
    def mode_rms(self) -> np.ndarray:
        """rms of each modelled mode over the unit disc (1/sqrt(n+1) or 1/sqrt(2(n+1)))."""
        return np.array([zernike.mode_rms(*self.nl[j]) for j in self.terms])


def _common_nl(nls: list) -> list:
    longest = max(nls, key=len)
    for nl in nls:
        if list(nl) != list(longest[: len(nl)]):
            raise GravityError("observations use different Zernike term orders")
    return list(longest)


def _pad(K, cov, J):
    Kp = np.zeros(J)
    Cp = np.zeros((J, J))
    Kp[: K.size] = K
    Cp[: K.size, : K.size] = cov
    return Kp, Cp


def stage1_from_arrays(elevation, K_list, cov_list, nl_list, wavelengths, labels,
                       source="laplace") -> Stage1:
    """Stack per-observation K (waves at their own λ) on the first λ; pad lower orders."""
    nl = _common_nl(nl_list)
    J = len(nl)
    lam = np.asarray(wavelengths, float)
    ratio = lam / lam[0]
    Ks, Cs = [], []
    for K, C, r in zip(K_list, cov_list, ratio, strict=True):
        Kp, Cp = _pad(np.asarray(K, float), np.asarray(C, float), J)
        Ks.append(Kp * r)
        Cs.append(Cp * r * r)
    return Stage1(np.asarray(elevation, float), np.array(Ks), np.array(Cs), nl, float(lam[0]),
                  list(labels), source)


def _elevation_of(data) -> float:
    val = data.meta.get("MEANEL")
    try:
        return float(val)
    except (TypeError, ValueError):
        return float("nan")


def stage1_from_fits(results, elevation=None, labels=None) -> Stage1:
    """Stage 1 from quick-fit results (``FitResult``): K̂ and its Laplace covariance.

    ``elevation`` (deg) defaults to each file's MEANEL.
    """
    results = list(results)
    el = [_elevation_of(r.data) for r in results] if elevation is None else elevation
    labels = labels or [r.data.source for r in results]
    return stage1_from_arrays(
        el, [r.K for r in results], [r.last.K_cov() for r in results],
        [r.space.nl for r in results], [r.data.wavelength for r in results], labels,
    )


def likelihood_from_posterior(draws_K, nl, prior_rms: float = 0.1, tilt_rms: float = 0.1,
                              free=None):
    """Gaussian likelihood of K from posterior draws (n_draws, J) with the prior removed.

    The posterior is moment-matched by N(m, P) and the Gaussian K prior N(0, D) (D from the
    ``[zernike] rms`` and ``tilt_rms`` of the priors preset) divided out:
    ``Σ⁻¹ = P⁻¹ - D⁻¹``, ``K̂ = Σ P⁻¹ m``.  Terms not in ``free`` get zero variance.
    """
    draws_K = np.asarray(draws_K, float)
    J = draws_K.shape[1]
    free = np.ones(J, bool) if free is None else np.asarray(free, bool)
    idx = np.flatnonzero(free & (np.std(draws_K, axis=0) > 0))
    m = draws_K.mean(axis=0)
    P = np.cov(draws_K[:, idx], rowvar=False).reshape(idx.size, idx.size)
    sd0 = np.array([(tilt_rms if n == 1 else prior_rms) / zernike.mode_rms(n, l)
                    for n, l in (nl[j] for j in idx)])
    Pi = np.linalg.inv(P)
    prec = Pi - np.diag(1.0 / sd0**2)
    w, V = np.linalg.eigh(0.5 * (prec + prec.T))
    w = np.maximum(w, 1e-6 * w.max())  # the prior is weak: keep the precision positive
    Sig = (V / w) @ V.T
    K = np.zeros(J)
    K[idx] = Sig @ (Pi @ m[idx])
    cov = np.zeros((J, J))
    cov[np.ix_(idx, idx)] = Sig
    return K, cov


def posterior_K_draws(posterior, nl, fixed_values=None):
    """Draws of the full K vector (n_draws, J) from a posterior group and a free mask.

    The PyMC model samples only the free modes (coords ``zernike`` = labels ``K(n,l)``);
    fixed terms take ``fixed_values`` (default 0).
    """
    K = posterior["K"]
    d = K.values.reshape(-1, K.shape[-1])
    labels = [str(x) for x in K.coords["zernike"].values] if "zernike" in K.coords else None
    names = [f"K({n},{l})" for n, l in nl]
    J = len(nl)
    if labels is None:
        if d.shape[1] != J:
            raise GravityError(f"posterior K has {d.shape[1]} columns and no labels; "
                               f"expected {J}")
        return d, np.ones(J, bool)
    out = np.tile(np.zeros(J) if fixed_values is None else np.asarray(fixed_values, float)[:J],
                  (d.shape[0], 1))
    free = np.zeros(J, bool)
    for c, lab in enumerate(labels):
        j = names.index(lab)
        out[:, j] = d[:, c]
        free[j] = True
    return out, free


def stage1_from_posteriors(posteriors, elevation=None, labels=None) -> Stage1:
    """Stage 1 from sampled posteriors (``PosteriorResult``), the K prior divided out."""
    Ks, covs, nls, lams = [], [], [], []
    for p in posteriors:
        nl = p.fit.space.nl if getattr(p, "fit", None) is not None else \
            p.info.forward.nl
        d, free = posterior_K_draws(p.idata.posterior, nl)
        K, C = likelihood_from_posterior(d, nl, free=free)
        Ks.append(K)
        covs.append(C)
        nls.append(nl)
        lams.append(p.data.wavelength)
    posteriors = list(posteriors)
    el = [_elevation_of(p.data) for p in posteriors] if elevation is None else elevation
    labels = labels or [p.data.source for p in posteriors]
    return stage1_from_arrays(el, Ks, covs, nls, lams, labels, source="posterior")


# ------------------------------------------------------------------ conditional on τ
def prior_sd(s1: Stage1, coef_rms: float = COEF_RMS) -> np.ndarray:
    """Prior sd (3, J') of A, B, C: coef_rms / mode_rms, waves."""
    return np.tile(coef_rms / s1.mode_rms, (3, 1))


def _normal_equations(s1: Stage1, tau, coef_rms: float):
    """``W_i = (Σ_i + diag(τ²))⁻¹``, ``Λ = P₀ + Σ_i (x_i x_iᵀ) ⊗ W_i``, ``b = Σ_i x_i ⊗ W_i K̂_i``.

    β flattened as (coefficient A/B/C, term): index ``a J' + j``.
    """
    X = design(s1.elevation)
    Jp = s1.terms.size
    tau = np.broadcast_to(np.asarray(tau, float), (Jp,))
    V = s1.S + np.diag(tau**2)[None]
    W = np.linalg.inv(V)
    W = 0.5 * (W + np.swapaxes(W, 1, 2))
    xx = (X[:, :, None] * X[:, None, :]).reshape(-1, 9)  # (n, 9): x_ia x_ib
    Lam = (xx.T @ W.reshape(-1, Jp * Jp)).reshape(3, 3, Jp, Jp).transpose(0, 2, 1, 3)
    Lam = Lam.reshape(3 * Jp, 3 * Jp) + np.diag(1.0 / prior_sd(s1, coef_rms).ravel() ** 2)
    Wy = np.einsum("ijk,ik->ij", W, s1.y)
    b = (X.T @ Wy).ravel()
    return V, W, Lam, b, xx


def conditional_coefficients(s1: Stage1, tau, coef_rms: float = COEF_RMS):
    """Gaussian posterior of β = (A, B, C) given τ (exact: everything is linear-Gaussian).

    Returns
    -------
    mean : (3, J') waves
    cov : (3 J', 3 J') over β flattened as (term A/B/C, zernike term), waves²
    """
    _, _, Lam, b, _ = _normal_equations(s1, tau, coef_rms)
    cov = np.linalg.inv(Lam)
    cov = 0.5 * (cov + cov.T)
    return (cov @ b).reshape(3, s1.terms.size), cov


# ------------------------------------------------------------------ the hierarchical model
def marginal_loglik(s1: Stage1, tau, coef_rms: float = COEF_RMS, grad: bool = False):
    """``log p(K̂ | τ)`` with β and η integrated out (constant dropped), and its gradient.

    ``K̂ = M β + e`` with ``e ~ N(0, blockdiag(V_i))``, ``V_i = Σ_i + diag(τ²)``,
    ``M_i = x_i ⊗ I`` and ``β ~ N(0, P₀⁻¹)``.  With ``W_i = V_i⁻¹``,
    ``Λ = P₀ + Σ_i (x_i x_iᵀ) ⊗ W_i``, ``β̂ = Λ⁻¹ Σ_i x_i ⊗ W_i K̂_i`` and ``r_i = K̂_i - M_i β̂``::

        ℓ(τ) = -½ Σ_i [log|V_i| + r_iᵀ W_i r_i] - ½ β̂ᵀ P₀ β̂ - ½ log|Λ|
        ∂ℓ/∂τ_j = τ_j Σ_i [-W_i + (W_i r_i)(W_i r_i)ᵀ + W_i G_i W_i]_jj,
                  G_i = Σ_ab x_ia x_ib (Λ⁻¹)_ab     (the J' × J' blocks of Λ⁻¹)

    (β̂ is the optimum of the quadratic, so its dependence on τ drops out of the gradient.)
    """
    X = design(s1.elevation)
    Jp = s1.terms.size
    tau = np.asarray(tau, float)
    V, W, Lam, b, xx = _normal_equations(s1, tau, coef_rms)
    Lv = np.linalg.cholesky(V)
    Ll = np.linalg.cholesky(Lam)
    Li = np.linalg.inv(Lam)
    beta = Li @ b
    r = s1.y - X @ beta.reshape(3, Jp)
    Wr = np.einsum("ijk,ik->ij", W, r)
    p0 = 1.0 / prior_sd(s1, coef_rms).ravel() ** 2
    ll = (-np.sum(np.log(np.diagonal(Lv, axis1=1, axis2=2))) - 0.5 * np.sum(Wr * r)
          - 0.5 * np.sum(p0 * beta**2) - np.sum(np.log(np.diag(Ll))))
    if not grad:
        return float(ll)
    # G_i = Σ_ab x_ia x_ib (Λ⁻¹)_ab with (Λ⁻¹)_ab the (a, b) block of J' × J'
    blocks = Li.reshape(3, Jp, 3, Jp).transpose(0, 2, 1, 3).reshape(9, Jp * Jp)
    Gi = (xx @ blocks).reshape(-1, Jp, Jp)
    WGW = W @ Gi @ W
    g = tau * np.sum(-np.diagonal(W, axis1=1, axis2=2) + Wr**2
                     + np.diagonal(WGW, axis1=1, axis2=2), axis=0)
    return float(ll), g


def _marginal_op(s1: Stage1, coef_rms: float):
    """PyTensor Op of :func:`marginal_loglik` (value and analytic gradient in NumPy)."""
    import pytensor.tensor as pt
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    cache = {}

    def value_and_grad(tau):  # NUTS asks for both at the same τ: compute them once
        key = np.asarray(tau, float).tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = marginal_loglik(s1, tau, coef_rms, True)
        return cache[key]

    class MarginalGrad(Op):
        def make_node(self, tau):
            tau = pt.as_tensor_variable(tau)
            return Apply(self, [tau], [tau.type()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = np.asarray(value_and_grad(inputs[0])[1])

    class MarginalLogLik(Op):
        def make_node(self, tau):
            tau = pt.as_tensor_variable(tau)
            return Apply(self, [tau], [pt.dscalar()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = np.asarray(value_and_grad(inputs[0])[0])

        def grad(self, inputs, output_grads):
            return [output_grads[0] * MarginalGrad()(inputs[0])]

    return MarginalLogLik()


def build_model(s1: Stage1, coef_rms: float = COEF_RMS, scatter_rms: float = SCATTER_RMS):
    """PyMC model of τ alone: ``log p(τ | K̂) = log p(K̂ | τ) + log p(τ) + const``.

    β and η are integrated analytically (:func:`marginal_loglik`); β | τ, K̂ is exactly
    Gaussian (:func:`conditional_coefficients`).  Sampling τ and then β given each τ
    samples the joint posterior of (β, τ) without the funnel that τ and the poorly
    determined combinations of A, B, C would otherwise form.
    """
    import pymc as pm

    op = _marginal_op(s1, coef_rms)
    with pm.Model(coords={"term": s1.term_names}) as model:
        tau = pm.HalfNormal("tau", sigma=scatter_rms / s1.mode_rms, dims="term")
        pm.Potential("marginal_likelihood", op(tau))
    return model


def _draw_beta(s1: Stage1, tau_draws: np.ndarray, coef_rms: float, seed: int) -> np.ndarray:
    """One exact draw of β | τ, K̂ per draw of τ: (n_draws, 3, J')."""
    rng = np.random.default_rng(seed)
    out = np.empty((tau_draws.shape[0], 3, s1.terms.size))
    for d, tau in enumerate(tau_draws):
        m, C = conditional_coefficients(s1, tau, coef_rms)
        L = np.linalg.cholesky(0.5 * (C + C.T))
        out[d] = m + (L @ rng.standard_normal(C.shape[0])).reshape(m.shape)
    return out


@dataclass
class GravityResult:
    """Posterior of the gravity model (``idata``) with its stage-1 input."""

    idata: object
    stage1: Stage1
    coef_rms: float
    scatter_rms: float
    wall_time: float = 0.0

    # ---------------------------------------------------------------- draws
    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of A, B, C or tau flattened over chains, (n_draws, J')."""
        v = self.idata.posterior[name].values
        return v.reshape(-1, v.shape[-1])

    def beta_draws(self) -> np.ndarray:
        """(n_draws, 3, J')."""
        return np.stack([self.draws(t) for t in TERMS], axis=1)

    def K_at(self, elevation_deg, full: bool = True) -> np.ndarray:
        """Draws of the gravity-model K at elevations, (n_draws, n_el, J) (or J' terms)."""
        X = design(np.atleast_1d(elevation_deg))
        Kt = np.einsum("ek,dkj->dej", X, self.beta_draws())
        if not full:
            return Kt
        out = np.zeros(Kt.shape[:2] + (len(self.stage1.nl),))
        out[..., self.stage1.terms] = Kt
        return out

    def surface_rms_at(self, elevation_deg) -> np.ndarray:
        """Draws of the plain rms surface error (µm, on-axis) of the model, (n_draws, n_el)."""
        from bayesoof.products.maps import surface_um
        from bayesoof.products.rms import plain_rms

        return surface_um(plain_rms(self.K_at(elevation_deg), self.stage1.nl),
                          self.stage1.wavelength)

    def thermal(self) -> dict:
        """Measured minus gravity model per observation and term (waves), with sd.

        sd combines the gravity model's posterior spread and the measurement sd.
        """
        s1 = self.stage1
        pred = self.K_at(s1.elevation, full=False)  # (d, n, J')
        resid = s1.y[None] - pred
        meas_var = np.diagonal(s1.S, axis1=1, axis2=2)
        return {"mean": resid.mean(axis=0), "sd": np.sqrt(resid.var(axis=0) + meas_var)}

    # ---------------------------------------------------------------- summary
    def diagnostics(self) -> dict:
        """R-hat (max), bulk ESS (min) and divergences of β and τ."""
        import arviz as az

        s = az.summary(self.idata, var_names=["A", "B", "C", "tau"], kind="diagnostics",
                       round_to="none")
        div = int(self.idata.sample_stats["diverging"].values.sum()) \
            if "diverging" in self.idata.sample_stats else 0
        return {"r_hat_max": float(s["r_hat"].max()), "ess_bulk_min": float(s["ess_bulk"].min()),
                "divergences": div,
                "converged": bool(s["r_hat"].max() < 1.01 and s["ess_bulk"].min() > 400
                                  and div == 0)}

    def records(self) -> tuple[list[dict], list[dict]]:
        """Records of A, B, C per term and of the scatter scales, 94 % HDI."""
        import arviz as az

        s1 = self.stage1
        summ = az.summary(self.idata, var_names=["A", "B", "C", "tau"], hdi_prob=0.94,
                          kind="stats", round_to="none")
        terms, scatter = [], []
        for k, j in enumerate(s1.terms):
            n, l = s1.nl[j]
            name = s1.term_names[k]
            for t in TERMS:
                row = summ.loc[f"{t}[{name}]"]
                terms.append({"n": int(n), "l": int(l), "term": t, "mean": float(row["mean"]),
                              "sd": float(row["sd"]), "hdi_3%": float(row["hdi_3%"]),
                              "hdi_97%": float(row["hdi_97%"]), "unit": "wave"})
            row = summ.loc[f"tau[{name}]"]
            scatter.append({"n": int(n), "l": int(l), "mean": float(row["mean"]),
                            "sd": float(row["sd"]), "hdi_3%": float(row["hdi_3%"]),
                            "hdi_97%": float(row["hdi_97%"]), "unit": "wave"})
        return terms, scatter

    def summary(self) -> dict:
        """JSON-ready summary (written as summary.json by :func:`save_gravity`)."""
        terms, scatter = self.records()
        s1 = self.stage1
        th = self.thermal()
        return {
            "kind": "gravity",
            "model": "K(el) = A sin(el) + B cos(el) + C + eta, eta ~ N(0, tau^2) per term; "
                     "two-stage on each observation's " + s1.source + " likelihood of K",
            "wavelength_m": s1.wavelength,
            "unit": "wave (phase; surface um = wave * wavelength / 2 * 1e6)",
            "priors": {"A, B, C": f"Normal(0, {self.coef_rms} / mode_rms(n, l)) waves",
                       "tau": f"HalfNormal({self.scatter_rms} / mode_rms(n, l)) waves"},
            "n_observations": s1.n_obs,
            "elevation_deg": s1.elevation.tolist(),
            "terms": terms,
            "scatter": scatter,
            "diagnostics": self.diagnostics(),
            "observations": [
                {"label": str(s1.labels[i]), "elevation_deg": float(s1.elevation[i]),
                 "thermal": [{"n": int(s1.nl[j][0]), "l": int(s1.nl[j][1]),
                              "mean": float(th["mean"][i, k]), "sd": float(th["sd"][i, k])}
                             for k, j in enumerate(s1.terms)]}
                for i in range(s1.n_obs)
            ],
            "wall_time_s": self.wall_time,
        }

    def to_inference_data(self):
        """InferenceData of the gravity model.

        Groups: posterior (τ, A, B, C), sample_stats, and two extra groups: ``stage1`` (each
        observation's K̂ and covariance over all J terms, elevation, the modelled terms) and
        ``thermal`` (measured minus gravity model, with sd).
        """
        import warnings

        import xarray as xr

        s1 = self.stage1
        th = self.thermal()
        obs = list(map(str, s1.labels))
        names = [f"K({n},{l})" for n, l in s1.nl]
        thermal = xr.Dataset({"mean": (("obs", "term"), th["mean"]),
                              "sd": (("obs", "term"), th["sd"])},
                             coords={"obs": obs, "term": s1.term_names,
                                     "elevation": ("obs", s1.elevation)},
                             attrs={"definition": "measured K minus gravity model, waves"})
        stage = xr.Dataset(
            {"K": (("obs", "zernike"), s1.K), "K_cov": (("obs", "zernike", "zernike_"), s1.cov),
             "elevation": ("obs", s1.elevation), "modelled": ("term", s1.terms)},
            coords={"obs": obs, "zernike": names, "zernike_": names, "term": s1.term_names,
                    "n": ("zernike", [n for n, _ in s1.nl]),
                    "l": ("zernike", [l for _, l in s1.nl])},
            attrs={"source": s1.source, "wavelength_m": s1.wavelength,
                   "coef_rms": self.coef_rms, "scatter_rms": self.scatter_rms},
        )
        idata = self.idata.copy()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*group.*")
            idata.add_groups({"thermal": thermal, "stage1": stage})
        return idata

    def save(self, run_dir, telescope: str | None = None) -> Path:
        """Write ``summary.json``, ``gravity.nc`` and ``thermal.csv`` into ``run_dir``."""
        from bayesoof.io import write_csv, write_json, write_netcdf
        from bayesoof.io.jsonclean import clean

        run_dir = Path(run_dir)
        summ = self.summary()
        summ["telescope"] = telescope
        write_json(run_dir / "summary.json", clean(summ))
        write_netcdf(run_dir / "gravity.nc", self.to_inference_data())
        s1 = self.stage1
        th = self.thermal()
        rows = [["observation", "elevation_deg", "n", "l", "thermal_wave", "sd_wave"]]
        for i in range(s1.n_obs):
            for k, j in enumerate(s1.terms):
                rows.append([s1.labels[i], f"{s1.elevation[i]:.4f}", s1.nl[j][0], s1.nl[j][1],
                             repr(float(th["mean"][i, k])), repr(float(th["sd"][i, k]))])
        write_csv(run_dir / "thermal.csv", rows)
        return run_dir


def load_gravity(run_dir) -> GravityResult:
    """Rebuild a :class:`GravityResult` from a gravity run directory (``gravity.nc``)."""
    import arviz as az

    path = Path(run_dir) / "gravity.nc"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no gravity.nc (not a 'bayesoof gravity' run)")
    idata = az.from_netcdf(path)
    st = idata.stage1
    nl = list(zip(st["n"].values.tolist(), st["l"].values.tolist(), strict=True))
    s1 = Stage1(st["elevation"].values, st["K"].values, st["K_cov"].values, nl,
                float(st.attrs["wavelength_m"]), st["obs"].values.tolist(),
                str(st.attrs.get("source", "laplace")), np.asarray(st["modelled"].values))
    return GravityResult(idata, s1, float(st.attrs["coef_rms"]), float(st.attrs["scatter_rms"]))


def fit_gravity(stage1: Stage1, draws: int = 1000, tune: int = 1000, chains: int = 4,
                seed: int = 0, cores: int = 1, coef_rms: float = COEF_RMS,
                scatter_rms: float = SCATTER_RMS, progressbar: bool = False) -> GravityResult:
    """Sample the gravity model and return a :class:`GravityResult`.

    τ by NUTS (PyMC) on its marginal posterior (:func:`build_model`), then one exact
    draw of β = (A, B, C) given each τ; both stored in ``idata.posterior``.
    """
    import time

    import pymc as pm

    from bayesoof.inference.threads import blas_threads

    t0 = time.perf_counter()
    model = build_model(stage1, coef_rms, scatter_rms)
    with model, blas_threads(1):
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores,
                          random_seed=seed, initvals={"tau": 0.5 * scatter_rms / stage1.mode_rms},
                          progressbar=progressbar, target_accept=0.9,
                          compute_convergence_checks=False)
    post = idata.posterior
    tau = post["tau"].values  # (chain, draw, J')
    beta = _draw_beta(stage1, tau.reshape(-1, tau.shape[-1]), coef_rms, seed + 1)
    beta = beta.reshape(tau.shape[:2] + beta.shape[1:])
    for k, t in enumerate(TERMS):
        post[t] = (("chain", "draw", "term"), beta[:, :, k, :])
    return GravityResult(idata, stage1, coef_rms, scatter_rms, time.perf_counter() - t0)


# ------------------------------------------------------------------ joint model (check)
def joint_laplace(results, elevation, tau, coef_rms: float = COEF_RMS):
    """Joint MAP and Laplace covariance of β given τ, over all maps of all observations.

    Every observation keeps its own free parameters (K, illumination, amplitudes, offsets,
    ...), its K tied to the gravity model by ``(K_ij - X_i β_j) / τ_j`` prior rows; β has
    the prior of :func:`conditional_coefficients`; an observation whose fit marginalised
    the aperture model error (:mod:`bayesoof.inference.model_error`) has its error modes
    free here with their prior rows ``a / sd_a``, so that both stages marginalise it.
    Solved by least squares over all parameters with the exact Jacobians of each
    observation's compiled residual; the covariance is the (β, β) block of the inverse
    Gauss-Newton Hessian.  Used to check the two-stage model; only for small campaigns (it
    holds every map at once).

    Returns ``(mean (3, J'), cov (3J', 3J'))`` in the order of ``stage1_from_fits``.
    """
    from scipy.optimize import least_squares

    from bayesoof.inference.fit import _objective
    from bayesoof.inference.model_error import APERTURE_ERROR
    from bayesoof.inference.model_error import prior_sd as error_sd

    s1 = stage1_from_fits(results, elevation)
    X = design(s1.elevation)
    terms = s1.terms
    Jp = terms.size
    tau = np.broadcast_to(np.asarray(tau, float), (Jp,))
    sdb = prior_sd(s1, coef_rms).ravel()
    blocks = []
    errors = []  # (positions of the error modes in the free vector, their prior sd)
    for r in results:
        sp = r.last.space.copy()
        obj = _objective(r.forward, sp, r.config["fit"]["residual"])
        if getattr(r, "model_error", None) is not None:
            sp.set(APERTURE_ERROR, free=True)
            where = {int(f): i for i, f in enumerate(sp.free_index)}
            a_idx = np.arange(sp.n_full)[sp.slice_of(APERTURE_ERROR)]
            me = r.config["model_error"]
            errors.append((np.array([where[int(j)] for j in a_idx]),
                           error_sd(int(me["order"]), float(me["rms"]))))
        else:
            errors.append((np.zeros(0, int), np.zeros(0)))
        blocks.append((obj, sp, np.ascontiguousarray(r.forward.observed, float), r.sigma))
    sizes = [b[1].free_index.size for b in blocks]
    offs = np.r_[0, np.cumsum(sizes)]
    nb = 3 * Jp

    def k_pos(sp):  # positions of the modelled K terms inside the free vector
        where = {int(f): i for i, f in enumerate(sp.free_index)}
        return np.array([where[int(j)] for j in terms])

    kpos = [k_pos(b[1]) for b in blocks]
    x0 = np.concatenate([b[1].theta for b in blocks]
                        + [conditional_coefficients(s1, tau, coef_rms)[0].ravel()])

    def unpack(x):
        return [x[offs[i]:offs[i + 1]] for i in range(len(blocks))], x[offs[-1]:]

    def fun_jac(x, want_jac):
        th, beta = unpack(x)
        B = beta.reshape(3, Jp)
        res, rows = [], []
        n_par = x.size
        for i, (obj, sp, obs, sig) in enumerate(blocks):
            full = sp.full(th[i])
            if want_jac:
                r, Jm = obj.jacobian(full, sp.free_index, obs, sig)
                Jf = np.zeros((r.size, n_par))
                Jf[:, offs[i]:offs[i + 1]] = Jm
                rows.append(Jf)
            else:
                r = obj.residuals(full, obs, sig)
            res.append(r)
            # tie rows: (K_ij - X_i β_j) / τ_j
            res.append((th[i][kpos[i]] - X[i] @ B) / tau)
            a_pos, a_sd = errors[i]
            res.append(th[i][a_pos] / a_sd)  # the model error's prior (none without it)
            if want_jac:  # (rows in the order of the residuals: tie rows, then prior)
                Jt = np.zeros((Jp, n_par))
                Jt[np.arange(Jp), offs[i] + kpos[i]] = 1.0 / tau
                Jt[:, offs[-1]:] = -np.kron(X[i][None, :], np.eye(Jp)) / tau[:, None]
                rows.append(Jt)
                Ja = np.zeros((a_pos.size, n_par))
                Ja[np.arange(a_pos.size), offs[i] + a_pos] = 1.0 / a_sd
                rows.append(Ja)
        res.append(beta / sdb)
        if want_jac:
            Jb = np.zeros((nb, n_par))
            Jb[:, offs[-1]:] = np.diag(1.0 / sdb)
            rows.append(Jb)
            return np.concatenate(res), np.vstack(rows)
        return np.concatenate(res)

    sol = least_squares(lambda x: fun_jac(x, False), x0, jac=lambda x: fun_jac(x, True)[1],
                        method="trf", x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    _, Jm = fun_jac(sol.x, True)
    cov = np.linalg.inv(Jm.T @ Jm)
    return sol.x[offs[-1]:].reshape(3, Jp), cov[offs[-1]:, offs[-1]:]
