"""FITS readers and writers for OOF beam maps.

Two on-disk formats (see ``shared/PHYSICS.md``, section "Data"):

* **pyoof**: primary header FREQ (Hz), WAVEL (m), MEANEL (deg), OBJECT, DATE_OBS; three
  binary tables 'MINUS OOF', 'ZERO OOF', 'PLUS OOF', each with header DZ (m) and columns
  U, V (rad) and BEAM.
* **nikolic** (Nikolic's ``oof`` / Effelsberg): one binary table per map with header DZ (m)
  and columns DX, DY (rad), FNU and optionally UFNU (per-sample noise, same units as FNU);
  any number of maps.  Primary header: FREQ (Hz) as read by Nikolic's ``oofreduce`` and
  pyoof's ``extract_data_effelsberg``, plus MEANEL, OBJECT, DATE_OBS, TELESC, ...

Reading accepts a few aliases for the primary-header keywords (:data:`HEADER_ALIASES`);
both writers write one canonical set: FREQ, WAVEL, MEANEL, OBJECT, DATE_OBS, plus any other
FITS-compatible scalar entries of ``BeamMaps.meta`` (e.g. TELESC read from a file).
Columns are written as float64 ('D'); readers return float64 whatever the column type.

Every problem with the input raises :class:`bayesoof.data.containers.DataError` whose message starts
with the file path and names the table / keyword / column and what was expected.  Writes
are atomic: a temporary file in the target directory is renamed over the target only once
it is complete.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from bayesoof.data.containers import (
    SPEED_OF_LIGHT,
    BeamMap,
    BeamMaps,
    DataError,
    DeadSampleWarning,
    mask_dead_samples,
)
from bayesoof.io.atomic import write_fits
from bayesoof.units import as_value

__all__ = [
    "DataWarning",
    "FORMATS",
    "HEADER_ALIASES",
    "PYOOF_TABLES",
    "detect_format",
    "read_beam_maps",
    "read_nikolic",
    "read_pyoof",
    "write_beam_maps",
    "write_nikolic",
    "write_pyoof",
]

FORMATS = ("pyoof", "nikolic")

#: pyoof table names, in the order the maps are returned (d_z < 0, = 0, > 0).
PYOOF_TABLES = ("MINUS OOF", "ZERO OOF", "PLUS OOF")

#: Primary-header keywords accepted when reading (first found wins); the first name of each
#: entry is the canonical one, written by both writers and used as the key in ``meta``.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "FREQ": ("FREQ", "FREQUENC", "OBSFREQ"),  # Hz
    "WAVEL": ("WAVEL", "WAVE", "WAVELEN", "WAVELENG"),  # m
    "MEANEL": ("MEANEL", "ELEVATIO", "ELEV"),  # deg
    "OBJECT": ("OBJECT",),
    "DATE_OBS": ("DATE_OBS", "DATE-OBS"),
}

# header cards that describe the FITS structure, never copied into meta
_STRUCTURAL = re.compile(
    r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|XTENSION|EXTNAME|TFIELDS|"
    r"T(TYPE|FORM|UNIT|DIM|NULL|SCAL|ZERO|DISP)\d+|COMMENT|HISTORY|CHECKSUM|DATASUM|)$"
)
_FITS_KEY = re.compile(r"^[A-Z0-9_-]{1,8}$")
# relative disagreement of FREQ and WAVEL tolerated without a warning (Nikolic's tools
# use c = 3e8 m/s, i.e. 7e-4 relative)
_FREQ_WAVEL_RTOL = 1e-3
# beyond this the file contradicts itself (which of the two is right cannot be told): error
_FREQ_WAVEL_ERROR = 1e-2


class DataWarning(UserWarning):
    """Beam-map input was usable but altered or suspicious (dropped samples, odd headers)."""


# ================================================================== reading helpers
def _source(path) -> str:
    return os.fspath(path)


def _open(path) -> fits.HDUList:
    """Open ``path`` fully into memory; DataError when it is not a FITS file."""
    src = _source(path)
    p = Path(src)
    if not p.exists():
        raise FileNotFoundError(f"{src}: no such file")
    if p.is_dir():
        raise DataError(f"{src}: is a directory; expected a FITS file")
    with open(src, "rb") as fh:  # our own handle: closed even when astropy fails midway
        try:
            with warnings.catch_warnings():
                # astropy's header-verification notices are moot: the file reads or fails
                warnings.simplefilter("ignore", AstropyWarning)
                # astropy only warns about a truncated file; a half-copied file is an error
                warnings.filterwarnings("error", message=r".*may have been truncated.*")
                hdul = fits.open(fh, memmap=False, lazy_load_hdus=False)
                for hdu in hdul:  # read every data block now, while errors can be attributed
                    _ = hdu.data
        except (OSError, ValueError, Warning) as err:
            raise DataError(f"{src}: not a valid FITS file ({err})") from err
    return hdul


def _table_hdus(hdul: fits.HDUList) -> list[tuple[int, fits.BinTableHDU | fits.TableHDU]]:
    return [(i, h) for i, h in enumerate(hdul) if isinstance(h, fits.BinTableHDU | fits.TableHDU)]


def _column_lookup(hdu) -> dict[str, str]:
    """Upper-cased column name -> the name as stored (FITS names are case-insensitive)."""
    return {name.upper(): name for name in hdu.columns.names}


def _table_label(i: int, hdu) -> str:
    return f"table {hdu.name!r}" if hdu.name else f"table HDU {i}"


def _number(value, where: str, key: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DataError(f"{where}: keyword {key} must be a number ({unit}), got {value!r}")
    return float(value)


def _find_card(hdr: fits.Header, canonical: str) -> tuple[str, object] | None:
    for key in HEADER_ALIASES[canonical]:
        if key in hdr and hdr[key] is not None:
            return key, hdr[key]
    return None


def _primary_meta(hdr: fits.Header, src: str, fmt: str) -> tuple[float, dict]:
    """Wavelength (m) and meta dict from the primary header."""
    where = f"{src}: primary header"
    meta: dict = {}
    freq_card = _find_card(hdr, "FREQ")
    wavel_card = _find_card(hdr, "WAVEL")
    freq = wavel = None
    if freq_card is not None:
        freq = _number(freq_card[1], where, freq_card[0], "Hz")
        if not (math.isfinite(freq) and freq > 0):
            raise DataError(
                f"{where}: keyword {freq_card[0]} must be a positive frequency in Hz, got {freq!r}"
            )
    if wavel_card is not None:
        wavel = _number(wavel_card[1], where, wavel_card[0], "m")
        if not (math.isfinite(wavel) and wavel > 0):
            raise DataError(
                f"{where}: keyword {wavel_card[0]} must be a positive wavelength "
                f"in m, got {wavel!r}"
            )
    if freq is None and wavel is None:
        raise DataError(
            f"{where}: neither a wavelength keyword ({'/'.join(HEADER_ALIASES['WAVEL'])}, m) "
            f"nor a frequency keyword ({'/'.join(HEADER_ALIASES['FREQ'])}, Hz) found; "
            "expected at least one of WAVEL or FREQ"
        )
    if wavel is None:
        wavel = SPEED_OF_LIGHT / freq
    elif freq is None:
        freq = SPEED_OF_LIGHT / wavel
    elif abs(freq * wavel / SPEED_OF_LIGHT - 1.0) > _FREQ_WAVEL_ERROR:
        raise DataError(
            f"{where}: {freq_card[0]} = {freq!r} Hz and {wavel_card[0]} = {wavel!r} m disagree "
            f"(c / FREQ = {SPEED_OF_LIGHT / freq!r} m); expected FREQ * WAVEL = c within "
            f"{_FREQ_WAVEL_ERROR:.0%} (remove the wrong keyword)"
        )
    elif abs(freq * wavel / SPEED_OF_LIGHT - 1.0) > _FREQ_WAVEL_RTOL:
        warnings.warn(
            f"{where}: {freq_card[0]} = {freq!r} Hz and {wavel_card[0]} = {wavel!r} m disagree "
            f"(c / FREQ = {SPEED_OF_LIGHT / freq!r} m); using the wavelength",
            DataWarning,
            stacklevel=4,
        )
    meta["FREQ"] = float(freq)
    meta["WAVEL"] = float(wavel)

    el = _find_card(hdr, "MEANEL")
    meta["MEANEL"] = None if el is None else _number(el[1], where, el[0], "deg")
    if meta["MEANEL"] is not None and not 0.0 <= meta["MEANEL"] <= 90.0:
        raise DataError(
            f"{where}: keyword {el[0]} = {meta['MEANEL']!r} is not an elevation; expected "
            "0 to 90 deg"
        )
    for key in ("OBJECT", "DATE_OBS"):
        card = _find_card(hdr, key)
        meta[key] = None if card is None else str(card[1]).strip()

    consumed = {k for names in HEADER_ALIASES.values() for k in names}
    for key in hdr:
        if key in consumed or key in meta or _STRUCTURAL.match(key):
            continue
        val = hdr[key]
        meta[key] = val.strip() if isinstance(val, str) else val
    meta["source"] = src
    meta["format"] = fmt
    return float(wavel), meta


def _read_table(
    i: int,
    hdu,
    src: str,
    columns: tuple[str, str, str],
    sigma_column: str | None,
    drop_nonfinite: bool,
    dropped: dict,
) -> BeamMap:
    """One map from a table: ``columns`` are the names of (u, v, beam) in that table."""
    label = _table_label(i, hdu)
    where = f"{src}: {label}"
    if "DZ" not in hdu.header or hdu.header["DZ"] is None:
        raise DataError(
            f"{where}: header keyword DZ (sub-reflector offset, m) is missing; "
            "expected one DZ card per map table"
        )
    d_z = _number(hdu.header["DZ"], where, "DZ", "m")
    if not math.isfinite(d_z):
        raise DataError(f"{where}: keyword DZ must be a finite offset in m, got {d_z!r}")

    lookup = _column_lookup(hdu)
    missing = [c for c in columns if c not in lookup]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {', '.join(missing)}; expected columns "
            f"{', '.join(columns)} (found {', '.join(hdu.columns.names) or 'none'})"
        )
    names = list(columns)
    if sigma_column is not None and sigma_column in lookup:
        names.append(sigma_column)
    data = hdu.data
    cols = []
    for name in names:
        raw = data[lookup[name]] if data is not None else np.zeros(0)
        kind = np.asarray(raw).dtype.kind
        if kind not in "fiu":
            raise DataError(
                f"{where}: column {name} must be numeric (float or integer); "
                f"its FITS format is {hdu.columns[lookup[name]].format!r}"
            )
        arr = np.asarray(raw, dtype=np.float64)
        if arr.ndim != 1:
            raise DataError(
                f"{where}: column {name} must hold one value per row, got shape {arr.shape}"
            )
        cols.append(np.ascontiguousarray(arr))

    # a non-finite beam value is a dead sample (masked with the dead zeros in _finish);
    # non-finite coordinates or noise make the sample unusable: an error unless dropped
    finite = [np.isfinite(c) | (k == 2) for k, c in enumerate(cols)]
    ok = np.logical_and.reduce(finite)
    if not ok.all():
        bad_cols = [n for n, f in zip(names, finite, strict=True) if not f.all()]
        n_bad = int((~ok).sum())
        if not drop_nonfinite:
            raise DataError(
                f"{where}: {n_bad} of {ok.size} samples have non-finite (NaN/inf) values in "
                f"column(s) {', '.join(bad_cols)}; expected finite values "
                "(read with drop_nonfinite=True to drop them)"
            )
        warnings.warn(
            f"{where}: dropped {n_bad} of {ok.size} samples with non-finite (NaN/inf) values "
            f"in column(s) {', '.join(bad_cols)}",
            DataWarning,
            stacklevel=4,
        )
        dropped[hdu.name or f"HDU {i}"] = n_bad
        cols = [c[ok] for c in cols]

    sigma = cols[3] if len(cols) == 4 else None
    if sigma is not None and sigma.size and np.all(sigma == 0):
        # Nikolic's simulation tools write UFNU = 0 for "no noise estimate"
        warnings.warn(
            f"{where}: column {sigma_column} is zero everywhere; treated as not given",
            DataWarning,
            stacklevel=4,
        )
        sigma = None
    if sigma is not None and np.any(sigma <= 0):
        raise DataError(
            f"{where}: column {sigma_column} (per-sample noise) must be > 0 everywhere; "
            f"{int(np.sum(sigma <= 0))} samples are <= 0"
        )
    return BeamMap(
        u=cols[0], v=cols[1], beam=cols[2], d_z=d_z, sigma=sigma, name=hdu.name or f"HDU{i}"
    )


@contextlib.contextmanager
def _one_warning(src: str):
    """Gather the DataWarnings of reading ``src`` into one (one line for the user).

    Emitted only when reading succeeds: after an error the warnings are moot.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    notes, kinds = [], set()
    for w in caught:
        if issubclass(w.category, DataWarning | DeadSampleWarning):
            notes.append(str(w.message))
            kinds.add(w.category)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if notes:
        prefix = f"{src}: "
        parts = [n[len(prefix):] if n.startswith(prefix) else n for n in notes]
        kind = kinds.pop() if len(kinds) == 1 else DataWarning
        warnings.warn(prefix + "; ".join(parts), kind, stacklevel=4)


