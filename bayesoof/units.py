"""Units at the public edge: accept astropy Quantity or plain floats in the documented unit."""

from __future__ import annotations

import numpy as np
from astropy import units as u

__all__ = ["as_value", "as_quantity"]


def as_value(x, unit: str, name: str = "value"):
    """Return ``x`` as plain float(s) in ``unit``.

    A Quantity is converted (a clear ``astropy.units.UnitConversionError`` naming
    ``name`` when the dimension is wrong); a plain number is taken to be in ``unit``
    already.  Returns a float for scalars, an ndarray otherwise.
    """
    if isinstance(x, u.Quantity):
        try:
            val = x.to_value(unit, equivalencies=u.spectral() if unit in ("m", "Hz") else [])
        except u.UnitConversionError as err:
            raise u.UnitConversionError(
                f"{name}: expected a quantity convertible to {unit}, got unit {x.unit}"
            ) from err
    else:
        val = x
    arr = np.asarray(val, dtype=float)
    return float(arr) if arr.ndim == 0 else arr


def as_quantity(x, unit: str) -> u.Quantity:
    """Attach ``unit`` to a plain value (floats inside the package, Quantity at the edge)."""
    return u.Quantity(x, unit)
