"""Beam-map containers: the observed power patterns of one OOF holography set.

Inside the package everything is plain floats in fixed units: directions ``u, v`` in
radians (direction cosines), sub-reflector offsets ``d_z`` in metres, wavelength in
metres, beam values in the file's own (arbitrary) power units.  Astropy ``Quantity``
is accepted at the public constructor :meth:`BeamMaps.from_arrays`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bayesoof.units import as_value

__all__ = [
    "BeamMap",
    "BeamMaps",
    "DataError",
    "DeadSampleWarning",
    "RegularGrid",
    "dead_samples",
    "mask_dead_samples",
    "regular_grid",
]

SPEED_OF_LIGHT = 299_792_458.0  # m s^-1
#: largest sub-reflector offset accepted, m (real OOF offsets are a few to ~50 mm)
MAX_ABS_DZ = 1.0
#: widest map accepted by :meth:`BeamMaps.check_extent`, in beam widths λ/(2R) (OOF maps
#: span about ±10; the default aperture sampling grows linearly with the extent)
MAX_BEAM_WIDTHS = 100.0


class DataError(ValueError):
    """Bad beam-map input; the message names the source, the field and what was expected."""


@dataclass(frozen=True)
class RegularGrid:
    """Samples that lie on a rectangular grid ``u0 + i du``, ``v0 + j dv``.

    ``iu[k]``, ``iv[k]`` give the grid indices of sample ``k``.  Units: rad.

    ``u_nodes``, ``v_nodes`` (optional) are the exact abscissae of the grid lines when they
    differ from the uniform lattice by more than float jitter (coordinates rounded to a
    few decimals): every sample of index i then lies exactly at ``u_nodes[i]`` (to float
    precision) or within one rounding quantum of it (``snap`` says which, rad).
    """

    u0: float
    du: float
    nu: int
    v0: float
    dv: float
    nv: int
    iu: np.ndarray
    iv: np.ndarray
    u_nodes: np.ndarray | None = None
    v_nodes: np.ndarray | None = None
    snap: float = 0.0

    @property
    def u(self) -> np.ndarray:
        """Grid abscissae along u, rad (the exact grid lines when known)."""
        if self.u_nodes is not None:
            return self.u_nodes
        return self.u0 + self.du * np.arange(self.nu)

    @property
    def v(self) -> np.ndarray:
        """Grid abscissae along v, rad (the exact grid lines when known)."""
        if self.v_nodes is not None:
            return self.v_nodes
        return self.v0 + self.dv * np.arange(self.nv)

    @property
    def uniform(self) -> bool:
        """Whether the grid lines are the uniform lattice (FFT bins can fall on them)."""
        return self.u_nodes is None and self.v_nodes is None


def _rounding_quantum(x: np.ndarray, step: float) -> float:
    """The coarsest decimal quantum 10^-k < step / 10 to which all ``x`` are rounded, or 0.

    A value counts as rounded when it is within 1e-3 of the quantum of a multiple of it
    (float32 storage of 6-decimal values errs by < 1e-4 of the quantum).
    """
    for k in range(1, 13):
        q = 10.0 ** -k
        if q >= step / 10:
            continue
        m = x / q
        if np.all(np.abs(m - np.rint(m)) < 1e-3):
            return q  # the coarsest quantum that fits
    return 0.0


def _axis_grid(x: np.ndarray, rtol: float):
    """Regular 1-d lattice through the sample coordinates ``x``, or None.

    The tolerance is relative to the lattice step: float32 columns (pyoof writes 'E')
    carry ~1e-7 relative error on values up to ~50 steps, hence ``rtol`` ~ 1e-3 of a step.
    Coordinates rounded to a decimal quantum q (real files: 1e-6 rad on a 3.27e-5 rad step,
    a 3 % jitter) are a lattice when every sample lies within q of the least-squares
    lattice (rounding moves a value by up to q/2) and q < step / 10 (so that the index of
    each sample is unambiguous).

    Returns ``(x0, dx, n, idx, nodes, snap)``: ``nodes`` the exact abscissa of each index
    (None when the samples sit on the uniform lattice to ``rtol``), ``snap`` the largest
    distance of a sample from its node (0 when all samples of an index share one value).
    """
    vals = np.unique(x)
    if vals.size == 1:
        return float(vals[0]), 1.0, 1, np.zeros(x.size, dtype=np.int64), None, 0.0
    steps = np.diff(vals)
    step = float(np.median(steps))
    if step <= 0:
        return None
    # rounded coordinates make each difference err by up to a quantum: take the step from
    # the whole span instead (its error is then that of one difference over the span)
    span = float(vals[-1] - vals[0])
    step = span / max(round(span / step), 1)
    quantum = _rounding_quantum(x, step)
    # index of each sample: unambiguous while its error stays well below half a step
    assign = rtol if quantum == 0 else min(0.25, 2.0 * quantum / step + rtol)
    idx = np.rint((x - vals[0]) / step)
    if np.max(np.abs((x - vals[0]) / step - idx)) > assign:
        return None
    n = int(idx.max()) + 1
    if n > 4 * vals.size:  # far too sparse to be a grid worth using
        return None
    # refit origin and step by least squares on all samples (removes float32 jitter)
    a = np.vstack([np.ones_like(idx), idx]).T
    (x0, dx), *_ = np.linalg.lstsq(a, x, rcond=None)
    idx = idx.astype(np.int64)
    lattice = x0 + dx * np.arange(n)
    dev = float(np.max(np.abs(x - lattice[idx])))
    if dev <= rtol * abs(dx):
        return float(x0), float(dx), n, idx, None, 0.0
    # rounded coordinates: within one quantum of the fitted lattice (rounding moves a value
    # by up to q/2; the least-squares lattice differs from the true one by a fraction of q)
    if quantum == 0 or dev > quantum * (1 + 1e-6):
        return None
    # rounded coordinates: the grid line of each index is the value its samples share
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, idx, x)
    np.maximum.at(hi, idx, x)
    shared = hi - lo <= rtol * abs(dx)  # the samples of that index share one value
    nodes = np.where(np.isfinite(lo) & shared, 0.5 * (lo + hi), lattice)
    snap = float(np.max(np.abs(x - nodes[idx])))
    return float(x0), float(dx), n, idx, nodes, snap


def regular_grid(u: np.ndarray, v: np.ndarray, rtol: float = 1e-3) -> RegularGrid | None:
    """Detect whether samples ``(u, v)`` (rad) lie on a rectangular lattice.

    Returns a :class:`RegularGrid` (the lattice need not be fully filled) or None when the
    samples are scattered.  Coordinates rounded to a decimal quantum q < step / 10 count as
    a lattice when every sample lies within q of the least-squares lattice: the grid lines
    are then the values the samples of each index share (exact positions, ``snap = 0``),
    or, where they do not share one, the fitted lattice, which moves those samples by at
    most q (``snap``), the precision the file gives them.
    """
    gu = _axis_grid(np.asarray(u, float), rtol)
    gv = _axis_grid(np.asarray(v, float), rtol)
    if gu is None or gv is None:
        return None
    # a scattered set whose unique coordinates happen to be few is still only a grid if the
    # lattice is not absurdly larger than the sample count
    if gu[2] * gv[2] > 16 * max(len(u), 1):
        return None
    return RegularGrid(gu[0], gu[1], gu[2], gv[0], gv[1], gv[2], gu[3], gv[3],
                       u_nodes=gu[4], v_nodes=gv[4], snap=max(gu[5], gv[5]))


@dataclass(frozen=True)
class BeamMap:
    """One observed beam map.

    Attributes
    ----------
    u, v : ndarray
        Sample directions (direction cosines), rad.  1-d, same length.
    beam : ndarray
        Observed power, arbitrary units.
    d_z : float
        Sub-reflector offset, m (0 for the in-focus map).
    sigma : ndarray or None
        Per-sample noise standard deviation, same units as ``beam``; None when unknown.
    name : str
        Label of the map (e.g. the FITS table name).
    """

    u: np.ndarray
    v: np.ndarray
    beam: np.ndarray
    d_z: float
    sigma: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        for attr in ("u", "v", "beam"):
            object.__setattr__(self, attr, np.ascontiguousarray(getattr(self, attr), float))
        if self.sigma is not None:
            object.__setattr__(self, "sigma", np.ascontiguousarray(self.sigma, float))
        object.__setattr__(self, "d_z", float(self.d_z))

    @property
    def size(self) -> int:
        """Number of samples."""
        return int(self.beam.size)

    def grid(self) -> RegularGrid | None:
        """The rectangular lattice the samples lie on, or None when scattered."""
        return regular_grid(self.u, self.v)

    def validate(self, source: str = "<arrays>") -> None:
        """Raise :class:`DataError` naming ``source`` and the field when the map is unusable."""
        where = f"{source}: map {self.name or repr(self.d_z)}"
        n = self.beam.size
        for attr in ("u", "v", "beam") + (("sigma",) if self.sigma is not None else ()):
            arr = getattr(self, attr)
            if arr.ndim != 1:
                raise DataError(f"{where}: field {attr!r} must be 1-d, got shape {arr.shape}")
            if arr.size != n:
                raise DataError(
                    f"{where}: field {attr!r} has {arr.size} samples but 'beam' has {n}; "
                    "all columns must have the same length"
                )
            if not np.all(np.isfinite(arr)):
                bad = int(np.sum(~np.isfinite(arr)))
                raise DataError(
                    f"{where}: field {attr!r} has {bad} non-finite (NaN/inf) samples; "
                    "expected finite values (drop them, or read with drop_nonfinite=True)"
                )
        if n == 0:
            raise DataError(f"{where}: the map has no samples; expected at least one")
        if self.sigma is not None and np.any(self.sigma <= 0):
            raise DataError(f"{where}: field 'sigma' must be > 0 everywhere")
        if not np.isfinite(self.d_z):
            raise DataError(f"{where}: d_z must be finite, got {self.d_z!r}")
        if abs(self.d_z) > MAX_ABS_DZ:
            raise DataError(
                f"{where}: d_z = {self.d_z!r} m is not a sub-reflector offset; expected "
                f"|d_z| <= {MAX_ABS_DZ:g} m (offsets in mm written as m?)"
            )
        for attr in ("u", "v"):
            big = float(np.max(np.abs(getattr(self, attr))))
            if big > 1.0:
                raise DataError(
                    f"{where}: field {attr!r} reaches |{attr}| = {big:.6g}; expected "
                    "direction cosines in rad, |u|, |v| <= 1 (degrees or arcsec given?)"
                )
        if n > 1 and (np.ptp(self.u) == 0 or np.ptp(self.v) == 0):
            axis = "u" if np.ptp(self.u) == 0 else "v"
            raise DataError(
                f"{where}: every sample has the same {axis} = {getattr(self, axis)[0]!r} rad; "
                "expected a map covering an area of the sky"
            )

    def check_signal(self, source: str = "<arrays>") -> None:
        """Raise :class:`DataError` when the beam is constant (no signal, e.g. all zeros)."""
        b = self.beam
        if b.size and np.ptp(b) <= 1e-12 * float(np.max(np.abs(b))):
            raise DataError(
                f"{source}: map {self.name or repr(self.d_z)}: field 'beam' is constant "
                f"({float(b[0])!r} everywhere): the map has no signal; expected a beam pattern"
            )

    def dropping_nonfinite(self) -> tuple[BeamMap, int]:
        """Copy without samples where any field is NaN/inf, and the number dropped."""
        cols = [self.u, self.v, self.beam] + ([self.sigma] if self.sigma is not None else [])
        ok = np.logical_and.reduce([np.isfinite(c) for c in cols])
        if ok.all():
            return self, 0
        sig = None if self.sigma is None else self.sigma[ok]
        new = dataclasses.replace(
            self, u=self.u[ok], v=self.v[ok], beam=self.beam[ok], sigma=sig
        )
        return new, int((~ok).sum())


@dataclass(frozen=True)
class BeamMaps:
    """A set of beam maps of one source taken with different sub-reflector offsets.

    Attributes
    ----------
    maps : tuple of BeamMap
        At least one in-focus map (d_z = 0); all d_z distinct.
    wavelength : float
        Observing wavelength, m.
    meta : dict
        FREQ (Hz), MEANEL (deg), OBJECT, DATE_OBS, source file, and any other header cards.
    """

    maps: tuple[BeamMap, ...]
    wavelength: float
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "maps", tuple(self.maps))
        object.__setattr__(self, "wavelength", float(self.wavelength))

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_arrays(
        cls,
        u: Sequence,
        v: Sequence,
        beam: Sequence,
        d_z: Sequence,
        wavelength,
        sigma: Sequence | None = None,
        names: Sequence[str] | None = None,
        meta: dict | None = None,
    ) -> BeamMaps:
        """Build from per-map arrays; ``u, v`` in rad, ``d_z`` and ``wavelength`` in m.

        Each of ``u, v, beam, sigma`` is a sequence with one array per map; ``u, v``,
        ``d_z`` and ``wavelength`` may be astropy Quantities (converted to rad / m).
        """
        n = len(d_z)
        dz = as_value(d_z, "m", "d_z")
        wl = float(as_value(wavelength, "m", "wavelength"))
        maps = []
        for i in range(n):
            maps.append(
                BeamMap(
                    u=as_value(u[i], "rad", "u"),
                    v=as_value(v[i], "rad", "v"),
                    beam=np.asarray(beam[i], float),
                    d_z=float(np.atleast_1d(dz)[i]),
                    sigma=None if sigma is None or sigma[i] is None else np.asarray(sigma[i]),
                    name=names[i] if names else f"map{i}",
                )
            )
        out = cls(tuple(maps), wl, dict(meta or {}))
        out.validate()
        return out

    # ---------------------------------------------------------------- properties
    @property
    def n_maps(self) -> int:
        """Number of maps."""
        return len(self.maps)

    @property
    def d_z(self) -> np.ndarray:
        """Sub-reflector offsets of the maps, m."""
        return np.array([m.d_z for m in self.maps])

    @property
    def frequency(self) -> float:
        """Observing frequency, Hz (from the wavelength)."""
        return SPEED_OF_LIGHT / self.wavelength

    @property
    def source(self) -> str:
        """Where the data came from (file name or '<arrays>')."""
        return str(self.meta.get("source", "<arrays>"))

    def validate(self, require_signal: bool = False) -> None:
        """Raise :class:`DataError` when the set cannot be fitted (see the messages).

        ``require_signal``: also reject maps whose beam is constant (no signal); the
        readers and the fits ask for it, forward models of positions only do not.
        """
        src = self.source
        if not np.isfinite(self.wavelength) or self.wavelength <= 0:
            raise DataError(
                f"{src}: wavelength must be a positive length in m, got {self.wavelength!r}"
            )
        if self.n_maps == 0:
            raise DataError(f"{src}: no beam maps; expected at least one in-focus map")
        for m in self.maps:
            m.validate(src)
        dz = self.d_z
        uniq, counts = np.unique(dz, return_counts=True)
        if np.any(counts > 1):
            raise DataError(
                f"{src}: two maps have the same d_z = {float(uniq[counts > 1][0])!r} m; "
                "expected one map per sub-reflector offset"
            )
        if not np.any(dz == 0.0):
            raise DataError(
                f"{src}: no in-focus map (d_z = 0) among d_z = {dz.tolist()} m; "
                "expected one in-focus and at least one defocused map"
            )
        if require_signal:
            for m in self.maps:
                m.check_signal(src)

    def check_extent(self, radius: float) -> None:
        """Raise :class:`DataError` when a map spans more than :data:`MAX_BEAM_WIDTHS`.

        ``radius``: dish radius, m; the beam width is λ/(2R).  Maps far wider than the
        beam (coordinates in the wrong unit) would need an absurdly fine aperture grid.
        """
        width = self.wavelength / (2.0 * radius)
        for m in self.maps:
            ext = float(max(np.max(np.abs(m.u)), np.max(np.abs(m.v))))
            if ext > MAX_BEAM_WIDTHS * width:
                raise DataError(
                    f"{self.source}: map {m.name or repr(m.d_z)}: fields 'u', 'v' reach "
                    f"{ext:.4g} rad = {ext / width:.0f} beam widths λ/(2R) of a {radius:g} m "
                    f"dish; expected at most {MAX_BEAM_WIDTHS:g} (coordinates in rad?)"
                )

    def with_maps(self, maps: Sequence[BeamMap]) -> BeamMaps:
        """Copy with other maps (same wavelength and metadata)."""
        return dataclasses.replace(self, maps=tuple(maps))

    def describe(self) -> str:
        """Human-readable multi-line summary."""
        lines = [
            f"source      : {self.source}",
            f"wavelength  : {self.wavelength * 1e3:.4f} mm ({self.frequency / 1e9:.4f} GHz)",
            f"maps        : {self.n_maps}",
        ]
        for m in self.maps:
            g = m.grid()
            kind = f"grid {g.nu}x{g.nv}" if g is not None else "scattered"
            peak = float(np.max(m.beam))
            lines.append(
                f"  {m.name:<10s} d_z = {m.d_z * 1e3:+8.3f} mm  {m.size:6d} samples ({kind}), "
                f"peak {peak:.4g}, sigma {'given' if m.sigma is not None else 'not given'}"
            )
        return "\n".join(lines)


# ------------------------------------------------------------------ dead samples
#: an exact zero is dead when the map's baseline lies this many robust σ from zero
DEAD_ZERO_SIGMAS = 3.0


def dead_samples(m: BeamMap) -> tuple[np.ndarray, int, int]:
    """Mask of the dead samples of one map: NaN/inf beam values, exact zeros off baseline.

    Exact zeros are dead in a map whose baseline is not zero.  The baseline is the median
    of the finite beam values and its scatter 1.4826 × their median absolute deviation
    (most samples of a beam map are off the beam); exact 0.0 values are dead when the
    baseline lies more than :data:`DEAD_ZERO_SIGMAS` of that scatter from zero (a gridding
    gap in data whose baseline is ~40 and noise ~10).  A baseline-subtracted map keeps its
    zeros.

    Returns ``(dead, n_nonfinite, n_zero)``.
    """
    b = np.asarray(m.beam, float)
    finite = np.isfinite(b)
    dead = ~finite
    n_zero = 0
    if finite.any():
        vals = b[finite]
        base = float(np.median(vals))
        spread = 1.4826 * float(np.median(np.abs(vals - base)))
        if abs(base) > DEAD_ZERO_SIGMAS * spread and base != 0.0:
            zero = finite & (b == 0.0)
            n_zero = int(zero.sum())
            dead = dead | zero
    return dead, int((~finite).sum()), n_zero


def mask_dead_samples(maps: BeamMaps, source: str | None = None) -> BeamMaps:
    """Drop the dead samples of every map (:func:`dead_samples`) with ONE warning.

    The warning (a :class:`DeadSampleWarning`) names each map concerned and its counts;
    ``meta['dead_samples']`` records ``{map name: count}``.  Maps without dead samples are
    returned unchanged (no warning).
    """
    src = source or maps.source
    new, notes, counts = [], [], {}
    for m in maps.maps:
        dead, n_bad, n_zero = dead_samples(m)
        if not dead.any():
            new.append(m)
            continue
        keep = ~dead
        new.append(dataclasses.replace(
            m, u=m.u[keep], v=m.v[keep], beam=m.beam[keep],
            sigma=None if m.sigma is None else m.sigma[keep],
        ))
        name = m.name or repr(m.d_z)
        parts = ([f"{n_zero} exact zeros"] if n_zero else []) + (
            [f"{n_bad} NaN/inf"] if n_bad else [])
        notes.append(f"map {name}: {int(dead.sum())} of {m.size} ({', '.join(parts)})")
        counts[name] = int(dead.sum())
    if not counts:
        return maps
    import warnings

    warnings.warn(
        f"{src}: masked dead samples (NaN/inf, or exact zeros where the baseline is not "
        f"zero): {'; '.join(notes)}",
        DeadSampleWarning,
        stacklevel=2,
    )
    meta = dict(maps.meta)
    meta["dead_samples"] = counts
    return dataclasses.replace(maps, maps=tuple(new), meta=meta)


class DeadSampleWarning(UserWarning):
    """Dead samples were masked (see :func:`mask_dead_samples`)."""