def _finish(maps: list[BeamMap], wavelength: float, meta: dict, dropped: dict) -> BeamMaps:
    if dropped:
        meta["dropped_nonfinite"] = dict(dropped)
    out = mask_dead_samples(BeamMaps(tuple(maps), wavelength, meta))
    out.validate(require_signal=True)
    return out


# ================================================================== readers
def _read_pyoof_hdul(hdul: fits.HDUList, src: str, drop_nonfinite: bool) -> BeamMaps:
    wavelength, meta = _primary_meta(hdul[0].header, src, "pyoof")
    tables = _table_hdus(hdul)
    found: dict[str, tuple[int, object]] = {}
    for i, hdu in tables:
        name = hdu.name.strip().upper()
        if name in PYOOF_TABLES:
            if name in found:
                raise DataError(
                    f"{src}: two tables named {name!r} (HDUs {found[name][0]} and {i}); "
                    "expected one table per name"
                )
            found[name] = (i, hdu)
    missing = [n for n in PYOOF_TABLES if n not in found]
    if missing:
        present = [h.name for _, h in tables]
        raise DataError(
            f"{src}: missing table(s) {', '.join(repr(n) for n in missing)}; the pyoof format "
            f"expects binary tables {', '.join(repr(n) for n in PYOOF_TABLES)} "
            f"(found {', '.join(repr(n) for n in present) or 'no tables'})"
        )
    dropped: dict = {}
    maps = []
    for name, sign in zip(PYOOF_TABLES, (-1, 0, 1), strict=True):
        i, hdu = found[name]
        m = _read_table(i, hdu, src, ("U", "V", "BEAM"), None, drop_nonfinite, dropped)
        if np.sign(m.d_z) != sign:
            warnings.warn(
                f"{src}: table {name!r} has DZ = {m.d_z!r} m; expected DZ "
                f"{'< 0' if sign < 0 else '= 0' if sign == 0 else '> 0'} for this table name",
                DataWarning,
                stacklevel=3,
            )
        maps.append(m)
    return _finish(maps, wavelength, meta, dropped)


