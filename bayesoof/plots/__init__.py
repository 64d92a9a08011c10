"""Figures of fits and posteriors (matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` built with the object API
(``Figure()``, never the pyplot state machine), so the package is safe under the Agg
backend, in scripts and in threads; in a notebook with the inline backend
(``%matplotlib inline``) a returned Figure is displayed as the cell's result.  No LaTeX is
needed: labels use plain Unicode.  Units: sample directions in arcmin by default
(``angle_unit``), aperture coordinates in m, phase in rad, surface in µm (on-axis:
surface = phase · λ / (4π)), K in waves.

Modules by figure kind (functions on arrays, usable with any fit or sampler):

* :mod:`.beam` -- :func:`plot_beam_maps`: observed, model and residual of every map.
* :mod:`.aperture` -- :func:`plot_phase_map` (phase and surface error with dish outline and
  blockage contour), :func:`plot_phase_uncertainty` (mean, sd and interval width from
  coefficient draws).
* :mod:`.coefficients` -- :func:`plot_coefficients` (K with error bars, labelled (n, l)),
  :func:`plot_correlation`.
* :mod:`.diagnostics` -- :func:`plot_trace`, :func:`plot_rank`, :func:`plot_pair` (ArviZ).

Figures of a whole run, from an in-memory result or a run directory:

* :mod:`.views` -- :class:`FitView`, :class:`PosteriorView` (what those figures need);
* :mod:`.run_figures` -- :func:`fit_figures`, :func:`posterior_figures` and
  :func:`save_figures` (PNG and PDF, written atomically);
* :mod:`.campaign` -- figures of a gravity model (imported on its own).
"""

from bayesoof.plots.aperture import plot_phase_map, plot_phase_uncertainty
from bayesoof.plots.beam import plot_beam_maps
from bayesoof.plots.coefficients import plot_coefficients, plot_correlation
from bayesoof.plots.common import ANGLE_UNITS
from bayesoof.plots.diagnostics import plot_pair, plot_rank, plot_trace
from bayesoof.plots.run_figures import fit_figures, posterior_figures, save_figures
from bayesoof.plots.views import FitView, PosteriorView

__all__ = [
    "ANGLE_UNITS",
    "FitView",
    "PosteriorView",
    "fit_figures",
    "plot_beam_maps",
    "plot_coefficients",
    "plot_correlation",
    "plot_pair",
    "plot_phase_map",
    "plot_phase_uncertainty",
    "plot_rank",
    "plot_trace",
    "posterior_figures",
    "save_figures",
]
