"""Beam maps: observed, model and residual of every map (linear or dB)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from bayesoof.plots.common import ANGLE_LABEL, DB_FLOOR, PANEL, angle_factor

__all__ = ["plot_beam_maps"]


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
        out = 10.0 * np.log10(np.maximum(values / peak, 10 ** (DB_FLOOR / 10)))
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
    factor = angle_factor(angle_unit)
    sizes = [m.size for m in data.maps]
    models = _split(model, sizes, "model")
    if sigma is None and all(m.sigma is not None for m in data.maps):
        sigmas = [m.sigma for m in data.maps]
    else:
        sigmas = _split(sigma, sizes, "sigma")
    offs = np.zeros(data.n_maps) if offsets is None else np.broadcast_to(
        np.asarray(offsets, float), (data.n_maps,))
    ncol = 1 if models is None else 3
    fig = Figure(figsize=(PANEL * ncol + 0.6, PANEL * data.n_maps * 0.92 + 0.5),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(data.n_maps, ncol, squeeze=False))
    unit_txt = ANGLE_LABEL[angle_unit]
    for i, m in enumerate(data.maps):
        grid = m.grid()
        obs = m.beam
        mod = None if models is None else models[i]
        if scale == "db":
            ref = float(np.max((obs if mod is None else mod) - offs[i]))
            ref = ref if ref > 0 else 1.0
            shown = [_to_db(s - offs[i], ref) for s in ([obs] if mod is None else [obs, mod])]
            vmin, vmax, cmap, clabel = DB_FLOOR, 0.0, "viridis", "power (dB)"
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