def _read_nikolic_hdul(hdul: fits.HDUList, src: str, drop_nonfinite: bool) -> BeamMaps:
    wavelength, meta = _primary_meta(hdul[0].header, src, "nikolic")
    tables = _table_hdus(hdul)
    if not tables:
        raise DataError(
            f"{src}: no binary tables; the Nikolic format expects one table per beam map "
            "with header DZ and columns DX, DY, FNU (and optionally UFNU)"
        )
    dropped: dict = {}
    maps = [
        _read_table(i, hdu, src, ("DX", "DY", "FNU"), "UFNU", drop_nonfinite, dropped)
        for i, hdu in tables
    ]
    return _finish(maps, wavelength, meta, dropped)


def _detect(hdul: fits.HDUList, src: str) -> str:
    tables = _table_hdus(hdul)
    cols = [set(_column_lookup(h)) for _, h in tables]
    nikolic = any({"DX", "DY", "FNU"} <= c for c in cols)
    # a Nikolic file may reuse the pyoof table names (e.g. written from pyoof data), so
    # DX/DY/FNU columns without any U/V/BEAM table win over the names
    if nikolic and not any({"U", "V", "BEAM"} <= c for c in cols):
        return "nikolic"
    if any(h.name.strip().upper() in PYOOF_TABLES for _, h in tables):
        return "pyoof"
    if nikolic:
        return "nikolic"
    raise DataError(
        f"{src}: cannot detect the beam-map format: no table named "
        f"{', '.join(repr(n) for n in PYOOF_TABLES)} (pyoof) and no table with columns "
        f"DX, DY, FNU (Nikolic); found tables {[h.name for _, h in tables] or 'none'}"
    )


