"""The quick fit's ``result.nc``: a FitResult as ArviZ InferenceData groups.

A MAP is not a posterior sample, so there is no ``posterior`` group: ``map_estimate``
holds the point estimate and its Laplace sd (dims ``zernike`` with coords n, l; ``map``
with coord d_z; the phase map on ``y``, ``x``; the model and residuals on ``sample``),
``laplace`` the free-parameter vector ``theta`` and its covariance and correlation (dims
``param``, ``param_``), ``observed_data`` and ``constant_data`` the beam maps, u, v and σ.
"""

from __future__ import annotations

import numpy as np

from bayesoof._version import __version__
from bayesoof.io.netcdf import Group
from bayesoof.physics import zernike

__all__ = ["inference_groups"]


def inference_groups(result, n_phase: int = 101) -> dict:
    """The groups of ``result.nc`` (no xarray or ArviZ import).

    Parameters
    ----------
    result : FitResult
    n_phase : int
        Points per side of the phase map's grid over the dish.

    Returns
    -------
    dict
        ``{"map_estimate", "laplace", "observed_data", "constant_data"}`` →
        :class:`bayesoof.io.netcdf.Group` (``.to_xarray()`` gives the xarray Dataset).
    """
    sp = result.space
    J = len(sp.nl)
    sd = result.last.full_sd()
    p = result.params
    maps = [m.name or f"map{i}" for i, m in enumerate(result.data.maps)]
    pm = result.phase_map(n_phase)
    coords = {
        "zernike": zernike.coeff_names(result.order),
        "n": ("zernike", [n for n, _ in sp.nl]),
        "l": ("zernike", [l for _, l in sp.nl]),  # noqa: E741
        "map": maps,
        "d_z": ("map", result.data.d_z),
        "x": pm.x,
        "y": pm.y,
        "sample": np.arange(result.forward.observed.size),
    }
    data_vars = {
        "K": ("zernike", p["K"], {"units": "wave"}),
        "K_sd": ("zernike", sd[:J], {"units": "wave"}),
        "K_free": ("zernike", sp.free[:J]),
        "amp": ("map", p["amp"], {"units": "data per normalised power"}),
        "amp_sd": ("map", sd[sp.amp_slice]),
        "offset": ("map", p["offset"], {"units": "data"}),
        "offset_sd": ("map", sd[sp.offset_slice]),
        "phase": (("y", "x"), pm.phase, {"units": "rad"}),
        "phase_sd": (("y", "x"), pm.phase_sd, {"units": "rad"}),
        "surface": (("y", "x"), pm.surface, {"units": "um"}),
        "surface_sd": (("y", "x"), pm.surface_sd, {"units": "um"}),
        "model_beam": ("sample", result.model_beam, {"units": "data"}),
        "residual": ("sample", result.residuals, {"units": "sigma"}),
    }
    for k in sp.illum_names:
        i = sp.illum_index[k]
        data_vars[k] = ((), sp.values[i], {"units": sp.units[i]})
        data_vars[f"{k}_sd"] = ((), sd[i], {"units": sp.units[i]})
    if sp.with_pointing:
        coords["axis"] = ["u", "v"]
        data_vars["pointing"] = (("map", "axis"), p["pointing"], {"units": "rad"})
    for k, v in result.statistics.items():
        data_vars[k] = ((), v)
    attrs = {
        "estimate": "maximum a posteriori with flat priors (least squares); not a sample",
        "order": result.order, "chi2": result.chi2, "dof": result.dof,
        "converged": int(result.converged), "adequacy": result.adequacy.verdict,
        "wall_time_s": result.wall_time,
        "residual": result.config["fit"]["residual"], "bayesoof_version": __version__,
        "wavelength_m": result.data.wavelength, "telescope": result.telescope.name,
    }
    est = Group(data_vars, coords=coords, attrs=attrs)
    names = sp.free_names
    lap = Group(
        {"theta": ("param", result.theta), "sd": ("param", result.sd),
         "cov": (("param", "param_"), result.cov), "corr": (("param", "param_"), result.corr),
         "lower": ("param", result.lower), "upper": ("param", result.upper)},
        coords={"param": names, "param_": names,
                "unit": ("param", [sp.units[i] for i in sp.free_index])},
        attrs={"covariance_scaled_by_reduced_chi2": int(result.last.covariance_scaled)},
    )
    fm = result.forward
    sample_coords = {"sample": coords["sample"], "map_index": ("sample", fm.map_index)}
    obs = Group({"beam": ("sample", fm.observed)}, coords=sample_coords)
    const = Group(
        {"u": ("sample", np.concatenate([m.u for m in result.data.maps]), {"units": "rad"}),
         "v": ("sample", np.concatenate([m.v for m in result.data.maps]), {"units": "rad"}),
         "sigma": ("sample", result.sigma, {"units": "data"}),
         "d_z_of_map": ("map", result.data.d_z, {"units": "m"})},
        coords=sample_coords | {"map": maps},
    )
    return {"map_estimate": est, "laplace": lap, "observed_data": obs, "constant_data": const}
