"""The quick fit's ``summary.json`` (schema :mod:`bayesoof.io.summary`) from a FitResult."""

from __future__ import annotations

import numpy as np

from bayesoof._version import __version__
from bayesoof.inference.nuisances import DRIFT, SCAN_TIME_SOURCE
from bayesoof.io.summary import SCHEMA_VERSION, Entry, Summary

__all__ = ["fit_summary", "parameter_entries"]


def parameter_entries(result, which) -> list[Entry]:
    """Entries (name, value, sd, unit, free) of the full-vector positions ``which``.

    ``which``: a slice of the full vector or a list of its indices.
    """
    sp = result.space
    sd = result.last.full_sd()
    idx = range(sp.n_full)[which] if isinstance(which, slice) else which
    return [
        {"name": sp.names[i], "value": float(sp.values[i]), "sd": float(sd[i]),
         "unit": sp.units[i], "free": bool(sp.free[i])}
        for i in idx
    ]


def _covariance_text(result) -> str:
    """How the reported covariance was obtained, in one phrase."""
    unc = result.uncertainty or {}
    return "Laplace (J^T J)^-1 of the standardised residuals" + (
        ", times reduced chi2" if result.last.covariance_scaled else
        f" under the {unc['model']} misfit likelihood" if unc.get("switched_on") else
        ", sigma taken as known (not rescaled)")


def fit_summary(result) -> Summary:
    """Summary of a FitResult in the schema of :mod:`bayesoof.io.summary`."""
    sp = result.space
    st = result.statistics
    coeffs = parameter_entries(result, sp.k_slice)
    for entry, (n, l) in zip(coeffs, sp.nl, strict=True):  # noqa: E741
        entry.update({"n": n, "l": l})
    maps = []
    amps = parameter_entries(result, sp.amp_slice)
    offs = parameter_entries(result, sp.offset_slice)
    drifts = {n: parameter_entries(result, sp.slice_of(n)) for n in DRIFT if sp.has(n)}
    for i, m in enumerate(result.data.maps):
        sl = result.forward.map_slices[i]
        maps.append({
            "name": m.name, "d_z_m": m.d_z, "n_samples": m.size,
            "sigma": float(np.median(result.sigma[sl])), "sigma_origin": result.sigma_origin[i],
            "amp": amps[i], "offset": offs[i],
            **{n: e[i] for n, e in drifts.items()},
            "chi2": float(np.sum(result.residuals[sl] ** 2)),
        })
        if drifts:
            maps[-1]["scan_time"] = SCAN_TIME_SOURCE
    plain = result.plain_last
    out = Summary(**{
        "schema_version": SCHEMA_VERSION,
        "bayesoof_version": __version__,
        "created": result.created,
        "source": result.data.source,
        "object": str(result.data.meta.get("OBJECT", "")),
        "telescope": result.telescope.to_dict(),
        "wavelength_m": result.data.wavelength,
        "frequency_hz": result.data.frequency,
        "d_z_m": [m.d_z for m in result.data.maps],
        "maps": maps,
        "order": result.order,
        "orders_fitted": [o.order for o in result.orders],
        "illumination_model": result.forward.illumination,
        "residual": result.config["fit"]["residual"],
        "forward": result.forward.describe(),
        "coefficients": coeffs,
        "illumination": parameter_entries(result, [sp.illum_index[k] for k in sp.illum_names]),
        "pointing": (parameter_entries(result, sp.pointing_slice) if sp.pointing_slice
                     else None),
        "chi2": result.chi2,
        "dof": result.dof,
        "reduced_chi2": result.reduced_chi2,
        "covariance": _covariance_text(result),
        "uncertainty": result.uncertainty,
        "noise_only_sd": (None if plain is None else
                          dict(zip(plain.space.free_names, plain.sd.tolist(), strict=True))),
        "phase_rms_rad": {"plain": st["phase_rms"], "plain_sd": st["phase_rms_sd"],
                          "weighted": st["phase_rms_weighted"],
                          "weighted_sd": st["phase_rms_weighted_sd"]},
        "surface_rms_um": {"plain": st["surface_rms"], "plain_sd": st["surface_rms_sd"],
                           "weighted": st["surface_rms_weighted"],
                           "weighted_sd": st["surface_rms_weighted_sd"],
                           "approximation": "on-axis: surface = phase * wavelength / (4 pi)"},
        "ruze_efficiency": {"weighted": st["ruze_weighted"],
                            "weighted_sd": st["ruze_weighted_sd"],
                            "plain": st["ruze"], "plain_sd": st["ruze_sd"]},
        "converged": result.converged,
        "status": result.status,
        "adequacy": result.adequacy.to_dict(),
        "at_bound": list(result.last.at_bound),
        "per_order": [
            {"order": o.order, "chi2": o.chi2, "reduced_chi2": o.reduced_chi2,
             "converged": o.converged, "message": o.message, "iterations": o.n_iter,
             "evaluations": o.n_eval, "wall_time_s": o.wall_time,
             "n_free": int(o.space.free.sum()), "start_chi2": o.start_costs,
             "cold_start": o.cold_start}
            for o in result.orders
        ],
        "wall_time_s": result.wall_time,
        "compile_time_s": result.compile_time,
        "config": dict(result.config.items()),
    })
    selection = getattr(result, "order_selection", None)  # set by campaign.order.fit_auto
    if selection is not None:
        out["selected_order"] = selection.selected_order
        out["order_selection"] = selection.to_dict()
    return out