def read_pyoof(path, drop_nonfinite: bool = False) -> BeamMaps:
    """Read a pyoof-format FITS file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.  Primary header: FREQ (Hz) and/or WAVEL (m) (one is derived from the other
        when absent), MEANEL (deg), OBJECT, DATE_OBS; tables 'MINUS OOF', 'ZERO OOF',
        'PLUS OOF' with header DZ (m) and columns U, V (rad), BEAM.
    drop_nonfinite : bool
        False (default): any NaN/inf sample raises :class:`DataError`.  True: rows with a
        NaN/inf in any column are dropped and a :class:`DataWarning` says how many and from
        which table; the counts are kept in ``meta['dropped_nonfinite']``.

    Returns
    -------
    BeamMaps
        Maps in the order MINUS, ZERO, PLUS; float64 arrays; ``meta`` holds FREQ (Hz),
        WAVEL (m), MEANEL (deg, None if absent), OBJECT, DATE_OBS, other primary cards,
        'source' (the path) and 'format' ('pyoof').

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        Not a FITS file, or anything missing or invalid (message names file and field).
    """
    return _read_file(path, _read_pyoof_hdul, drop_nonfinite)


def _read_file(path, read_hdul, drop_nonfinite: bool) -> BeamMaps:
    """Open ``path`` and read it with ``read_hdul(hdul, source, drop_nonfinite)``."""
    src = _source(path)
    with _one_warning(src), _open(path) as hdul:
        return read_hdul(hdul, src, drop_nonfinite)


