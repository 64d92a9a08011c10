"""ArviZ diagnostics (trace, rank, pair) as detached Figures, with units in the labels.

These go through pyplot, because ArviZ does; their figures are detached from pyplot before
they are returned.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_pair", "plot_rank", "plot_trace"]


#: units of the posterior variables in ArviZ panel titles and axis labels
_UNITS = {"K": "waves", "c_dB": "dB", "q": "", "amp": "data units", "offset": "data units"}


def _arviz_figure(axes, panel: tuple[float, float] | None = None) -> Figure:
    """Return the Figure of ArviZ ``axes``, detached from pyplot, laid out without overlap.

    ``panel`` (width, height in inches per axis) resizes the figure to the axes grid.
    """
    import matplotlib.pyplot as plt

    grid = np.atleast_2d(np.asarray(axes, dtype=object))
    first = grid.ravel()[0]
    fig = first.get_figure()
    plt.close(fig)  # detach from pyplot: no accumulation of open figures, no double display
    if panel is not None:
        rows, cols = grid.shape
        fig.set_size_inches(max(4.0, panel[0] * cols), max(3.0, panel[1] * rows))
    fig.set_layout_engine("constrained")
    return fig


def _az_kwargs(var_names, coords):
    kw = {}
    if var_names is not None:
        kw["var_names"] = list(var_names)
    if coords is not None:
        kw["coords"] = dict(coords)
    return kw


def plot_trace(idata, var_names=None, coords=None, **kwargs) -> Figure:
    """ArviZ trace plot (densities and traces per chain) as a Figure.

    ``var_names`` / ``coords`` choose the variables and coefficients (e.g.
    ``coords={"zernike": ["K(2,0)", "K(2,2)"]}``, the names depend on the sampler's dims);
    other keywords go to :func:`arviz.plot_trace`.
    """
    import arviz as az

    axes = az.plot_trace(idata, **_az_kwargs(var_names, coords), compact=False, **kwargs)
    return _arviz_figure(axes, (4.5, 2.0))


def plot_rank(idata, var_names=None, coords=None, **kwargs) -> Figure:
    """ArviZ rank plot (uniform ranks mean well-mixed chains) as a Figure."""
    import arviz as az

    axes = az.plot_rank(idata, **_az_kwargs(var_names, coords), **kwargs)
    return _arviz_figure(axes, (3.2, 2.6))


def plot_pair(idata, var_names=None, coords=None, **kwargs) -> Figure:
    """ArviZ pair plot (scatter of every pair, marginal densities on the diagonal)."""
    import arviz as az

    kwargs.setdefault("kind", "scatter")
    kwargs.setdefault("marginals", True)
    axes = az.plot_pair(idata, **_az_kwargs(var_names, coords), **kwargs)
    return _arviz_figure(axes, (2.6, 2.4))


def _with_unit(text: str) -> str:
    head = text.split("\n")[0].split("[")[0].strip()
    unit = _UNITS.get(head)
    return f"{text} [{unit}]" if unit and text and "[" + unit not in text else text


def _explain(fig: Figure, what: str, why: str) -> None:
    """Say which parameters an ArviZ figure shows and why; units in titles; sparse ticks."""
    from matplotlib.ticker import MaxNLocator

    fig.suptitle(f"{what}\n({why}; K in waves, c_dB in dB)", fontsize=9)
    for ax in fig.axes:
        ax.set_title(_with_unit(ax.get_title()), fontsize=8)
        ax.set_xlabel(_with_unit(ax.get_xlabel()))
        ax.set_ylabel(_with_unit(ax.get_ylabel()))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # no overlapping tick labels
        ax.tick_params(labelsize=7)
