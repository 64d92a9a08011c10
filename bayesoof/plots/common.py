"""Shared settings of the figures: display units of sample directions, panel size, helpers.

Sample directions are rad inside bayesoof and shown in arcmin by default (``angle_unit``).
"""

from __future__ import annotations

import numpy as np

from bayesoof.physics import zernike

__all__ = ["ANGLE_LABEL", "ANGLE_UNITS", "DB_FLOOR", "PANEL", "angle_factor", "complete_order",
           "symmetric_limit"]


#: factor from rad to each display unit of sample directions
ANGLE_UNITS = {
    "rad": 1.0,
    "deg": 180.0 / np.pi,
    "arcmin": 180.0 / np.pi * 60.0,
    "arcsec": 180.0 / np.pi * 3600.0,
}
ANGLE_LABEL = {"rad": "rad", "deg": "deg", "arcmin": "arcmin", "arcsec": "arcsec"}
PANEL = 3.4  # inches per panel
DB_FLOOR = -40.0  # dB, lower limit of the logarithmic beam maps


def complete_order(n_terms: int) -> int:
    """Zernike order N of a complete set of ``n_terms`` = (N+1)(N+2)/2 coefficients."""
    order = zernike.j_to_nl(max(int(n_terms), 1) - 1)[0]
    if zernike.n_coeffs(order) != n_terms:
        raise ValueError(
            f"{n_terms} coefficients is not a complete Zernike order (1, 3, 6, 10, 15, ...)"
        )
    return order


def angle_factor(angle_unit: str) -> float:
    """Factor from rad to ``angle_unit`` (a key of :data:`ANGLE_UNITS`)."""
    try:
        return ANGLE_UNITS[angle_unit]
    except KeyError:
        raise ValueError(
            f"angle_unit must be one of {sorted(ANGLE_UNITS)}, got {angle_unit!r}"
        ) from None


def symmetric_limit(values: np.ndarray) -> float:
    """Largest finite |value| (1 when none), for a colour scale symmetric about 0."""
    lim = float(np.nanmax(np.abs(values))) if np.any(np.isfinite(values)) else 1.0
    return lim or 1.0