def read_nikolic(path, drop_nonfinite: bool = False) -> BeamMaps:
    """Read a Nikolic / Effelsberg-format FITS file (any number of maps).

    Parameters
    ----------
    path : str or os.PathLike
        The file.  Primary header: FREQ (Hz) and/or WAVEL (m) (aliases in
        :data:`HEADER_ALIASES`); every table extension is one map, with header DZ (m) and
        columns DX, DY (rad), FNU and optionally UFNU (noise, FNU units -> ``sigma``).
        Column names are matched case-insensitively ('FNu', 'fnu').  A UFNU column that
        is zero everywhere (Nikolic's simulations) is treated as absent, with a warning.
    drop_nonfinite : bool
        As in :func:`read_pyoof` (UFNU counts as a column).

    Returns
    -------
    BeamMaps
        Maps in file order, named by EXTNAME; ``meta`` as in :func:`read_pyoof` with
        'format' = 'nikolic'.

    Raises
    ------
    FileNotFoundError, DataError
        As in :func:`read_pyoof`.
    """
    return _read_file(path, _read_nikolic_hdul, drop_nonfinite)


def detect_format(path) -> str:
    """Return the format of ``path``: 'pyoof' or 'nikolic'.

    'nikolic' when some table has columns DX, DY, FNU and none has U, V, BEAM; otherwise
    'pyoof' when a table is named as in :data:`PYOOF_TABLES`; otherwise DataError.
    """
    src = _source(path)
    with _open(path) as hdul:
        return _detect(hdul, src)


