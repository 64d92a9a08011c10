"""Figures of a whole run, from an in-memory result or a run directory; saving figures.

What ``bayesoof fit --plots``, ``bayesoof sample --plots`` and ``bayesoof plot RUN_DIR``
write; :func:`save_figures` writes a dict of figures as PNG (and PDF) atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from matplotlib.figure import Figure

from bayesoof.io import atomic_path
from bayesoof.plots.aperture import plot_phase_map, plot_phase_uncertainty
from bayesoof.plots.beam import plot_beam_maps
from bayesoof.plots.coefficients import plot_coefficients, plot_correlation
from bayesoof.plots.diagnostics import _explain, plot_pair, plot_rank, plot_trace
from bayesoof.plots.views import FitView, PosteriorView, as_view

__all__ = ["fit_figures", "posterior_figures", "save_figures"]


def fit_figures(source, angle_unit: str = "arcmin") -> dict[str, Figure]:
    """All figures of a quick fit: a FitResult, a :class:`FitView` or a run directory.

    A run directory is a path or a :class:`~bayesoof.io.run.RunDirectory`.

    Returns
    -------
    dict of Figure
        ``beam_maps`` (linear), ``beam_maps_db``, ``phase`` (phase and surface error),
        ``phase_uncertainty`` (Laplace mean, sd and 94% width of the surface error),
        ``coefficients`` (K with Laplace sd) and ``correlation`` (free parameters).
    """
    view = as_view(source, FitView)
    tel, lam = view.telescope, view.wavelength
    figs = {
        "beam_maps": plot_beam_maps(view.data, view.model_beam, view.sigma,
                                    angle_unit=angle_unit,
                                    title=f"beam maps (linear): {view.title}"),
        "beam_maps_db": plot_beam_maps(view.data, view.model_beam, view.sigma, scale="db",
                                       offsets=view.offsets, angle_unit=angle_unit,
                                       title=f"beam maps (dB): {view.title}"),
        "phase": plot_phase_map(view.K, tel, lam,
                                title=f"aperture phase error: {view.title}"),
        "phase_uncertainty": plot_phase_uncertainty(
            view.laplace_draws(), tel, lam, unit="um",
            title=f"surface error, Laplace approximation: {view.title}", label="Laplace"),
        "coefficients": plot_coefficients({"MAP ± Laplace sd": (view.K, view.K_sd)},
                                          title=f"Zernike coefficients: {view.title}"),
        "correlation": plot_correlation(view.cov, view.names,
                                        title=f"Laplace correlation: {view.title}"),
    }
    return figs


def posterior_figures(source, n_vars: int = 4, angle_unit: str = "arcmin") -> dict[str, Figure]:
    """Figures of a posterior: a PosteriorResult, a :class:`PosteriorView` or a run directory.

    A run directory is a path or a :class:`~bayesoof.io.run.RunDirectory`.

    Returns
    -------
    dict of Figure
        ``posterior_phase`` (mean, sd and 94% width of the surface error),
        ``posterior_coefficients`` (posterior mean ± sd beside the MAP ± Laplace sd),
        ``posterior_beam_maps`` (observed, posterior-mean model, residual; when the
        products hold the model), and the ArviZ ``trace``, ``rank`` and ``pair`` plots of
        the ``n_vars`` best-determined Zernike terms (plus c_dB when free).
    """
    view = as_view(source, PosteriorView)
    fv = view.fit
    tag = f"{fv.title}, {view.sampler or 'posterior'}"
    figs = {
        "posterior_phase": plot_phase_uncertainty(
            view.K_draws, fv.telescope, fv.wavelength, unit="um",
            title=f"surface error, posterior: {tag}"),
        "posterior_coefficients": plot_coefficients(
            {"MAP ± Laplace sd": (fv.K, fv.K_sd),
             "posterior mean ± sd": (view.K_draws.mean(axis=0),
                                     view.K_draws.std(axis=0, ddof=1))},
            skip=1, title=f"Zernike coefficients: {tag}"),
    }
    if view.model_mean is not None and view.model_mean.size == fv.model_beam.size:
        figs["posterior_beam_maps"] = plot_beam_maps(
            fv.data, view.model_mean, fv.sigma, angle_unit=angle_unit,
            title=f"beam maps, posterior-mean model: {tag}")
    chosen = view.chosen(n_vars)
    if chosen:
        var_names = ["K"] + (["c_dB"] if "c_dB" in view.posterior else [])
        coords = {"zernike": chosen}
        figs["trace"] = plot_trace(view.posterior, var_names=var_names, coords=coords)
        figs["rank"] = plot_rank(view.posterior, var_names=var_names, coords=coords)
        figs["pair"] = plot_pair(view.posterior, var_names=["K"], coords=coords)
        n_free = int(view.posterior["K"].sizes.get("zernike", len(chosen)))
        why = (f"the {len(chosen)} of {n_free} free Zernike terms with the largest "
               "|mean| / sd (tilts last)" + ("; c_dB, the illumination taper" if
                                             "c_dB" in var_names else ""))
        for name in ("trace", "rank", "pair"):
            _explain(figs[name], f"{name}: {', '.join(chosen)}"
                     + (", c_dB" if "c_dB" in var_names and name != "pair" else ""), why)
    return figs


def save_figures(
    figures: Mapping[str, Figure],
    directory,
    pdf: bool = False,
    dpi: int = 130,
    overwrite: bool = True,
) -> list[Path]:
    """Write each figure as ``directory/<name>.png`` (and ``.pdf``); return the paths.

    The directory is created when absent.  Each file is written to a temporary name and
    renamed, so a crash never leaves a half-written image.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures.items():
        for ext in ("png", "pdf") if pdf else ("png",):
            target = out / f"{name}.{ext}"
            atomic_path(target, lambda tmp, fig=fig, ext=ext: fig.savefig(tmp, format=ext, dpi=dpi),
                        overwrite=overwrite)
            written.append(target)
    return written
