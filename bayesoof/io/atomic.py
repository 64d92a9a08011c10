"""Atomic file writers: one family for text, JSON, CSV, FITS and netCDF.

Every writer builds the file under a temporary name *in the target's directory* (so the
final rename stays on one file system), flushes it to disk and then moves it into place:

* ``overwrite=False`` (the default): the file appears only if ``path`` did not exist
  (``os.link`` of the finished file, atomic "create if absent"); an existing file raises
  :class:`FileExistsError` and is left untouched.
* ``overwrite=True``: ``os.replace`` swaps the complete new file in.

The temporary file is created with ``O_CREAT | O_EXCL`` and mode ``0o666``, so the
process umask applies exactly as for any new file (``tempfile.mkstemp`` would leave it
``0600``).  On any error the temporary file is removed: nothing half-written is left.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from bayesoof.io.jsonclean import clean

__all__ = [
    "atomic_path",
    "write_bytes",
    "write_csv",
    "write_fits",
    "write_inference_data",
    "write_json",
    "write_netcdf",
    "write_text",
]


def _exists_error(path: Path) -> FileExistsError:
    return FileExistsError(f"{path}: file exists; pass overwrite=True to replace it")


def atomic_path(path, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Call ``write(tmp)`` to build the file at a temporary path, then move it to ``path``.

    Parameters
    ----------
    path : str or Path
        Final file name; its directory must exist.
    write : callable
        Writes the complete file at the path it is given (which already exists, empty).
    overwrite : bool
        Replace an existing ``path`` (else :class:`FileExistsError`, checked before and
        at the final step).

    Returns
    -------
    Path
        ``path``.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise _exists_error(target)
    directory = target.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"{target}: directory {os.fspath(directory)!r} does not exist")
    tmp = directory / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # O_EXCL: never clobber; mode 0o666 is reduced by the umask like any new file
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        os.close(os.open(tmp, flags, 0o666))
        write(tmp)
        with open(tmp, "rb+") as fh:  # the bytes reach the disk before the name does
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            try:  # atomic "create only if absent"
                os.link(tmp, target)
            except FileExistsError:
                raise _exists_error(target) from None
            except OSError:  # no hard links on this file system
                if target.exists():
                    raise _exists_error(target) from None
                os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target


def write_bytes(path, payload: bytes, *, overwrite: bool = False) -> Path:
    """Write ``payload`` atomically (see the module docstring)."""
    return atomic_path(path, lambda tmp: Path(tmp).write_bytes(payload), overwrite=overwrite)


def write_text(path, text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def write_json(path, obj, *, overwrite: bool = False) -> Path:
    """Write ``obj`` as indented JSON after :func:`~bayesoof.io.jsonclean.clean` (NaN -> null)."""
    text = json.dumps(clean(obj), indent=2, allow_nan=False) + "\n"
    return write_text(path, text, overwrite=overwrite)


def write_csv(path, rows: Iterable[Iterable], *, overwrite: bool = False) -> Path:
    """Write ``rows`` (the first one the header) as CSV with newline line ends."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return write_text(path, buf.getvalue(), overwrite=overwrite)


def write_fits(path, hdul, *, overwrite: bool = False) -> Path:
    """Write an ``astropy.io.fits.HDUList`` atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            hdul.writeto(fh)

    return atomic_path(path, write, overwrite=overwrite)


def write_netcdf_groups(path, groups: dict, *, overwrite: bool = False) -> Path:
    """Write datasets as the named groups of one netCDF-4 file (h5netcdf), atomically.

    The layout of ArviZ's ``InferenceData.to_netcdf`` (one group per dataset, numeric
    variables zlib-compressed), so ``arviz.from_netcdf`` reads it; written without
    importing ArviZ (which imports matplotlib: seconds of start-up for the quick fit).
    ``groups`` maps names to :class:`bayesoof.io.netcdf.Group` (written by h5netcdf
    alone: no xarray, pandas or dask import) or to xarray Datasets.
    """
    from bayesoof.io.netcdf import Group, write_groups

    def write(tmp: Path) -> None:
        if all(isinstance(g, Group) for g in groups.values()):
            write_groups(tmp, groups)
            return
        mode = "w"
        for name, ds in groups.items():
            encoding = {k: {"zlib": True} for k, v in ds.variables.items()
                        if v.dtype.kind in "biufcS"}
            ds.to_netcdf(str(tmp), mode=mode, group=name, engine="h5netcdf", encoding=encoding)
            mode = "a"

    return atomic_path(path, write, overwrite=overwrite)


def write_netcdf(path, dataset, *, overwrite: bool = False) -> Path:
    """Write an xarray Dataset or ArviZ InferenceData as netCDF-4 (h5netcdf) atomically."""
    return atomic_path(
        path, lambda tmp: dataset.to_netcdf(str(tmp), engine="h5netcdf"), overwrite=overwrite
    )


#: groups of an InferenceData written without compression: the posterior predictive
#: draws are noise, zlib gains 11 % on them for 1.1-1.5 s CPU per 100 x 48 387 floats
#: (bench/RESULTS.md, session 5)
UNCOMPRESSED_GROUPS = ("posterior_predictive", "prior_predictive")


def write_inference_data(path, idata, *, uncompressed=UNCOMPRESSED_GROUPS,
                         overwrite: bool = False) -> Path:
    """Write ArviZ InferenceData as netCDF-4 (h5netcdf) atomically, as ``idata.to_netcdf``.

    The same file as ArviZ's writer (root attributes, one group per dataset, zlib on
    the numeric variables) except that the groups named in ``uncompressed`` are stored
    without compression (draws of noise do not compress; ``arviz.from_netcdf`` reads
    both alike).  Written by h5netcdf alone (:mod:`bayesoof.io.netcdf`: not through
    xarray's writer, which imports dask: 0.3 against 1.6 s CPU for a lattice posterior)
    unless the InferenceData has root attributes.
    """
    from bayesoof.io.netcdf import Group, write_groups

    def write(tmp: Path) -> None:
        if not getattr(idata, "_attrs", None):
            write_groups(tmp, {name: Group.from_xarray(getattr(idata, name),
                                                       compress=name not in uncompressed)
                               for name in idata.groups()})
            return
        mode = "w"
        attrs = getattr(idata, "_attrs", None)
        if attrs:
            import xarray as xr

            xr.Dataset(attrs=attrs).to_netcdf(str(tmp), mode=mode, engine="h5netcdf")
            mode = "a"
        for name in idata.groups():
            ds = getattr(idata, name)
            encoding = None
            if name not in uncompressed:
                encoding = {k: {"zlib": True} for k, v in ds.variables.items()
                            if v.dtype.kind in "biufcS"}
            ds.to_netcdf(str(tmp), mode=mode, group=name, engine="h5netcdf",
                         encoding=encoding)
            mode = "a"

    return atomic_path(path, write, overwrite=overwrite)
