"""The quick fit's run directory (:func:`save_run`, behind ``FitResult.save``).

``<out>/<stem>-NNN`` with NNN the first free number; never overwritten.  Every file is
written to a temporary file in the same directory and renamed into place (io.atomic).

* ``summary.json``: schema_version, telescope, wavelength, d_z per map, order, every
  coefficient (name, n, l, value, sd, unit), illumination coefficients with units, χ²,
  rms phase (rad) and surface (µm), Ruze efficiency, convergence, wall time
  (:mod:`.summary`, schema :mod:`bayesoof.io.summary`).
* ``result.nc``: ArviZ InferenceData groups (:mod:`.inference_data`).
* pyoof-style per order: ``fitpar_n{N}.csv`` (parname, parfit, parsd, parinit, unit,
  free), ``cov_n{N}.csv`` and ``corr_n{N}.csv`` (as pyoof: a header line, then a first row
  with the indices of the free parameters in the full vector, then the matrix),
  ``phase_n{N}.csv`` (phase error in rad on the map grid, NaN outside the dish).
* ``phase.fits``: phase error (rad), its sd, surface error and its sd (µm) of the last
  order, with the grid in the header (CRVAL/CDELT in m).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bayesoof.inference.results.inference_data import inference_groups
from bayesoof.inference.results.order import OrderResult
from bayesoof.inference.results.summary import fit_summary
from bayesoof.inference.threads import blas_threads
from bayesoof.io import (
    new_run_dir,
    run_stem,
    write_csv,
    write_fits,
    write_netcdf_groups,
    write_summary,
    write_text,
)
from bayesoof.products.maps import phase_map

__all__ = ["save_run"]


def _order_files(result, run: Path, o: OrderResult, n_phase: int) -> None:
    """pyoof-style fitpar/cov/corr/phase CSV files of one order."""
    sp = o.space
    sd = o.full_sd()
    init = o.init if o.init is not None else sp.values
    rows = [["parname", "parfit", "parsd", "parinit", "unit", "free"]]
    units = sp.units  # (a list built per access)
    rows += [[name, repr(float(sp.values[i])), repr(float(sd[i])), repr(float(init[i])),
              units[i], int(sp.free[i])] for i, name in enumerate(sp.names)]
    write_csv(run / f"fitpar_n{o.order}.csv", rows)
    idx = sp.free_index.astype(float)
    for name, mat, title in (("cov", o.cov, "Cov"), ("corr", o.corr, "Corr")):
        buf = io.StringIO()
        np.savetxt(buf, np.vstack([idx, mat]),
                   header=f"{title} matrix (first row included elements: indices in "
                          f"fitpar_n{o.order}.csv)")
        write_text(run / f"{name}_n{o.order}.csv", buf.getvalue())
    pm = phase_map(sp.values[: len(sp.nl)], o.K_cov(), result.telescope.radius,
                   result.data.wavelength, n_phase)
    buf = io.StringIO()
    np.savetxt(buf, pm.phase)
    write_text(run / f"phase_n{o.order}.csv", buf.getvalue())


def _phase_fits(result, path: Path, n_phase: int) -> None:
    """``phase.fits``: phase and surface error maps of the last order with their sd."""
    from astropy.io import fits

    pm = result.phase_map(n_phase)
    step = float(pm.x[1] - pm.x[0])

    def hdr(unit: str, what: str) -> fits.Header:
        h = fits.Header()
        for ax, vals in ((1, pm.x), (2, pm.y)):
            h[f"CTYPE{ax}"] = ("X" if ax == 1 else "Y", "aperture coordinate")
            h[f"CUNIT{ax}"] = "m"
            h[f"CRPIX{ax}"] = 1.0
            h[f"CRVAL{ax}"] = float(vals[0])
            h[f"CDELT{ax}"] = step
        h["BUNIT"] = unit
        h["CONTENT"] = what
        h["ORDER"] = result.order
        h["WAVEL"] = (result.data.wavelength, "m")
        h["TELESC"] = result.telescope.name
        h["COMMENT"] = "piston and tilt removed; NaN outside the dish"
        return h

    hdul = fits.HDUList([
        fits.PrimaryHDU(pm.phase, hdr("rad", "phase error")),
        fits.ImageHDU(pm.phase_sd, hdr("rad", "phase error sd (Laplace)"), name="PHASE_SD"),
        fits.ImageHDU(pm.surface, hdr("um", "surface error (on-axis)"), name="SURFACE"),
        fits.ImageHDU(pm.surface_sd, hdr("um", "surface error sd"), name="SURFACE_SD"),
    ])
    write_fits(path, hdul)


def save_run(result, out="out", stem: str | None = None, n_phase: int = 101) -> Path:
    """Write a new run directory ``out/<stem>-NNN`` for a FitResult and return its path.

    ``stem`` defaults to the data file's stem ('bayesoof' for in-memory data).
    Contents: see the module docstring.  Nothing existing is overwritten.
    """
    run = new_run_dir(out, stem or run_stem(result.data.source))
    with blas_threads(result.config["fit"]["blas_threads"]):  # small products, as the fit's
        write_summary(run, fit_summary(result))
        write_netcdf_groups(run / "result.nc", inference_groups(result, n_phase))
        for o in result.orders:
            _order_files(result, run, o, n_phase)
        _phase_fits(result, run / "phase.fits", n_phase)
    return run
