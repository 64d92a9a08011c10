"""Telescope geometry as data: radius, blockage and defocus path (OPD).

A :class:`Telescope` is built from a preset in ``bayesoof/presets/telescopes/*.toml`` (installed as
the resource ``bayesoof.models``), from a user's TOML file, or in Python.  Its blockage
and OPD are NumPy functions evaluated once on the aperture grid (they are constants of
the forward graph).  A user may pass their own callables:

* ``blockage(x, y) -> B`` with x, y in m and B in [0, 1] (fraction unblocked);
* ``opd(x, y, d_z) -> delta`` with x, y, d_z in m and delta in m.

All lengths are metres; angles in the TOML files are degrees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from bayesoof.physics.actuators import Actuators, actuators_from_dict
from bayesoof.presets.loader import available, preset_text, read_toml

__all__ = [
    "Blockage",
    "Illumination",
    "Optics",
    "ResidualPath",
    "Telescope",
    "TelescopeError",
    "available_telescopes",
    "get_telescope",
    "load_telescope",
]

BlockageFunc = Callable[[np.ndarray, np.ndarray], np.ndarray]
OPDFunc = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


class TelescopeError(ValueError):
    """Unknown telescope or malformed preset; the message names the file and the field."""


@dataclass(frozen=True)
class Blockage:
    """Sub-reflector shadow and support legs (with their shade), lengths in m, angles in deg.

    Each leg runs radially from the centre out to ``sub_reflector_radius + leg_length``
    with half-width ``leg_half_width`` at position angle ``leg_angles[k]`` (from +x towards
    +y).  ``shade_half_angle`` > 0 adds pyoof's Effelsberg shade: beyond the leg's end the
    blocked band widens linearly to meet the rim at the point where a line leaving the
    leg edge at the centre with that angle to the leg crosses the rim.
    """

    sub_reflector_radius: float = 0.0
    leg_half_width: float = 0.0
    leg_length: float = 0.0
    leg_angles: tuple[float, ...] = (0.0, 90.0, 180.0, 270.0)
    shade_half_angle: float = 0.0

    def open_distance(self, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
        """Signed distance (m) from (x, y) [m] to the edge of the open aperture.

        Positive inside the open area, negative where blocked or off the dish.  Exact for
        each edge near the boundary (which is all the anti-aliased pixel coverage needs).
        """
        r = np.hypot(x, y)
        dist = radius - r
        if self.sub_reflector_radius > 0:
            dist = np.minimum(dist, r - self.sub_reflector_radius)
        a = self.leg_half_width
        if a <= 0:
            return dist
        end = self.sub_reflector_radius + self.leg_length
        for ang in np.deg2rad(self.leg_angles):
            xl = x * np.cos(ang) + y * np.sin(ang)  # along the leg
            yl = np.abs(-x * np.sin(ang) + y * np.cos(ang))  # across the leg
            # outside the rectangle 0 < xl < end, |yl| < a (box signed distance)
            qx, qy = np.abs(xl - end / 2) - end / 2, yl - a
            box = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(
                np.maximum(qx, qy), 0
            )
            dist = np.minimum(dist, box)
            if self.shade_half_angle > 0:
                dist = np.minimum(dist, self._shade_distance(xl, yl, radius))
        return dist

    def mask(self, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
        """1 where the aperture point (x, y) [m] is open, 0 where blocked or off the dish."""
        return (self.open_distance(x, y, radius) > 0).astype(float)

    def _shade_distance(self, xl: np.ndarray, yl: np.ndarray, radius: float) -> np.ndarray:
        """Signed distance outside one leg's shade (pyoof's block_effelsberg triangle).

        The shade starts at the leg's end (x_end, ±a) and widens linearly to the rim point
        (x_rim, ±h_rim) reached by a line leaving (0, ±a) at ``shade_half_angle`` to the leg.
        """
        a = self.leg_half_width
        alpha = np.deg2rad(self.shade_half_angle)
        csc2 = np.sin(alpha) ** -2
        d = (-a + np.sqrt(a**2 - (a**2 - radius**2) * csc2)) / csc2
        x_end = self.sub_reflector_radius + self.leg_length  # pyoof's A
        x_rim, half_rim = d / np.tan(alpha), a + d  # pyoof's C, D (on the rim)
        if x_rim <= x_end:
            return np.full_like(xl, np.inf)
        slope = (half_rim - a) / (x_rim - x_end)
        across = (yl - a - (xl - x_end) * slope) / np.hypot(1.0, slope)
        return np.maximum(x_end - xl, across)


@dataclass(frozen=True)
class ResidualPath:
    """Residual defocus path of shaped optics, added to the on-axis formula.

    ``δ_res(r; d_z) = Σ_p d_z^p T_p(r)`` (r, d_z, δ in m), one radial profile per power p
    of d_z in ``dz_powers`` (each p >= 1, so the residual vanishes in focus):

    * ``kind = 'polynomial'``: ``T_p(r) = Σ_k coefficients[k][i] r^(r_powers[k])`` with
      ``p = dz_powers[i]``.  The SRT path of pyoof-srt (``precompute_srt_opd``, PHYSICS.md)
      is ``r_powers = 8..1``, ``dz_powers = 3, 2, 1``.
    * ``kind = 'table'``: ``T_p`` given at the radii ``r`` (m, increasing, covering the
      dish) as ``values[j][i]`` = T_p(r_j) with p = dz_powers[i], in m / m^p; linear
      interpolation in r.
    """

    kind: str
    dz_powers: tuple[int, ...]
    coefficients: tuple[tuple[float, ...], ...] = ()
    r_powers: tuple[int, ...] = ()
    r: tuple[float, ...] = ()
    values: tuple[tuple[float, ...], ...] = ()

    def profiles(self, r: np.ndarray) -> dict[int, np.ndarray]:
        """{p: T_p(r)} at the radii ``r`` [m]; T_p in m / m^p."""
        r = np.asarray(r, float)
        out = {}
        for i, p in enumerate(self.dz_powers):
            if self.kind == "polynomial":
                t = np.zeros_like(r)
                for k, rp in enumerate(self.r_powers):
                    t = t + self.coefficients[k][i] * r**rp
            else:
                t = np.interp(r, self.r, [row[i] for row in self.values])
            out[int(p)] = t
        return out

    def path(self, r: np.ndarray, d_z: float) -> np.ndarray:
        """δ_res(r; d_z) in m for r [m] and the sub-reflector offset d_z [m]."""
        r = np.asarray(r, float)
        out = np.zeros_like(r)
        for p, t in self.profiles(r).items():
            out = out + d_z**p * t
        return out

    def to_dict(self) -> dict:
        """Plain description (lists), as the TOML ``[optics.residual]`` table."""
        keys = ("coefficients", "r_powers") if self.kind == "polynomial" else ("r", "values")
        out = {"kind": self.kind, "dz_powers": list(self.dz_powers)}
        for k in keys:
            v = getattr(self, k)
            out[k] = [list(row) if isinstance(row, tuple) else row for row in v]
        return out


@dataclass(frozen=True)
class Optics:
    """Defocus geometry: ``kind`` 'cassegrain' (also Gregorian) or 'prime'; lengths in m.

    ``residual`` (optional) adds the residual path of shaped optics (:class:`ResidualPath`).
    """

    kind: str = "cassegrain"
    focal_length: float = 0.0
    effective_focal_length: float | None = None
    residual: ResidualPath | None = None

    def on_axis_profile(self, r: np.ndarray) -> np.ndarray:
        """δ / d_z of the on-axis formula (dimensionless) at radii r [m].

        Cassegrain/Gregorian: (1 - a²)/(1 + a²) + (1 - b²)/(1 + b²), a = r/(2 F_p),
        b = r/(2 F_eff); prime focus: the first term only.
        """
        a = r / (2 * self.focal_length)
        path = (1 - a**2) / (1 + a**2)
        if self.kind == "cassegrain":
            b = r / (2 * self.effective_focal_length)
            path = path + (1 - b**2) / (1 + b**2)
        return path

    def opd(self, x: np.ndarray, y: np.ndarray, d_z: float) -> np.ndarray:
        """Optical path difference delta(x, y; d_z) in m for an axial offset d_z [m].

        The on-axis formula (:meth:`on_axis_profile`) times d_z, plus the residual path
        when the optics declare one.
        """
        r = np.hypot(x, y)
        path = d_z * self.on_axis_profile(r)
        if self.residual is not None:
            path = path + self.residual.path(r, d_z)
        return path

    def opd_terms(self, x: np.ndarray, y: np.ndarray) -> dict[int, np.ndarray]:
        """{p: G_p(x, y)} with δ(x, y; d_z) = Σ_p d_z^p G_p(x, y); G_p in m / m^p.

        The forward model uses these to make the effective d_z a tensor input.
        """
        r = np.hypot(x, y)
        terms = {1: self.on_axis_profile(r)}
        if self.residual is not None:
            for p, t in self.residual.profiles(r).items():
                terms[p] = terms.get(p, 0.0) + t
        return terms

    def to_dict(self) -> dict:
        """Plain description for run metadata."""
        out = {
            "kind": self.kind,
            "focal_length": self.focal_length,
            "effective_focal_length": self.effective_focal_length,
        }
        if self.residual is not None:
            out["residual"] = self.residual.to_dict()
        return out


@dataclass(frozen=True)
class Illumination:
    """The feed illumination a preset declares: model and taper range (dB).

    ``model`` is '' when the preset declares none (the fit configuration decides);
    ``taper`` the start of c_dB and ``taper_bounds`` its (lower, upper) bounds, dB.
    """

    model: str = ""
    taper: float | None = None
    taper_bounds: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        """Plain description for run metadata."""
        return {"model": self.model, "taper": self.taper,
                "taper_bounds": None if self.taper_bounds is None else list(self.taper_bounds)}


@dataclass(frozen=True)
class Telescope:
    """A reflector: radius [m], blockage and defocus path.

    ``blockage_func`` / ``opd_func`` override the declarative :class:`Blockage` /
    :class:`Optics` when given (see the module docstring for their signatures).
    """

    name: str
    radius: float
    blockage: Blockage = field(default_factory=Blockage)
    optics: Optics = field(default_factory=Optics)
    description: str = ""
    blockage_func: BlockageFunc | None = None
    opd_func: OPDFunc | None = None
    observing: dict = field(default_factory=dict)
    illumination: Illumination = field(default_factory=Illumination)
    actuators: Actuators | None = None  # [actuators]: physics/actuators.py

    def block(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Blockage B(x, y) in [0, 1]; x, y in m."""
        if self.blockage_func is not None:
            return np.asarray(self.blockage_func(x, y), float)
        return self.blockage.mask(x, y, self.radius)

    def open_distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        """Signed distance to the open-aperture edge (m), None for a custom blockage."""
        if self.blockage_func is not None:
            return None
        return self.blockage.open_distance(x, y, self.radius)

    def opd(self, x: np.ndarray, y: np.ndarray, d_z: float) -> np.ndarray:
        """Optical path difference in m at (x, y) [m] for the offset d_z [m]."""
        if self.opd_func is not None:
            return np.asarray(self.opd_func(x, y, d_z), float)
        return self.optics.opd(x, y, d_z)

    def opd_terms(self, x: np.ndarray, y: np.ndarray) -> dict[int, np.ndarray] | None:
        """{p: G_p(x, y)} with δ = Σ_p d_z^p G_p (m / m^p); None for a custom ``opd_func``."""
        if self.opd_func is not None:
            return None
        return self.optics.opd_terms(x, y)

    def to_dict(self) -> dict:
        """Plain description (for run metadata); custom callables are named, not serialised."""
        return {
            "name": self.name,
            "description": self.description,
            "radius_m": self.radius,
            "blockage": None if self.blockage_func else vars(self.blockage) | {
                "leg_angles": list(self.blockage.leg_angles)},
            "optics": None if self.opd_func else self.optics.to_dict(),
            "illumination": self.illumination.to_dict(),
            "custom_blockage": getattr(self.blockage_func, "__name__", None),
            "custom_opd": getattr(self.opd_func, "__name__", None),
        }


