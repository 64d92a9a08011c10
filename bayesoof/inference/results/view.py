"""The quick fit's result at the public edge: astropy Quantities and the text report.

Inside the record everything is a plain float in a fixed unit (K waves, c_dB dB, x0/y0 m,
amp/offset data units, pointing rad); here those units are attached.  The unit ``wave``
(one wave of phase = 2π rad) is defined here so that ``K.to(u.rad)`` works.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u

from bayesoof.physics import zernike

__all__ = ["WAVE", "coefficient_table", "describe", "illumination_quantities"]

#: one wave of phase (2π rad): the unit of the Zernike coefficients K
WAVE = u.def_unit("wave", 2 * np.pi * u.rad, doc="one wave of phase, 2 pi rad")
#: the ParameterSpace's unit strings as astropy units
ASTROPY_UNITS = {"wave": WAVE, "dB": u.dB, "": u.dimensionless_unscaled, "m": u.m,
                 "rad": u.rad, "data": u.dimensionless_unscaled}


def coefficient_table(result):
    """Zernike coefficients of a FitResult as an astropy QTable (waves and µm surface)."""
    from astropy.table import QTable

    nl = result.space.nl
    free = result.space.free[: len(nl)]
    lam = result.data.wavelength
    return QTable(
        {
            "name": zernike.coeff_names(result.order),
            "n": [n for n, _ in nl],
            "l": [l for _, l in nl],  # noqa: E741
            "value": result.K * WAVE,
            "sd": result.K_sd * WAVE,
            "surface": zernike.waves_to_surface_um(result.K, lam) * u.um,
            "surface_sd": zernike.waves_to_surface_um(result.K_sd, lam) * u.um,
            "free": free,
        }
    )


def illumination_quantities(result) -> dict:
    """Illumination coefficients of a FitResult as Quantities (c_dB in dB, x0/y0 in m)."""
    sp = result.space
    p = result.params
    return {k: p[k] * ASTROPY_UNITS[sp.units[sp.illum_index[k]]] for k in sp.illum_names}


def describe(result) -> str:
    """Human-readable report of a FitResult's last order."""
    st = result.statistics
    lines = [
        f"bayesoof quick fit of {result.data.source} ({result.telescope.name}, "
        f"{result.data.wavelength * 1e3:.4g} mm), orders {result.orders[0].order}.."
        f"{result.order}",
        f"  {result.forward.describe()}",
    ]
    for o in result.orders:
        lines.append(
            f"  order {o.order}: chi2 {o.chi2:.6g} (reduced {o.reduced_chi2:.4f}), "
            f"{o.n_iter} iterations, {o.wall_time:.2f} s"
            + ("" if o.converged else f" NOT CONVERGED ({o.message})")
        )
    lines.append("  coefficient        value [waves]        sd")
    sp = result.space
    sd = result.last.full_sd()
    for j, name in enumerate(sp.names):
        tag = "" if sp.free[j] else "  (fixed)"
        lines.append(f"  {name:<14s} {sp.values[j]:+14.6g} {sd[j]:12.3g} {sp.units[j]}{tag}")
    lines.append(
        f"  rms phase {st['phase_rms']:.4f} ± {st['phase_rms_sd']:.4f} rad (plain), "
        f"{st['phase_rms_weighted']:.4f} rad (weighted); surface "
        f"{st['surface_rms']:.1f} µm; Ruze {st['ruze_weighted']:.4f}"
    )
    lines.append(f"  {result.adequacy.line()}")
    lines.append(f"  wall time {result.wall_time:.2f} s (compile {result.compile_time:.2f} s)")
    return "\n".join(lines)
