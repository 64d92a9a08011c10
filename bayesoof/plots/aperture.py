"""Aperture maps: phase and surface error over the dish, and their uncertainty from draws.

Aperture coordinates in m; phase in rad, surface in µm with the on-axis conversion
surface = phase · λ / (4π) (see ``shared/PHYSICS.md``); the maps are
:mod:`bayesoof.products.maps` on the display grid, piston and tilts removed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from bayesoof.physics.aperture import ApertureGrid
from bayesoof.physics.telescope import Telescope, get_telescope
from bayesoof.plots.common import PANEL, complete_order, symmetric_limit
from bayesoof.products import display_grid, phase_map, phase_map_stats

__all__ = ["plot_phase_map", "plot_phase_uncertainty"]


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
    fig = Figure(figsize=(PANEL * 1.25 * len(units), PANEL * 1.15), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(units), squeeze=False)[0])
    for ax, unit in zip(axes, units, strict=True):
        img, label = _unit_convert(phase, unit, wavelength)
        lim = symmetric_limit(img)
        _aperture_axes(ax, fig, x, img, tel, cov_x, cov, "RdBu_r", -lim, lim, label)
        rms = float(np.sqrt(np.nanmean(img**2)))
        unit_txt = {"rad": "rad", "waves": "waves"}.get(unit, "µm")
        ax.set_title(f"{label.split(' (')[0]}, rms {rms:.3g} {unit_txt}", fontsize=10)
    order = complete_order(np.size(K))
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
    fig = Figure(figsize=(PANEL * 1.25 * 3, PANEL * 1.15), layout="constrained")
    axes = fig.subplots(1, 3)
    base, u_txt = ulabel.split(" (")[0], ulabel.split("(")[-1].rstrip(")")
    lim = symmetric_limit(mean)
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