# ------------------------------------------------------------------ presets


def available_telescopes() -> list[str]:
    """Names of the bundled telescope presets."""
    return available("telescopes")


def _require(table: dict, key: str, source: str, section: str, kind=float):
    if key not in table:
        raise TelescopeError(f"{source}: [{section}] is missing '{key}' (expected {kind.__name__})")
    try:
        val = kind(table[key])
    except (TypeError, ValueError) as err:
        raise TelescopeError(
            f"{source}: [{section}] '{key}' = {table[key]!r} is not a {kind.__name__}"
        ) from err
    return val


def _optional(table: dict, key: str, default, source: str, section: str, kind=float):
    return default if key not in table else _require(table, key, source, section, kind)


def _table(cfg: dict, key: str, source: str) -> dict:
    table = cfg.get(key, {})
    if not isinstance(table, dict):
        raise TelescopeError(f"{source}: '{key}' must be a table [{key}], got {table!r}")
    return table


def _angles(table: dict, source: str) -> tuple[float, ...]:
    angles = table.get("leg_angles", (0.0, 90.0, 180.0, 270.0))
    try:
        if isinstance(angles, str):
            raise TypeError
        return tuple(float(a) for a in angles)
    except (TypeError, ValueError) as err:
        raise TelescopeError(
            f"{source}: [blockage] 'leg_angles' = {angles!r} is not a list of angles (deg)"
        ) from err


