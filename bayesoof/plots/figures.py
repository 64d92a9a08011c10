"""Figures for OOF holography: beam maps, phase and surface maps, coefficients, diagnostics.

Every function returns a :class:`matplotlib.figure.Figure` built with the object API
(``Figure()``, never the pyplot state machine), so the module is safe under the Agg
backend, in scripts and in threads; in a notebook with the inline backend
(``%matplotlib inline``) a returned Figure is displayed as the cell's result.
No LaTeX is needed: labels use plain Unicode.  Only the ArviZ wrappers
(:func:`plot_trace`, :func:`plot_rank`, :func:`plot_pair`) go through pyplot, because
ArviZ does; their figures are detached from pyplot before they are returned.

Units: sample directions are rad inside bayesoof and shown in arcmin by default
(``angle_unit``); aperture coordinates in m; phase in rad, surface in µm with the on-axis
conversion surface = phase · λ / (4π) (see ``shared/PHYSICS.md``); K in waves.

Functions working on arrays (usable with any fit or sampler):

* :func:`plot_beam_maps` -- observed, model and residual of every map (linear or dB).
* :func:`plot_phase_map` -- phase error (rad) and surface error (µm) with dish outline and
  blockage contour.
* :func:`plot_phase_uncertainty` -- posterior mean, sd and interval width of the phase or
  surface map from coefficient draws.
* :func:`plot_coefficients` -- Zernike coefficients with error bars, labelled by (n, l).
* :func:`plot_correlation` -- a correlation (or covariance) matrix.
* :func:`plot_trace`, :func:`plot_rank`, :func:`plot_pair` -- ArviZ diagnostics.

Figures of a whole run (what ``bayesoof fit --plots``, ``bayesoof sample --plots`` and
``bayesoof plot RUN_DIR`` write), from an in-memory result or from a run directory:

* :func:`fit_figures` -- of a quick fit (:class:`FitView`: data, model, MAP, Laplace).
* :func:`posterior_figures` -- of a posterior (:class:`PosteriorView`: draws of the
  primary mode, posterior-mean model).

:func:`save_figures` writes a dict of figures as PNG (and PDF) atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from bayesoof.io import atomic_path, read_summary
from bayesoof.physics import zernike
from bayesoof.physics.aperture import ApertureGrid
from bayesoof.physics.telescope import Telescope, get_telescope
from bayesoof.products import display_grid, phase_map, phase_map_stats

__all__ = [
    "ANGLE_UNITS",
    "FitView",
    "PosteriorView",
    "fit_figures",
    "posterior_figures",
    "plot_beam_maps",
    "plot_coefficients",
    "plot_correlation",
    "plot_pair",
    "plot_phase_map",
    "plot_phase_uncertainty",
    "plot_rank",
    "plot_trace",
    "save_figures",
]

#: factor from rad to each display unit of sample directions
ANGLE_UNITS = {
    "rad": 1.0,
    "deg": 180.0 / np.pi,
    "arcmin": 180.0 / np.pi * 60.0,
    "arcsec": 180.0 / np.pi * 3600.0,
}
_ANGLE_LABEL = {"rad": "rad", "deg": "deg", "arcmin": "arcmin", "arcsec": "arcsec"}
_PANEL = 3.4  # inches per panel
_DB_FLOOR = -40.0  # dB, lower limit of the logarithmic beam maps


def _order(n_terms: int) -> int:
    """Zernike order N of a complete set of ``n_terms`` = (N+1)(N+2)/2 coefficients."""
    order = zernike.j_to_nl(max(int(n_terms), 1) - 1)[0]
    if zernike.n_coeffs(order) != n_terms:
        raise ValueError(
            f"{n_terms} coefficients is not a complete Zernike order (1, 3, 6, 10, 15, ...)"
        )
    return order


def _angle_factor(angle_unit: str) -> float:
    try:
        return ANGLE_UNITS[angle_unit]
    except KeyError:
        raise ValueError(
            f"angle_unit must be one of {sorted(ANGLE_UNITS)}, got {angle_unit!r}"
        ) from None


# ====================================================================== beam maps
def _split(values, sizes: Sequence[int], what: str) -> list[np.ndarray] | None:
    """Split a concatenated (all maps) array or accept a per-map list."""
    if values is None:
        return None
    if isinstance(values, list | tuple):
        parts = [np.asarray(p, float) for p in values]
    else:
        arr = np.asarray(values, float)
        if arr.ndim != 1 or arr.size != sum(sizes):
            raise ValueError(
                f"{what} must hold {sum(sizes)} values (all maps concatenated), got shape "
                f"{arr.shape}"
            )
        parts = np.split(arr, np.cumsum(sizes)[:-1])
    if [p.size for p in parts] != list(sizes):
        raise ValueError(f"{what}: per-map sizes {[p.size for p in parts]} != data {list(sizes)}")
    return parts


def _draw_map(ax, bmap, values, cmap, vmin, vmax, factor, grid=None):
    """Draw ``values`` of one map: imshow on a lattice, tricontourf when scattered."""
    grid = bmap.grid() if grid is None else grid
    if grid is not None:
        img = np.full((grid.nv, grid.nu), np.nan)
        img[grid.iv, grid.iu] = values
        u, v = grid.u * factor, grid.v * factor
        du = (u[1] - u[0]) if u.size > 1 else 1.0
        dv = (v[1] - v[0]) if v.size > 1 else 1.0
        extent = (u[0] - du / 2, u[-1] + du / 2, v[0] - dv / 2, v[-1] + dv / 2)
        return ax.imshow(
            img, origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax,
            interpolation="nearest", aspect="equal",
        )
    u, v = bmap.u * factor, bmap.v * factor
    levels = np.linspace(vmin, vmax, 33)
    clipped = np.clip(values, vmin, vmax)
    if bmap.size >= 3:
        try:
            ax.tricontourf(u, v, clipped, levels=levels, cmap=cmap, extend="neither")
            ax.set_aspect("equal")
            # a plain mappable gives the colour bar round ticks (contour sets label levels)
            return ScalarMappable(norm=Normalize(vmin, vmax), cmap=cmap)
        except (ValueError, RuntimeError):  # degenerate triangulation: fall back to points
            pass
    art = ax.scatter(u, v, c=clipped, s=6, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_aspect("equal")
    return art


def _to_db(values: np.ndarray, peak: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(np.maximum(values / peak, 10 ** (_DB_FLOOR / 10)))
    return out


def plot_beam_maps(
    data,
    model=None,
    sigma=None,
    scale: str = "linear",
    offsets=None,
    angle_unit: str = "arcmin",
    title: str | None = None,
) -> Figure:
    """Observed, model and residual beam maps side by side, one row per map.

    Parameters
    ----------
    data : BeamMaps
        The observed maps (u, v in rad; beam in the data's power units).
    model : array (n_samples,) or list of arrays, optional
        Model beam values in data units (all maps concatenated in map order, as
        ``ForwardModel.observed``), e.g. ``a_i P_i + b_i`` at the fit.  Without it only the
        observed maps are drawn.
    sigma : array or list of arrays, optional
        Per-sample noise (data units); default the σ stored in the maps.  With σ the residual
        is shown standardised, ``(data − model)/σ``, otherwise in data units.
    scale : {'linear', 'db'}
        Linear power, or dB relative to each map's peak (after removing ``offsets``).
    offsets : sequence of float, optional
        Per-map additive offset b_i (data units) removed before the dB conversion.
    angle_unit : {'arcmin', 'arcsec', 'deg', 'rad'}
        Unit of the u, v axes.

    Returns
    -------
    Figure
        ``n_maps`` rows × (1 or 3) columns of image axes ('observed', 'model',
        'residual'), each with a colour bar.  Lattice maps are drawn with ``imshow``,
        scattered samples with ``tricontourf``.
    """
    if scale not in ("linear", "db"):
        raise ValueError(f"scale must be 'linear' or 'db', got {scale!r}")
    factor = _angle_factor(angle_unit)
    sizes = [m.size for m in data.maps]
    models = _split(model, sizes, "model")
    if sigma is None and all(m.sigma is not None for m in data.maps):
        sigmas = [m.sigma for m in data.maps]
    else:
        sigmas = _split(sigma, sizes, "sigma")
    offs = np.zeros(data.n_maps) if offsets is None else np.broadcast_to(
        np.asarray(offsets, float), (data.n_maps,))
    ncol = 1 if models is None else 3
    fig = Figure(figsize=(_PANEL * ncol + 0.6, _PANEL * data.n_maps * 0.92 + 0.5),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(data.n_maps, ncol, squeeze=False))
    unit_txt = _ANGLE_LABEL[angle_unit]
    for i, m in enumerate(data.maps):
        grid = m.grid()
        obs = m.beam
        mod = None if models is None else models[i]
        if scale == "db":
            ref = float(np.max((obs if mod is None else mod) - offs[i]))
            ref = ref if ref > 0 else 1.0
            shown = [_to_db(s - offs[i], ref) for s in ([obs] if mod is None else [obs, mod])]
            vmin, vmax, cmap, clabel = _DB_FLOOR, 0.0, "viridis", "power (dB)"
        else:
            shown = [obs] + ([] if mod is None else [mod])
            vmin = float(min(np.min(s) for s in shown))
            vmax = float(max(np.max(s) for s in shown))
            cmap, clabel = "viridis", "power"
        for k, vals in enumerate(shown):
            ax = axes[i, k]
            art = _draw_map(ax, m, vals, cmap, vmin, vmax, factor, grid)
            fig.colorbar(art, ax=ax, shrink=0.85, label=clabel)
        if mod is not None:
            ax = axes[i, 2]
            if sigmas is not None:
                res, rlabel = (obs - mod) / sigmas[i], "residual / σ"
            else:
                res, rlabel = obs - mod, "residual"
            lim = float(np.max(np.abs(res))) or 1.0
            art = _draw_map(ax, m, res, "RdBu_r", -lim, lim, factor, grid)
            fig.colorbar(art, ax=ax, shrink=0.85, label=rlabel)
            rms = float(np.sqrt(np.mean(res**2)))
            ax.set_title(f"residual (rms {rms:.3g})", fontsize=10)
            axes[i, 1].set_title("model", fontsize=10)
        label = f"{m.name or f'map {i}'}, d_z = {m.d_z * 1e3:+.1f} mm"
        axes[i, 0].set_title(f"observed: {label}" if ncol == 1 else f"observed\n{label}",
                             fontsize=10)
        for ax in axes[i]:
            ax.set_xlabel(f"u ({unit_txt})")
            ax.set_ylabel(f"v ({unit_txt})")
    wl = data.wavelength * 1e3
    fig.suptitle(title or f"beam maps ({'dB' if scale == 'db' else 'linear'}), λ = {wl:.3g} mm")
    return fig


# ====================================================================== aperture maps
def _coverage_display(tel: Telescope, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Open fraction of each display pixel (``[iy, ix]``) and the pixel centres (m)."""
    grid = ApertureGrid.across(tel.radius, n, supersample=3)
    cov = grid.coverage(tel).T  # coverage is [ix, iy]
    return grid.x, cov


def _unit_convert(phase: np.ndarray, unit: str, wavelength: float | None):
    """Phase (rad) to the display unit and its label."""
    if unit == "rad":
        return phase, "phase error (rad)"
    if unit == "waves":
        return phase / (2 * np.pi), "phase error (waves)"
    if unit in ("um", "µm"):
        if wavelength is None:
            raise ValueError("a surface map in µm needs the wavelength (m)")
        # on-axis: surface = phase λ / (4π)
        return phase * wavelength / (4 * np.pi) * 1e6, "surface error (µm)"
    raise ValueError(f"unit must be 'rad', 'waves' or 'um', got {unit!r}")


def _aperture_axes(ax, fig, x, image, tel, cov_x, cov, cmap, vmin, vmax, label):
    """Draw one aperture image with dish outline and blockage contour, plus a colour bar."""
    dx = x[1] - x[0]
    ext = (x[0] - dx / 2, x[-1] + dx / 2, x[0] - dx / 2, x[-1] + dx / 2)
    art = ax.imshow(image, origin="lower", extent=ext, cmap=cmap, vmin=vmin, vmax=vmax,
                    interpolation="nearest")
    # blockage: shaded, outlined by the contour of half coverage (shadow, legs, shade)
    cdx = cov_x[1] - cov_x[0]
    cext = (cov_x[0] - cdx / 2, cov_x[-1] + cdx / 2, cov_x[0] - cdx / 2, cov_x[-1] + cdx / 2)
    r = np.hypot(*np.meshgrid(cov_x, cov_x))
    shade = np.where((cov < 0.5) & (r < tel.radius), 1.0, np.nan)
    ax.imshow(shade, origin="lower", extent=cext, cmap="Greys", vmin=0, vmax=2.5, alpha=0.45,
              interpolation="nearest")
    ax.contour(cov_x, cov_x, cov, levels=[0.5], colors="k", linewidths=0.8)
    t = np.linspace(0, 2 * np.pi, 361)
    ax.plot(tel.radius * np.cos(t), tel.radius * np.sin(t), color="k", lw=1.2)
    ax.set_xlim(-1.04 * tel.radius, 1.04 * tel.radius)
    ax.set_ylim(-1.04 * tel.radius, 1.04 * tel.radius)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    fig.colorbar(art, ax=ax, shrink=0.85, label=label)
    return art


def _symmetric(values: np.ndarray) -> float:
    lim = float(np.nanmax(np.abs(values))) if np.any(np.isfinite(values)) else 1.0
    return lim or 1.0


def plot_phase_map(
    K,
    telescope,
    wavelength: float | None = None,
    units: Sequence[str] = ("rad", "um"),
    n: int = 201,
    title: str | None = None,
) -> Figure:
    """Phase-error map and surface-error map over the dish, side by side.

    Piston and tilts (pointing) are left out, as in every map of bayesoof (and pyoof's);
    the map is :func:`bayesoof.products.maps.phase_map` on the display grid.

    Parameters
    ----------
    K : array (J,)
        Zernike coefficients, waves, OSA order.
    telescope : Telescope or str
        Preset name, TOML path or Telescope: gives the radius and the blockage drawn as a
        contour (where half of a pixel is blocked) over the maps.
    wavelength : float, optional
        m; needed for the surface map (µm, on-axis: surface = phase · λ/(4π)).
    units : sequence of {'rad', 'waves', 'um'}
        One panel per unit; default phase in rad and surface in µm.  Without a wavelength
        the 'um' panel is left out.
    n : int
        Display pixels across the diameter.

    Returns
    -------
    Figure
        One image axis per unit (title states the rms over the dish), with the dish rim
        and the blockage contour.
    """
    tel = get_telescope(telescope)
    units = [u for u in units if not (u in ("um", "µm") and wavelength is None)]
    if not units:
        raise ValueError("no panel to draw: give a wavelength for 'um' or add 'rad'")
    pm = phase_map(K, None, tel.radius, 1.0, n)
    x, phase = pm.x, pm.phase
    cov_x, cov = _coverage_display(tel, min(n, 201))
    fig = Figure(figsize=(_PANEL * 1.25 * len(units), _PANEL * 1.15), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(units), squeeze=False)[0])
    for ax, unit in zip(axes, units, strict=True):
        img, label = _unit_convert(phase, unit, wavelength)
        lim = _symmetric(img)
        _aperture_axes(ax, fig, x, img, tel, cov_x, cov, "RdBu_r", -lim, lim, label)
        rms = float(np.sqrt(np.nanmean(img**2)))
        unit_txt = {"rad": "rad", "waves": "waves"}.get(unit, "µm")
        ax.set_title(f"{label.split(' (')[0]}, rms {rms:.3g} {unit_txt}", fontsize=10)
    order = _order(np.size(K))
    fig.suptitle(title or f"{tel.name}: aperture phase, order {order}"
                 + " (piston and tilts removed)")
    return fig


