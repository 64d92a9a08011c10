"""Zernike coefficients with error bars, and a correlation (or covariance) matrix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from bayesoof.physics import zernike
from bayesoof.plots.common import complete_order

__all__ = ["plot_coefficients", "plot_correlation"]


def _nl_labels(J: int) -> list[str]:
    return [f"({n},{l})" for n, l in zernike.nl_list(complete_order(J))]  # noqa: E741


def plot_coefficients(
    estimates,
    err=None,
    truth=None,
    unit: str = "waves",
    wavelength: float | None = None,
    skip: int = 0,
    title: str | None = None,
) -> Figure:
    """Zernike coefficients with error bars, labelled by (n, l) in OSA order.

    Parameters
    ----------
    estimates : array (J,) or mapping {label: K or (K, err)}
        Coefficients in waves.  A mapping draws several estimates side by side (e.g. the
        quick fit with Laplace errors and the NUTS posterior).
    err : array (J,) or (2, J), optional
        Error bars for a single array: symmetric, or (lower, upper) distances from K.
    truth : array (J,), optional
        True coefficients (simulations), drawn as open markers.
    unit : {'waves', 'rad', 'um'}
        Display unit ('um': K λ/2 in µm of surface, needs the wavelength in m).
    skip : int
        Leave out the first ``skip`` coefficients (3 hides piston and tilts).

    Returns
    -------
    Figure
        One axis; x tick labels '(n,l)'.
    """
    if isinstance(estimates, Mapping):
        series = []
        for label, val in estimates.items():
            if isinstance(val, tuple):
                series.append((label, np.asarray(val[0], float),
                               None if val[1] is None else np.asarray(val[1], float)))
            else:
                series.append((label, np.asarray(val, float), None))
    else:
        series = [("estimate", np.asarray(estimates, float),
                   None if err is None else np.asarray(err, float))]
    J = series[0][1].size
    for label, k, _ in series:
        if k.size != J:
            raise ValueError(f"estimate {label!r} has {k.size} coefficients, expected {J}")
    scale = {"waves": 1.0, "rad": 2 * np.pi}.get(unit)
    if unit in ("um", "µm"):
        if wavelength is None:
            raise ValueError("unit 'um' needs the wavelength (m)")
        scale, ylabel = wavelength / 2 * 1e6, "K λ/2 (µm of surface)"
    elif scale is None:
        raise ValueError(f"unit must be 'waves', 'rad' or 'um', got {unit!r}")
    else:
        ylabel = f"K ({unit})"
    labels = _nl_labels(J)[skip:]
    idx = np.arange(J - skip)
    fig = Figure(figsize=(max(5.0, 0.42 * len(idx) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    width = 0.7 / max(len(series), 1)
    for s, (label, k, e) in enumerate(series):
        shift = (s - (len(series) - 1) / 2) * width
        yerr = None
        if e is not None:
            yerr = (e[..., skip:] if e.ndim == 1 else e[:, skip:]) * scale
        ax.errorbar(idx + shift, k[skip:] * scale, yerr=yerr, fmt="o", ms=4, capsize=2,
                    label=label)
    if truth is not None:
        t = np.asarray(truth, float)
        if t.size != J:
            raise ValueError(f"truth has {t.size} coefficients, expected {J}")
        ax.plot(idx, t[skip:] * scale, "s", mfc="none", mec="k", ms=7, label="truth")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xticks(idx, labels, rotation=90 if len(idx) > 12 else 0, fontsize=8)
    ax.set_xlabel("Zernike (n, l)")
    ax.set_ylabel(ylabel)
    if len(series) > 1 or truth is not None or series[0][0] != "estimate":
        ax.legend(fontsize=8)
    ax.set_title(title or "Zernike coefficients (OSA order)", fontsize=11)
    return fig


def plot_correlation(matrix, labels: Sequence[str] | None = None, title: str | None = None
                     ) -> Figure:
    """Correlation matrix as an image in [−1, 1]; a covariance is converted first.

    Parameters
    ----------
    matrix : array (p, p)
        Correlation or covariance matrix (e.g. the Laplace covariance of the quick fit, or
        ``np.cov`` of posterior draws).
    labels : sequence of str, optional
        Parameter names for the ticks.

    Returns
    -------
    Figure
        One image axis plus its colour bar.
    """
    m = np.asarray(matrix, float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square, got shape {m.shape}")
    d = np.sqrt(np.clip(np.diag(m), 0, None))
    if not np.allclose(d, 1.0):
        with np.errstate(divide="ignore", invalid="ignore"):
            m = m / np.outer(d, d)
        m[~np.isfinite(m)] = 0.0
    p = m.shape[0]
    size = min(max(4.5, 0.28 * p + 2.5), 14)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.subplots()
    art = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(art, ax=ax, shrink=0.8, label="correlation")
    if labels is not None:
        if len(labels) != p:
            raise ValueError(f"{len(labels)} labels for a {p} × {p} matrix")
        fs = 8 if p <= 30 else 6
        ax.set_xticks(range(p), labels, rotation=90, fontsize=fs)
        ax.set_yticks(range(p), labels, fontsize=fs)
    ax.set_title(title or "parameter correlation", fontsize=11)
    return fig