_KNOWN_KEYS = {
    "top level": {
        "name", "description", "radius", "blockage", "optics", "observing", "illumination",
        "actuators",
    },
    "blockage": {f.name for f in fields(Blockage)},
    "optics": {"kind", "focal_length", "effective_focal_length", "residual"},
    "optics.residual": {"kind", "dz_powers", "coefficients", "r_powers", "r", "values"},
    "illumination": {"model", "taper", "taper_bounds"},
}


def _check_keys(table: dict, section: str, source: str) -> None:
    unknown = sorted(set(table) - _KNOWN_KEYS[section])
    if unknown:
        raise TelescopeError(
            f"{source}: [{section}] has unknown key(s) {unknown}; "
            f"expected some of {sorted(_KNOWN_KEYS[section])}"
        )


def _number_list(table: dict, key: str, source: str, section: str, kind=float) -> tuple:
    val = table.get(key)
    try:
        if isinstance(val, (str, bytes)) or val is None:
            raise TypeError
        out = tuple(kind(v) for v in val)
        if kind is int and any(int(v) != v for v in val):
            raise ValueError
    except (TypeError, ValueError):
        raise TelescopeError(
            f"{source}: [{section}] '{key}' = {val!r} is not a list of {kind.__name__}s"
        ) from None
    if not out:
        raise TelescopeError(f"{source}: [{section}] '{key}' is empty")
    return out


