"""Active-surface actuators as data: the ``[actuators]`` section of a telescope preset.

An active surface (Effelsberg: its 6.5 m sub-reflector; a primary made of panels
elsewhere) takes the phase correction as perpendicular displacements at its actuators.
The preset declares where they are and how the primary's aperture maps onto them::

    [actuators]
    surface = "sub-reflector"           # free text
    rings = [3.25, 2.60, 1.88, 1.21]    # m: rings of actuators ...
    per_ring = 24                       # ... with this many on each ring,
    first_angle = 7.5                   # deg: at first_angle + k 360/per_ring
    # or explicit positions instead of rings:  x = [...], y = [...]   (m)
    surface_radius = 3.25               # m: the radius that maps onto the primary rim
    rotation = -90.0                    # deg: primary angle = surface angle + rotation
    sign = -1.0                         # displacement = sign * phase * wavelength / (4 pi)
    limit = 0.005                       # m: |displacement| the actuators can reach
    lookup_elevations = [7, 10, 20, 30, 32, 40, 50, 60, 70, 80, 90]   # deg (look-up table)

Actuators are numbered 1..N in the order rings (outer first as written) × angle, or the
order of x, y.  Lengths in m, angles in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Actuators", "actuators_from_dict"]

KNOWN_KEYS = {"surface", "rings", "per_ring", "first_angle", "x", "y", "surface_radius",
              "rotation", "sign", "limit", "lookup_elevations"}


@dataclass(frozen=True)
class Actuators:
    """Actuator positions on the active surface and its mapping onto the primary aperture.

    ``x``, ``y`` in m on the active surface; ``surface_radius`` (m) maps onto the primary
    rim (ρ = r / surface_radius); ``rotation`` (deg) adds to the position angle;
    ``sign`` and the factor λ / (4π) turn phase (rad) into displacement; ``limit`` in m.
    """

    x: tuple
    y: tuple
    surface_radius: float
    rotation: float = 0.0
    sign: float = -1.0
    limit: float = float("inf")
    lookup_elevations: tuple = ()
    surface: str = ""

    @property
    def n(self) -> int:
        """Number of actuators."""
        return len(self.x)

    def aperture_polar(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised radius ρ and position angle θ (rad) on the primary of each actuator."""
        x, y = np.asarray(self.x), np.asarray(self.y)
        rho = np.hypot(x, y) / self.surface_radius
        theta = np.arctan2(y, x) + np.deg2rad(self.rotation)
        return rho, theta


def _err(source: str, msg: str):
    from bayesoof.physics.telescope import TelescopeError

    return TelescopeError(f"{source}: [actuators] {msg}")


def _floats(table: dict, key: str, source: str) -> tuple:
    val = table[key]
    try:
        if isinstance(val, str):
            raise TypeError
        return tuple(float(v) for v in val)
    except (TypeError, ValueError):
        raise _err(source, f"'{key}' = {val!r} is not a list of numbers") from None


def _float(table: dict, key: str, default, source: str) -> float:
    if key not in table:
        if default is None:
            raise _err(source, f"is missing '{key}'")
        return default
    try:
        return float(table[key])
    except (TypeError, ValueError):
        raise _err(source, f"'{key}' = {table[key]!r} is not a number") from None


def actuators_from_dict(table: dict | None, source: str = "<dict>") -> Actuators | None:
    """Parse the ``[actuators]`` table (None when absent); unknown keys are errors."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise _err(source, f"must be a table, got {table!r}")
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise _err(source, f"unknown key(s) {unknown}; expected some of {sorted(KNOWN_KEYS)}")
    if "rings" in table and ("x" in table or "y" in table):
        raise _err(source, "give either 'rings' (with per_ring, first_angle) or 'x' and 'y'")
    if "rings" in table:
        rings = _floats(table, "rings", source)
        per = int(_float(table, "per_ring", None, source))
        if per < 1 or any(r <= 0 for r in rings):
            raise _err(source, "'per_ring' must be >= 1 and 'rings' radii > 0 m")
        ang = np.deg2rad(_float(table, "first_angle", 0.0, source) + 360.0 / per * np.arange(per))
        x = tuple(float(r * np.cos(a)) for r in rings for a in ang)
        y = tuple(float(r * np.sin(a)) for r in rings for a in ang)
    elif "x" in table and "y" in table:
        x, y = _floats(table, "x", source), _floats(table, "y", source)
        if len(x) != len(y) or not x:
            raise _err(source, f"'x' and 'y' must have the same length > 0 ({len(x)}, {len(y)})")
    else:
        raise _err(source, "needs the actuator positions: 'rings' or 'x' and 'y' (m)")
    radius = _float(table, "surface_radius", None, source)
    limit = _float(table, "limit", float("inf"), source)
    sign = _float(table, "sign", -1.0, source)
    if radius <= 0 or limit <= 0 or sign not in (-1.0, 1.0):
        raise _err(source, "'surface_radius' and 'limit' must be > 0 m, 'sign' +1 or -1")
    if np.max(np.hypot(x, y)) > radius * (1 + 1e-9):
        raise _err(source, f"an actuator lies outside surface_radius = {radius} m")
    elevations = _floats(table, "lookup_elevations", source) if "lookup_elevations" in table \
        else ()
    return Actuators(x, y, radius, _float(table, "rotation", 0.0, source), sign, limit,
                     elevations, str(table.get("surface", "")))
