"""Run directories and files: atomic writers, JSON cleaning, the summary.json schema.

* :mod:`bayesoof.io.atomic` -- ``write_text``, ``write_json``, ``write_csv``,
  ``write_fits``, ``write_netcdf``, ``write_netcdf_groups``, ``write_inference_data``:
  temporary file in the target directory, umask honoured, never overwriting unless asked.
* :mod:`bayesoof.io.jsonclean` -- :func:`clean` (NumPy to Python, NaN to null).
* :mod:`bayesoof.io.rundir` -- :func:`new_run_dir`, :func:`staged_run`.
* :mod:`bayesoof.io.summary` -- the typed, versioned ``summary.json``.
* :mod:`bayesoof.io.run` -- :func:`read_run`, THE reader of a run directory (summary,
  ``result.nc``, ``posterior.nc``) for ``info``, ``plot``, ``surface``, plots, notebooks.

This layer imports NumPy and the standard library only (no inference, no plotting); the
reader imports xarray when it opens a netCDF file.
"""

from bayesoof.io.atomic import (
    atomic_path,
    write_bytes,
    write_csv,
    write_fits,
    write_inference_data,
    write_json,
    write_netcdf,
    write_netcdf_groups,
    write_text,
)
from bayesoof.io.jsonclean import clean
from bayesoof.io.run import RunDirectory, read_run
from bayesoof.io.rundir import new_run_dir, run_stem, staged_run
from bayesoof.io.summary import (
    SCHEMA_VERSION,
    Summary,
    SummaryError,
    add_posterior,
    check_summary,
    read_summary,
    write_summary,
)

__all__ = [
    "SCHEMA_VERSION",
    "RunDirectory",
    "Summary",
    "SummaryError",
    "add_posterior",
    "atomic_path",
    "check_summary",
    "clean",
    "new_run_dir",
    "read_run",
    "read_summary",
    "run_stem",
    "staged_run",
    "write_bytes",
    "write_csv",
    "write_fits",
    "write_inference_data",
    "write_json",
    "write_netcdf",
    "write_netcdf_groups",
    "write_summary",
    "write_text",
]