def _matrix(table: dict, key: str, rows: int, cols: int, source: str, section: str) -> tuple:
    val = table.get(key)
    bad = TelescopeError(
        f"{source}: [{section}] '{key}' must be a list of {rows} rows of {cols} numbers"
    )
    if not isinstance(val, list) or len(val) != rows:
        raise bad
    out = []
    for row in val:
        if not isinstance(row, list) or len(row) != cols:
            raise bad
        try:
            out.append(tuple(float(v) for v in row))
        except (TypeError, ValueError):
            raise bad from None
    if not np.all(np.isfinite(out)):
        raise TelescopeError(f"{source}: [{section}] '{key}' has non-finite entries")
    return tuple(out)


def _residual(o: dict, radius: float, source: str) -> ResidualPath | None:
    """The ``[optics.residual]`` table, validated (see :class:`ResidualPath`)."""
    if "residual" not in o:
        return None
    sec = "optics.residual"
    t = o["residual"]
    if not isinstance(t, dict):
        raise TelescopeError(f"{source}: 'optics.residual' must be a table [{sec}]")
    _check_keys(t, sec, source)
    kind = str(t.get("kind", ""))
    if kind not in ("polynomial", "table"):
        raise TelescopeError(
            f"{source}: [{sec}] kind = {kind!r}; expected 'polynomial' or 'table'"
        )
    need = ("dz_powers", "coefficients", "r_powers") if kind == "polynomial" else (
        "dz_powers", "r", "values")
    extra = sorted(set(t) - set(need) - {"kind"})
    if extra:
        raise TelescopeError(f"{source}: [{sec}] kind = {kind!r} takes {list(need)}, not {extra}")
    for key in need:
        if key not in t:
            raise TelescopeError(f"{source}: [{sec}] is missing '{key}' (kind = {kind!r})")
    dzp = _number_list(t, "dz_powers", source, sec, int)
    if min(dzp) < 1 or len(set(dzp)) != len(dzp):
        raise TelescopeError(
            f"{source}: [{sec}] 'dz_powers' must be distinct integers >= 1 (the residual "
            f"vanishes in focus), got {list(dzp)}"
        )
    if kind == "polynomial":
        rp = _number_list(t, "r_powers", source, sec, int)
        if min(rp) < 0:
            raise TelescopeError(f"{source}: [{sec}] 'r_powers' must be >= 0")
        coef = _matrix(t, "coefficients", len(rp), len(dzp), source, sec)
        return ResidualPath(kind, dzp, coefficients=coef, r_powers=rp)
    r = _number_list(t, "r", source, sec, float)
    if np.any(np.diff(r) <= 0) or r[0] > 0 or r[-1] < radius:
        raise TelescopeError(
            f"{source}: [{sec}] 'r' must increase and cover the dish [0, {radius}] m"
        )
    vals = _matrix(t, "values", len(r), len(dzp), source, sec)
    return ResidualPath(kind, dzp, r=r, values=vals)