def read_beam_maps(path, format: str = "auto", drop_nonfinite: bool = False) -> BeamMaps:
    """Read beam maps from ``path`` in ``format`` 'pyoof', 'nikolic' or 'auto' (detect).

    See :func:`read_pyoof` and :func:`read_nikolic` for the formats, ``drop_nonfinite``
    and the errors raised.
    """
    if format not in ("auto", *FORMATS):
        raise ValueError(f"format must be 'auto', 'pyoof' or 'nikolic', got {format!r}")
    src = _source(path)
    with _one_warning(src), _open(path) as hdul:
        fmt = _detect(hdul, src) if format == "auto" else format
        reader = _read_pyoof_hdul if fmt == "pyoof" else _read_nikolic_hdul
        return reader(hdul, src, drop_nonfinite)


# ================================================================== writing helpers
def _check_writable(maps: BeamMaps, dst: str) -> None:
    if not isinstance(maps, BeamMaps):
        raise TypeError(f"{dst}: expected a BeamMaps to write, got {type(maps).__name__}")
    try:
        maps.validate()
    except DataError as err:
        raise DataError(f"{dst}: refusing to write invalid beam maps: {err}") from err


def _primary_hdu(maps: BeamMaps) -> fits.PrimaryHDU:
    """Canonical primary header: FREQ, WAVEL, MEANEL, OBJECT, DATE_OBS, then meta extras.

    Unknown MEANEL / OBJECT / DATE_OBS are written as keywords without value (FITS
    "undefined"), so pyoof finds the keys but no value is invented.
    """
    meta: Mapping = maps.meta or {}
    hdr = fits.Header()
    freq = maps.frequency
    mfreq = meta.get("FREQ")
    with contextlib.suppress(Exception):
        # keep the file's own FREQ when it is the same frequency (avoids 32e9 -> 32.000000001e9)
        mf = float(as_value(mfreq, "Hz", "FREQ"))
        if abs(mf / freq - 1.0) < 1e-9:
            freq = mf
    hdr["FREQ"] = (freq, "[Hz] observing frequency")
    hdr["WAVEL"] = (maps.wavelength, "[m] observing wavelength")
    meanel = meta.get("MEANEL")
    if meanel is not None:
        meanel = float(as_value(meanel, "deg", "MEANEL"))
    hdr["MEANEL"] = (meanel, "[deg] mean elevation")
    for key, comment in (("OBJECT", "observed source"), ("DATE_OBS", "observation date")):
        val = meta.get(key)
        hdr[key] = (None if val is None else str(val), comment)
    skip = {k for names in HEADER_ALIASES.values() for k in names}
    for key, val in meta.items():
        if not isinstance(key, str) or key in skip or not _FITS_KEY.match(key):
            continue
        if _STRUCTURAL.match(key):
            continue
        if isinstance(val, np.generic):
            val = val.item()
        if isinstance(val, str):
            if not val.isascii() or not val.isprintable():
                continue
        elif not isinstance(val, bool | int | float) and val is not None:
            continue
        hdr[key] = val
    return fits.PrimaryHDU(header=hdr)


