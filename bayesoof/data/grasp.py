"""TICRA GRASP far-field grids (``.grd``, "TICRA-EM-FIELD-V0.1") as beam maps.

A ``.grd`` file holds one far field on a (u, v) grid of direction cosines; the beam map is
the co-polar power |E_co|² (the cross-polar component is read and dropped).  Layout:

* a text header up to a line ``++++`` (``FREQUENCY: <value> <GHz|MHz|kHz|Hz>`` gives the
  wavelength);
* ``KTYPE`` (1: grid);
* ``NSET ICOMP NCOMP IGRID``: one field set (NSET = 1), NCOMP = 2 or 3 components, any
  ICOMP (the first component is taken as co-polar), IGRID = 1 (u, v grid);
* ``IX IY``: grid centre offset in grid steps (the centre is (IX du, IY dv));
* ``XS YS XE YE``: grid limits (u, v of the first and the last point);
* ``NX NY KLIMIT``: points per axis; KLIMIT = 0 (full rows; row limits are refused);
* NX·NY rows, u varying fastest: ``Re(E1) Im(E1) Re(E2) Im(E2) [Re(E3) Im(E3)]``.

GRASP files carry no d_z (sub-reflector offset): it is given per file.  Neither do they
carry noise; ``sigma_fraction`` sets a nominal σ as a fraction of each map's peak.

Sign of d_z: GRASP files do not state it; give d_z in bayesoof's convention.  For the SRT
files of ``shared/data/grasp_srt`` it is ``ffmap_+out`` at **+11.53 mm** (measured, session 5;
bench/RESULTS.md "GRASP SRT", ``python bench/grasp_study.py --sign-evidence``):

* the beam maps (|E_co|²) cannot settle it: flipping the sign of d_z is the same as taking
  the complex conjugate of the aperture field and reflecting it through the centre, which
  leaves the power unchanged except through the part of the SRT residual path that is even
  in d_z (the two signs differ by twice it, <= 0.2 mm at 11.53 mm).  Order-5 fits (sardinia
  preset, log-polynomial taper) from the same start: residual rms 0.836 /
  0.108 / 0.587 % of the peaks with +11.53 mm, 0.841 / 0.106 / 0.590 % with -11.53 mm
  (sum of squares 1.055 against 1.067 %²; the fit flips x0 and the aberrations instead);
* the complex fields do, given GRASP's time convention: the beam-centre phases of the
  minus and plus maps relative to the in-focus one are -2.171 and +2.003 rad in the files;
  the model gives -2.013 and +2.007 rad with +11.53 mm and +2.007, -2.013 with -11.53 mm,
  in the e^{+jωt} convention of engineering codes (the complex conjugate of bayesoof's
  kernel exp(-2πi u·x/λ)).  That GRASP writes e^{+jωt} fields is assumed, not read from a
  TICRA document here; with e^{-iωt} the conclusion would flip;
* pyoof-srt, published with the files by the group that made them, reads them with
  d_z = -, 0, + for ``-out``, ``in``, ``+out``, and its residual polynomial is written for
  that convention.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bayesoof.data.containers import SPEED_OF_LIGHT, BeamMap, BeamMaps, DataError
from bayesoof.units import as_value

__all__ = ["read_grasp", "read_grd"]

_UNITS = {"ghz": 1e9, "mhz": 1e6, "khz": 1e3, "hz": 1.0}


def _ints(line: str, n: int, src: str, what: str) -> list[int]:
    parts = line.split()
    try:
        vals = [int(p) for p in parts[:n]]
    except ValueError:
        vals = []
    if len(vals) != n:
        raise DataError(f"{src}: line {what!r} should hold {n} integers, got {line.strip()!r}")
    return vals


def _floats(line: str, n: int, src: str, what: str) -> list[float]:
    parts = line.split()
    try:
        vals = [float(p) for p in parts[:n]]
    except ValueError:
        vals = []
    if len(vals) != n or not np.all(np.isfinite(vals)):
        raise DataError(f"{src}: line {what!r} should hold {n} numbers, got {line.strip()!r}")
    return vals


def _frequency(header: list[str], src: str) -> float:
    for line in header:
        if line.upper().startswith("FREQUENCY:"):
            m = re.match(r"\s*([-+0-9.eEdD]+)\s*([A-Za-z]*)", line.split(":", 1)[1])
            if m:
                try:
                    value = float(m.group(1).replace("D", "E").replace("d", "e"))
                except ValueError:
                    break
                unit = (m.group(2) or "Hz").lower()
                if unit in _UNITS and value > 0:
                    return value * _UNITS[unit]
            break
    raise DataError(
        f"{src}: header has no usable 'FREQUENCY: <value> GHz' line; expected the frequency "
        "of the field (or pass frequency=...)"
    )


def read_grd(path, frequency: float | None = None) -> dict:
    """Parse one ``.grd`` file.

    Parameters
    ----------
    path : str or Path
    frequency : float, optional
        Hz; overrides the header's FREQUENCY line.

    Returns
    -------
    dict
        ``u``, ``v`` (rad, direction cosines, flat, u fastest), ``e_co``, ``e_cx``
        (complex, flat), ``shape`` (NY, NX), ``frequency`` (Hz), ``header`` (lines).
    """
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{src}: not a text file; expected a TICRA GRASP .grd grid") from None
    try:
        end = next(i for i, s in enumerate(lines) if s.strip() == "++++")
    except StopIteration:
        raise DataError(
            f"{src}: no '++++' line closing the header; expected a TICRA GRASP .grd grid"
        ) from None
    header, body = lines[:end], [s for s in lines[end + 1 :] if s.strip()]
    if len(body) < 6:
        raise DataError(f"{src}: the grid description after '++++' is incomplete")
    (ktype,) = _ints(body[0], 1, src, "KTYPE")
    if ktype != 1:
        raise DataError(f"{src}: KTYPE = {ktype}; only gridded fields (KTYPE = 1) are read")
    nset, icomp, ncomp, igrid = _ints(body[1], 4, src, "NSET ICOMP NCOMP IGRID")
    if nset != 1:
        raise DataError(f"{src}: NSET = {nset}; expected one field set per file")
    if igrid != 1:
        raise DataError(
            f"{src}: IGRID = {igrid}; expected 1 (a u, v grid of direction cosines)"
        )
    if ncomp not in (2, 3):
        raise DataError(f"{src}: NCOMP = {ncomp}; expected 2 or 3 field components")
    ix, iy = _ints(body[2], 2, src, "IX IY")
    xs, ys, xe, ye = _floats(body[3], 4, src, "XS YS XE YE")
    nx, ny, klimit = _ints(body[4], 3, src, "NX NY KLIMIT")
    if klimit != 0:
        raise DataError(f"{src}: KLIMIT = {klimit}; grids with row limits are not supported")
    if nx < 2 or ny < 2:
        raise DataError(f"{src}: NX, NY = {nx}, {ny}; expected at least 2 x 2 points")
    rows = body[5:]
    if len(rows) != nx * ny:
        raise DataError(
            f"{src}: {len(rows)} data rows after the grid header; expected NX*NY = {nx * ny}"
        )
    try:
        data = np.array([[float(t) for t in r.split()] for r in rows])
    except ValueError as err:
        raise DataError(f"{src}: a data row is not numeric ({err})") from None
    if data.ndim != 2 or data.shape[1] < 2 * ncomp:
        raise DataError(
            f"{src}: data rows must hold {2 * ncomp} numbers (Re, Im of {ncomp} components)"
        )
    if not np.all(np.isfinite(data)):
        raise DataError(f"{src}: {int(np.sum(~np.isfinite(data)))} non-finite field values")
    du, dv = (xe - xs) / (nx - 1), (ye - ys) / (ny - 1)
    gu = xs + ix * du + du * np.arange(nx)
    gv = ys + iy * dv + dv * np.arange(ny)
    U, V = np.meshgrid(gu, gv)  # (ny, nx): u varies fastest along the rows of the file
    return {
        "u": U.ravel(),
        "v": V.ravel(),
        "e_co": data[:, 0] + 1j * data[:, 1],
        "e_cx": data[:, 2] + 1j * data[:, 3],
        "shape": (ny, nx),
        "frequency": float(frequency) if frequency is not None else _frequency(header, src),
        "icomp": icomp,
        "header": header,
    }


def read_grasp(
    paths: Sequence,
    d_z,
    sigma_fraction: float | None = None,
    frequency=None,
    names: Sequence[str] | None = None,
) -> BeamMaps:
    """Beam maps (co-polar power |E_co|²) from GRASP ``.grd`` files, one map per file.

    Parameters
    ----------
    paths : sequence of str or Path
        One ``.grd`` file per map (one of them in focus).
    d_z : sequence of float or Quantity
        Sub-reflector offset of each file, m (or a length Quantity), in bayesoof's
        convention (see the module docstring).
    sigma_fraction : float, optional
        Nominal noise σ of each map as a fraction of its peak (GRASP fields are
        noise-free; a fit needs a σ).  None leaves σ unknown (the fit then estimates it).
    frequency : float or Quantity, optional
        Hz (or a frequency Quantity); overrides the files' FREQUENCY line.
    names : sequence of str, optional
        Map names (default: the file stems).

    Returns
    -------
    BeamMaps
        ``meta`` holds FREQ (Hz), the source files and ``format = "grasp"``.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    dz = np.atleast_1d(as_value(d_z, "m", "d_z")).astype(float)
    if dz.size != len(paths):
        raise DataError(
            f"read_grasp: {len(paths)} files but {dz.size} d_z values; expected one d_z per file"
        )
    freq = None if frequency is None else float(as_value(frequency, "Hz", "frequency"))
    if sigma_fraction is not None and not sigma_fraction > 0:
        raise DataError(f"read_grasp: sigma_fraction must be > 0, got {sigma_fraction!r}")
    grids = [read_grd(p, freq) for p in paths]
    f0 = grids[0]["frequency"]
    for p, g in zip(paths, grids, strict=True):
        if abs(g["frequency"] - f0) > 1e-9 * f0:
            raise DataError(
                f"{p}: frequency {g['frequency'] / 1e9:.6g} GHz differs from {paths[0]} "
                f"({f0 / 1e9:.6g} GHz); expected one frequency for all maps"
            )
    maps = []
    for i, (p, g) in enumerate(zip(paths, grids, strict=True)):
        beam = np.abs(g["e_co"]) ** 2
        sigma = None
        if sigma_fraction is not None:
            sigma = np.full(beam.size, sigma_fraction * float(beam.max()))
        name = names[i] if names else p.stem
        maps.append(BeamMap(g["u"], g["v"], beam, dz[i], sigma, name))
    meta = {
        "FREQ": f0,
        "source": ", ".join(str(p) for p in paths),
        "format": "grasp",
        "files": [str(p) for p in paths],
    }
    if sigma_fraction is not None:
        meta["SIGMA_FRACTION"] = float(sigma_fraction)
    out = BeamMaps(tuple(maps), SPEED_OF_LIGHT / f0, meta)
    out.validate()
    return out