def _illumination(cfg: dict, source: str) -> Illumination:
    """The ``[illumination]`` table: model, taper start and bounds (dB)."""
    t = _table(cfg, "illumination", source)
    _check_keys(t, "illumination", source)
    if not t:
        return Illumination()
    model = str(t.get("model", ""))
    from bayesoof.physics.illumination import available_illuminations

    if model not in available_illuminations():
        raise TelescopeError(
            f"{source}: [illumination] model = {model!r}; expected one of "
            f"{list(available_illuminations())}"
        )
    taper = _optional(t, "taper", None, source, "illumination")
    bounds = None
    if "taper_bounds" in t:
        bounds = _number_list(t, "taper_bounds", source, "illumination")
        if len(bounds) != 2 or not bounds[0] < bounds[1] <= 0:
            raise TelescopeError(
                f"{source}: [illumination] 'taper_bounds' must be [lower, upper] dB with "
                f"lower < upper <= 0, got {list(bounds)}"
            )
        if taper is not None and not bounds[0] <= taper <= bounds[1]:
            raise TelescopeError(
                f"{source}: [illumination] 'taper' = {taper} dB lies outside "
                f"'taper_bounds' {list(bounds)}"
            )
    return Illumination(model, taper, bounds)


def telescope_from_dict(cfg: dict, source: str = "<dict>") -> Telescope:
    """Build a :class:`Telescope` from the TOML structure of ``bayesoof/presets/telescopes``.

    Unknown keys are errors: a misspelt key would otherwise silently change the geometry.
    """
    _check_keys(cfg, "top level", source)
    radius = _require(cfg, "radius", source, "top level")
    if radius <= 0:
        raise TelescopeError(f"{source}: 'radius' must be > 0 m, got {radius}")
    b = _table(cfg, "blockage", source)
    _check_keys(b, "blockage", source)
    blk = Blockage(
        sub_reflector_radius=_optional(b, "sub_reflector_radius", 0.0, source, "blockage"),
        leg_half_width=_optional(b, "leg_half_width", 0.0, source, "blockage"),
        leg_length=_optional(b, "leg_length", 0.0, source, "blockage"),
        leg_angles=_angles(b, source),
        shade_half_angle=_optional(b, "shade_half_angle", 0.0, source, "blockage"),
    )
    for key in ("leg_half_width", "leg_length"):
        if getattr(blk, key) < 0:
            raise TelescopeError(f"{source}: [blockage] '{key}' must be >= 0 m")
    if blk.sub_reflector_radius < 0 or blk.sub_reflector_radius >= radius:
        raise TelescopeError(
            f"{source}: [blockage] sub_reflector_radius must be in [0, radius), "
            f"got {blk.sub_reflector_radius}"
        )
    if not 0 <= blk.shade_half_angle < 90:
        raise TelescopeError(f"{source}: [blockage] shade_half_angle must be in [0, 90) deg")
    o = _table(cfg, "optics", source)
    _check_keys(o, "optics", source)
    kind = str(o.get("kind", "cassegrain")).lower()
    if kind == "gregorian":
        kind = "cassegrain"
    if kind not in ("cassegrain", "prime"):
        raise TelescopeError(
            f"{source}: [optics] kind = {kind!r}; expected 'cassegrain', 'gregorian' or 'prime'"
        )
    fp = _require(o, "focal_length", source, "optics")
    feff = _require(o, "effective_focal_length", source, "optics") if kind == "cassegrain" else None
    if fp <= 0 or (feff is not None and feff <= 0):
        raise TelescopeError(f"{source}: [optics] focal lengths must be > 0 m")
    return Telescope(
        name=str(cfg.get("name", Path(source).stem)),
        radius=radius,
        blockage=blk,
        optics=Optics(kind, fp, feff, _residual(o, radius, source)),
        description=str(cfg.get("description", "")),
        observing=dict(cfg.get("observing", {})),
        illumination=_illumination(cfg, source),
        actuators=actuators_from_dict(cfg.get("actuators"), source),
    )


def load_telescope(path: str | Path) -> Telescope:
    """Load a telescope from a TOML file of the ``bayesoof/presets/telescopes`` form."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"telescope file {path} does not exist")
    return telescope_from_dict(read_toml(path.read_text(), str(path), TelescopeError), str(path))


def get_telescope(spec: str | Path | Telescope) -> Telescope:
    """A :class:`Telescope` from a preset name, a TOML path, or a Telescope (returned as is)."""
    if isinstance(spec, Telescope):
        return spec
    s = str(spec)
    if s.endswith(".toml") or Path(s).is_file():
        return load_telescope(s)
    name = s.lower()
    text = preset_text("telescopes", name)
    if text is None:
        import difflib

        close = difflib.get_close_matches(name, available_telescopes(), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise TelescopeError(
            f"unknown telescope {s!r}; {hint}expected a preset name "
            f"({', '.join(available_telescopes())}) or the path of a TOML file"
        )
    source = f"preset {name}"
    return telescope_from_dict(read_toml(text, source, TelescopeError), source)
