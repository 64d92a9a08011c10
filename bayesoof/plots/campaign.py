"""Figures of a campaign: K(el) per Zernike term with 94 % bands, surface rms vs elevation."""

from __future__ import annotations

import numpy as np

__all__ = ["gravity_figures", "plot_gravity_terms", "plot_surface_rms"]


def _band(draws: np.ndarray, prob: float = 0.94):
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return draws.mean(axis=0), lo, hi


def plot_gravity_terms(result, n_el: int = 90):
    """One panel per modelled term: measured K̂ ± sd and the model with its 94 % band."""
    import matplotlib.pyplot as plt

    s1 = result.stage1
    el = np.linspace(max(0.0, s1.elevation.min() - 5), min(90.0, s1.elevation.max() + 5), n_el)
    Kd = result.K_at(el, full=False)  # (d, e, J')
    m, lo, hi = _band(Kd)
    nt = s1.terms.size
    ncol = min(5, nt)
    nrow = int(np.ceil(nt / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.8 * ncol, 2.3 * nrow), squeeze=False,
                             sharex=True, constrained_layout=True)
    sd = np.sqrt(np.diagonal(s1.S, axis1=1, axis2=2))
    for k in range(nrow * ncol):
        ax = axes.flat[k]
        if k >= nt:
            ax.axis("off")
            continue
        ax.fill_between(el, lo[:, k], hi[:, k], color="C0", alpha=0.3, lw=0, label="94 % band")
        ax.plot(el, m[:, k], color="C0", lw=1.2, label="A sin + B cos + C")
        ax.errorbar(s1.elevation, s1.y[:, k], sd[:, k], fmt=".", color="k", ms=4, lw=0.8,
                    label="per observation")
        ax.set_title(s1.term_names[k], fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("elevation [deg]", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("K [waves]", fontsize=8)
    axes.flat[0].legend(fontsize=6, loc="best")
    fig.suptitle(f"gravity model per Zernike term ({s1.n_obs} observations, "
                 f"λ = {s1.wavelength * 1e3:.3g} mm)", fontsize=10)
    return fig


def plot_surface_rms(result, n_el: int = 90):
    """Predicted surface rms (µm) of the gravity model vs elevation with its 94 % band."""
    import matplotlib.pyplot as plt

    el = np.linspace(0.0, 90.0, n_el)
    rms = result.surface_rms_at(el)
    m, lo, hi = _band(rms)
    fig, ax = plt.subplots(figsize=(5.5, 3.5), constrained_layout=True)
    ax.fill_between(el, lo, hi, color="C1", alpha=0.3, lw=0, label="94 % band")
    ax.plot(el, m, color="C1", label="gravity model")
    s1 = result.stage1
    ax.axvspan(s1.elevation.min(), s1.elevation.max(), color="0.9", zorder=0,
               label="observed elevations")
    ax.set_xlabel("elevation [deg]")
    ax.set_ylabel("surface rms [µm]")
    ax.set_title("predicted surface rms (plain, piston and tilt removed)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def gravity_figures(result) -> dict:
    """{name: figure} of a :class:`~bayesoof.campaign.gravity.GravityResult`."""
    return {"gravity_terms": plot_gravity_terms(result),
            "surface_rms_vs_elevation": plot_surface_rms(result)}