def plot_phase_uncertainty(
    K_draws,
    telescope,
    wavelength: float | None = None,
    unit: str = "um",
    prob: float = 0.94,
    n: int = 101,
    title: str | None = None,
    label: str = "posterior",
) -> Figure:
    """Posterior mean, standard deviation and central-interval width of the aperture map.

    Per-pixel statistics of the draws by :func:`bayesoof.products.maps.phase_map_stats`
    (display grid, piston and tilts left out).

    Parameters
    ----------
    K_draws : array (S, J)
        Posterior (or Laplace) draws of the Zernike coefficients, waves, OSA order.
    telescope : Telescope or str
    wavelength : float, optional
        m; required for ``unit='um'``.
    unit : {'um', 'rad', 'waves'}
        Surface error in µm (on-axis) or phase error.
    prob : float
        Probability of the central interval whose width (upper − lower quantile) is shown.
    n : int
        Display pixels across the diameter.
    label : str
        What the draws are ('posterior', 'Laplace', ...), for the panel titles.

    Returns
    -------
    Figure
        Three image axes: 'mean', 'sd', 'interval width', each with rim and blockage.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob}")
    tel = get_telescope(telescope)
    n_draws = np.atleast_2d(K_draws).shape[0]
    st = phase_map_stats(K_draws, tel.radius, n, quantiles=((1 - prob) / 2, (1 + prob) / 2))
    mean, ulabel = _unit_convert(st["phase_mean"], unit, wavelength)
    sd = _unit_convert(st["phase_sd"], unit, wavelength)[0]
    width = _unit_convert(st["phase_hi"] - st["phase_lo"], unit, wavelength)[0]
    x = display_grid(tel.radius, n).x
    cov_x, cov = _coverage_display(tel, n)
    fig = Figure(figsize=(_PANEL * 1.25 * 3, _PANEL * 1.15), layout="constrained")
    axes = fig.subplots(1, 3)
    base, u_txt = ulabel.split(" (")[0], ulabel.split("(")[-1].rstrip(")")
    lim = _symmetric(mean)
    _aperture_axes(axes[0], fig, x, mean, tel, cov_x, cov, "RdBu_r", -lim, lim, ulabel)
    axes[0].set_title(f"{label} mean ({n_draws} draws)", fontsize=10)
    smax = float(np.nanmax(sd)) or 1.0
    _aperture_axes(axes[1], fig, x, sd, tel, cov_x, cov, "magma", 0, smax, f"sd ({u_txt})")
    axes[1].set_title(f"{label} sd (median {np.nanmedian(sd):.3g} {u_txt})", fontsize=10)
    wmax = float(np.nanmax(width)) or 1.0
    _aperture_axes(axes[2], fig, x, width, tel, cov_x, cov, "magma", 0, wmax,
                   f"{prob:.0%} width ({u_txt})")
    axes[2].set_title(f"{prob:.0%} interval width (median {np.nanmedian(width):.3g})",
                      fontsize=10)
    fig.suptitle(title or f"{tel.name}: {base} and its uncertainty")
    return fig


# ====================================================================== coefficients
def _nl_labels(J: int) -> list[str]:
    return [f"({n},{l})" for n, l in zernike.nl_list(_order(J))]  # noqa: E741


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


# ====================================================================== ArviZ
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


# ====================================================================== a fit or a run
@dataclass
class FitView:
    """What the figures of a fit need, from a fit result or a run directory.

    Attributes
    ----------
    data : BeamMaps
    telescope : Telescope
    model_beam, sigma : ndarray (n_samples,)
        Model beam a_i P_i + b_i and σ at every sample (data units, map order).
    offsets : ndarray (n_maps,)
        Fitted per-map offsets b_i (data units).
    K, K_sd : ndarray (J,)
        Coefficients and their Laplace sd, waves.
    K_cov : ndarray (J, J)
        Laplace covariance of K, waves² (zeros for fixed terms).
    cov, names : ndarray (p, p), list of str
        Laplace covariance of the free parameters and their labels.
    title : str
        Data source and order, for figure titles.
    """

    data: object
    telescope: Telescope
    model_beam: np.ndarray
    sigma: np.ndarray
    offsets: np.ndarray
    K: np.ndarray
    K_sd: np.ndarray
    K_cov: np.ndarray
    cov: np.ndarray
    names: list
    title: str = ""

    @property
    def wavelength(self) -> float:
        """Observing wavelength, m."""
        return self.data.wavelength

    @classmethod
    def from_result(cls, result) -> FitView:
        """View of an in-memory quick-fit result (:func:`bayesoof.fit`)."""
        p = result.params
        src = Path(result.data.source).name
        return cls(
            data=result.data, telescope=result.telescope,
            model_beam=np.asarray(result.model_beam, float),
            sigma=np.broadcast_to(np.asarray(result.sigma, float),
                                  result.forward.observed.shape).copy(),
            offsets=np.asarray(p["offset"], float), K=np.asarray(result.K, float),
            K_sd=np.asarray(result.K_sd, float), K_cov=np.asarray(result.last.K_cov(), float),
            cov=np.asarray(result.cov, float), names=list(result.free_names),
            title=f"{src}, order {result.order}{_verdict_tag(result.adequacy.verdict)}",
        )

    @classmethod
    def from_run(cls, run_dir) -> FitView:
        """View of a run directory written by ``FitResult.save`` (summary.json, result.nc)."""
        import arviz as az

        from bayesoof.data.containers import BeamMap, BeamMaps

        run = Path(run_dir)
        summary = read_summary(run)
        nc = run / "result.nc"
        if not nc.is_file():
            raise FileNotFoundError(f"{run}: no result.nc; not a complete bayesoof run")
        idata = az.from_netcdf(nc)
        est, lap = idata.map_estimate, idata.laplace
        const, obs = idata.constant_data, idata.observed_data
        index = np.asarray(const["map_index"].values, int)
        names_map = [str(n) for n in const["map"].values]
        d_z = np.asarray(const["d_z_of_map"].values, float)
        u, v = const["u"].values, const["v"].values
        sigma, beam = const["sigma"].values, obs["beam"].values
        maps = tuple(
            BeamMap(u[index == i], v[index == i], beam[index == i], d_z[i], sigma[index == i],
                    names_map[i])
            for i in range(len(names_map))
        )
        meta = {"source": str(summary.get("source", run.name)),
                "OBJECT": summary.get("object", "")}
        data = BeamMaps(maps, float(summary["wavelength_m"]), meta)
        K = np.asarray(est["K"].values, float)
        K_labels = [str(z) for z in est["zernike"].values]
        names = [str(n) for n in lap["param"].values]
        cov = np.asarray(lap["cov"].values, float)
        K_cov = np.zeros((K.size, K.size))
        pos = {n: i for i, n in enumerate(names)}
        idx = [(j, pos[lab]) for j, lab in enumerate(K_labels) if lab in pos]
        if idx:
            jj, pp = (np.array(t) for t in zip(*idx, strict=True))
            K_cov[np.ix_(jj, jj)] = cov[np.ix_(pp, pp)]
        return cls(
            data=data, telescope=_telescope_from_summary(summary),
            model_beam=np.asarray(est["model_beam"].values, float), sigma=sigma,
            offsets=np.asarray(est["offset"].values, float), K=K,
            K_sd=np.asarray(est["K_sd"].values, float), K_cov=K_cov, cov=cov, names=names,
            title=(f"{Path(str(summary.get('source', ''))).name}, order {summary['order']}"
                   f"{_verdict_tag((summary.get('adequacy') or {}).get('verdict'))}"),
        )

    def laplace_draws(self, n: int = 1000, seed: int = 0) -> np.ndarray:
        """Draws of K (n, J) from the Laplace approximation N(K, K_cov), waves."""
        rng = np.random.default_rng(seed)
        c = 0.5 * (self.K_cov + self.K_cov.T)
        w, vec = np.linalg.eigh(c)
        root = vec * np.sqrt(np.clip(w, 0.0, None))
        return self.K + rng.standard_normal((n, self.K.size)) @ root.T


def _verdict_tag(verdict: str | None) -> str:
    """Title suffix marking the adequacy verdict (nothing when unknown)."""
    if verdict == "misfit":
        return " [MODEL MISFIT: see adequacy]"
    return f" [{verdict}]" if verdict else ""


def _telescope_from_summary(summary: dict) -> Telescope:
    """Rebuild the telescope of a run from summary.json (its geometry, else the preset)."""
    from bayesoof.physics.telescope import Blockage, Optics, TelescopeError

    t = summary.get("telescope") or {}
    if isinstance(t, str):
        return get_telescope(t)
    name, radius = str(t.get("name", "telescope")), float(t["radius_m"])
    if t.get("blockage") is not None and t.get("optics") is not None:
        b = dict(t["blockage"])
        b["leg_angles"] = tuple(b.get("leg_angles", ()))
        optics = {k: v for k, v in t["optics"].items() if k != "residual"}  # not drawn
        return Telescope(name, radius, Blockage(**b), Optics(**optics),
                         str(t.get("description", "")))
    try:  # custom callables are not stored: the preset of that name, if any
        return get_telescope(name)
    except (TelescopeError, FileNotFoundError):
        return Telescope(name, radius, description="geometry not stored (custom callables)")


def _view(source, cls):
    """``source`` as a ``cls`` view: itself, from a run directory, or from a result."""
    if isinstance(source, cls):
        return source
    if isinstance(source, str | os.PathLike):
        return cls.from_run(source)
    return cls.from_result(source)


def fit_figures(source, angle_unit: str = "arcmin") -> dict[str, Figure]:
    """All figures of a quick fit: a FitResult, a :class:`FitView` or a run directory.

    Returns
    -------
    dict of Figure
        ``beam_maps`` (linear), ``beam_maps_db``, ``phase`` (phase and surface error),
        ``phase_uncertainty`` (Laplace mean, sd and 94% width of the surface error),
        ``coefficients`` (K with Laplace sd) and ``correlation`` (free parameters).
    """
    view = _view(source, FitView)
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


# ====================================================================== a posterior
@dataclass
class PosteriorView:
    """What the posterior figures need: the fit's view, the draws and the model mean.

    Attributes
    ----------
    fit : FitView
        The quick fit the chains started from (data, telescope, MAP, Laplace).
    posterior : xarray.Dataset
        Posterior draws of the chains of the primary mode (dims chain, draw, zernike, map).
    K_draws : ndarray (S, J)
        All Zernike coefficients of every primary draw, waves.
    model_mean : ndarray (n_samples,) or None
        Posterior-mean model beam (data units), when the products were computed.
    sampler : str
    """

    fit: FitView
    posterior: object
    K_draws: np.ndarray
    model_mean: np.ndarray | None = None
    sampler: str = ""

    @classmethod
    def from_result(cls, post) -> PosteriorView:
        """View of an in-memory :class:`~bayesoof.inference.posterior.PosteriorResult`."""
        if post.idata is None:
            raise ValueError("the posterior has no draws (interrupted before sampling)")
        if post.fit is None:
            raise ValueError("the posterior result carries no quick fit (post.fit is None)")
        model_mean = post.products.get("model_mean") if post.products else None
        return cls(FitView.from_result(post.fit), post.primary_posterior(), post.K_draws(),
                   None if model_mean is None else np.asarray(model_mean, float),
                   str(post.sampler))

    @classmethod
    def from_run(cls, run_dir) -> PosteriorView:
        """View of a run directory holding ``posterior.nc`` (written by ``bayesoof sample``)."""
        import arviz as az
        import xarray as xr

        run = Path(run_dir)
        summary = read_summary(run).get("posterior", {})
        idata = az.from_netcdf(run / "posterior.nc")
        post = idata.posterior
        primary = summary.get("modes", {}).get("primary")
        if primary:
            post = post.isel(chain=[c for c in primary if c < post.sizes["chain"]])
        K_all = np.asarray(idata.constant_data["K_start"].values, float)
        labels_all = [str(z) for z in idata.constant_data["zernike_all"].values]
        S = post.sizes["chain"] * post.sizes["draw"]
        K_draws = np.tile(K_all, (S, 1))
        if "K" in post:
            pos = {lab: j for j, lab in enumerate(labels_all)}
            free = [pos[str(z)] for z in post["zernike"].values]
            K_draws[:, free] = post["K"].values.reshape(S, -1)
        model_mean = None
        products = run / "posterior_products.nc"
        if products.is_file():
            with xr.open_dataset(products) as ds:
                if "model_mean" in ds:
                    model_mean = np.asarray(ds["model_mean"].values, float)
        return cls(FitView.from_run(run), post, K_draws, model_mean,
                   str(summary.get("sampler", "")))

    def chosen(self, n: int = 4) -> list[str]:
        """Labels of the ``n`` free Zernike terms with the largest |mean| / sd.

        Tilts (pointing) come last: they are only chosen when too few other terms are free.
        """
        if "K" not in self.posterior:
            return []
        k = self.posterior["K"]
        labels = [str(z) for z in k["zernike"].values]
        mean = k.mean(("chain", "draw")).values
        sd = k.std(("chain", "draw")).values + 1e-300
        score = np.abs(mean) / sd
        tilt = [lab in ("K(1,-1)", "K(1,1)") for lab in labels]
        order = sorted(range(len(labels)), key=lambda i: (tilt[i], -score[i]))
        return [labels[i] for i in sorted(order[:n])]


def posterior_figures(source, n_vars: int = 4, angle_unit: str = "arcmin") -> dict[str, Figure]:
    """Figures of a posterior: a PosteriorResult, a :class:`PosteriorView` or a run directory.

    Returns
    -------
    dict of Figure
        ``posterior_phase`` (mean, sd and 94% width of the surface error),
        ``posterior_coefficients`` (posterior mean ± sd beside the MAP ± Laplace sd),
        ``posterior_beam_maps`` (observed, posterior-mean model, residual; when the
        products hold the model), and the ArviZ ``trace``, ``rank`` and ``pair`` plots of
        the ``n_vars`` best-determined Zernike terms (plus c_dB when free).
    """
    view = _view(source, PosteriorView)
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


#: units of the posterior variables in ArviZ panel titles and axis labels
_UNITS = {"K": "waves", "c_dB": "dB", "q": "", "amp": "data units", "offset": "data units"}


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


# ====================================================================== saving
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