def _table_hdu(m: BeamMap, name: str, columns: tuple[str, ...], sigma: bool) -> fits.BinTableHDU:
    arrays = [m.u, m.v, m.beam] + ([m.sigma] if sigma else [])
    units = ["rad", "rad", None, None]
    cols = [
        fits.Column(name=c, format="D", unit=u, array=np.asarray(a, dtype=np.float64))
        for c, u, a in zip(columns, units, arrays, strict=False)
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name=name)
    hdu.header["DZ"] = (m.d_z, "[m] sub-reflector offset")
    return hdu


def _atomic_write(hdul: fits.HDUList, path, overwrite: bool) -> None:
    """Write ``hdul`` to ``path`` with :func:`bayesoof.io.write_fits` (atomic, umask kept)."""
    write_fits(_source(path), hdul, overwrite=overwrite)


# ================================================================== writers
def write_pyoof(maps: BeamMaps, path, overwrite: bool = False) -> None:
    """Write ``maps`` in the pyoof format (exactly three maps: d_z < 0, = 0, > 0).

    Tables 'MINUS OOF', 'ZERO OOF', 'PLUS OOF' (sorted by d_z whatever the input order) with
    DZ (m) and float64 columns U, V (rad), BEAM.  The format has no noise column: a
    ``sigma`` is not written (with a :class:`DataWarning`).  The write is atomic.

    Raises
    ------
    DataError
        Not three maps with d_z < 0, = 0, > 0, or the maps fail ``validate()``.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    dst = _source(path)
    _check_writable(maps, dst)
    dz = maps.d_z
    if maps.n_maps != 3 or not (np.sum(dz < 0) == 1 and np.sum(dz == 0) == 1):
        raise DataError(
            f"{dst}: the pyoof format holds exactly three maps with d_z < 0, = 0 and > 0; "
            f"got {maps.n_maps} map(s) with d_z = {dz.tolist()} m "
            "(use write_nikolic for other sets)"
        )
    ordered = [maps.maps[k] for k in np.argsort(dz)]
    with_sigma = [m.name for m in ordered if m.sigma is not None]
    if with_sigma:
        warnings.warn(
            f"{dst}: the pyoof format has no noise column; sigma of map(s) "
            f"{', '.join(with_sigma)} not written (use write_nikolic to keep it)",
            DataWarning,
            stacklevel=2,
        )
    hdul = fits.HDUList(
        [_primary_hdu(maps)]
        + [
            _table_hdu(m, name, ("U", "V", "BEAM"), sigma=False)
            for m, name in zip(ordered, PYOOF_TABLES, strict=True)
        ]
    )
    _atomic_write(hdul, path, overwrite)


def write_nikolic(maps: BeamMaps, path, overwrite: bool = False) -> None:
    """Write ``maps`` in the Nikolic / Effelsberg format (any number of maps).

    One table per map in the order given, EXTNAME = map name (made unique), header DZ (m),
    float64 columns DX, DY (rad), FNU and, for maps with ``sigma``, UFNU.  The write is
    atomic.

    Raises
    ------
    DataError
        The maps fail ``validate()``.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    dst = _source(path)
    _check_writable(maps, dst)
    hdus: list = [_primary_hdu(maps)]
    used: set[str] = set()
    for k, m in enumerate(maps.maps):
        name = (m.name or f"OOF{k + 1}").strip() or f"OOF{k + 1}"
        if name.upper() in used:
            name = f"{name} {k + 1}"
        used.add(name.upper())
        hdus.append(_table_hdu(m, name, ("DX", "DY", "FNU", "UFNU"), sigma=m.sigma is not None))
    _atomic_write(fits.HDUList(hdus), path, overwrite)


def write_beam_maps(maps: BeamMaps, path, format: str = "pyoof", overwrite: bool = False) -> None:
    """Write ``maps`` to ``path`` in ``format`` 'pyoof' or 'nikolic' (atomic; see the writers)."""
    if format == "pyoof":
        write_pyoof(maps, path, overwrite=overwrite)
    elif format == "nikolic":
        write_nikolic(maps, path, overwrite=overwrite)
    else:
        raise ValueError(f"format must be 'pyoof' or 'nikolic', got {format!r}")
