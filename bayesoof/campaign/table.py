"""The campaign table: one row per observation, as CSV and netCDF, and its reader.

A row (a plain dict, what a batch worker returns) holds: file, object, date, elevation
(MEANEL, deg), wavelength, order (and the selected order with ``--order auto``), K and
its sd (waves; posterior mean/sd with ``--sample``, else the quick fit and its Laplace
sd), surface rms (µm) with sd, Ruze efficiency, the adequacy verdict, convergence,
status ("ok" or "failed") and the reason of a failure, the run directory, wall and
compile time, the worker.  The gravity model's input, each observation's Gaussian
likelihood of K (``stage1_K``, ``stage1_cov``: the quick fit's Laplace approximation, or
the posterior with its K prior divided out), is kept in the netCDF file only.

Files (written with :mod:`bayesoof.io` atomic writers, replaced on every batch run):
``campaign.csv`` (K columns ``K(n,l)`` and ``K(n,l)_sd``) and ``campaign.nc`` (xarray:
dims ``obs``, ``zernike``, ``zernike_``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bayesoof.physics import zernike

__all__ = ["CSV_NAME", "NC_NAME", "read_table", "stage1_from_table", "write_table"]

CSV_NAME = "campaign.csv"
NC_NAME = "campaign.nc"
SCALARS = ("file", "status", "reason", "telescope", "object", "date", "elevation_deg",
           "wavelength_m",
           "order", "selected_order", "surface_rms_um", "surface_rms_sd_um", "ruze",
           "ruze_sd", "adequacy", "converged", "estimate", "run_dir", "wall_time_s",
           "compile_time_s", "worker")


def _order_of(rows) -> int:
    return max([r["order"] for r in rows if r.get("status") == "ok"] or [1])


def _pad(vec, J, fill=np.nan):
    out = np.full(J, fill)
    v = np.asarray(vec if vec is not None else [], float)
    out[: v.size] = v
    return out


def write_table(rows: list[dict], folder) -> tuple[Path, Path]:
    """Write ``campaign.csv`` and ``campaign.nc`` in ``folder``; return their paths."""
    import xarray as xr

    from bayesoof.io import write_csv, write_netcdf

    folder = Path(folder)
    N = _order_of(rows)
    names = zernike.coeff_names(N)
    J = len(names)
    head = list(SCALARS) + [c for n in names for c in (n, f"{n}_sd")]
    body = []
    for r in rows:
        K, sd = _pad(r.get("K"), J), _pad(r.get("K_sd"), J)
        body.append([_cell(r.get(k)) for k in SCALARS]
                    + [_cell(v) for pair in zip(K, sd, strict=True) for v in pair])
    csv_path = write_csv(folder / CSV_NAME, [head] + body, overwrite=True)
    n = len(rows)
    cov = np.full((n, J, J), np.nan)
    for i, r in enumerate(rows):
        if r.get("stage1_cov") is not None:
            c = np.asarray(r["stage1_cov"], float)
            cov[i] = 0.0
            cov[i, : c.shape[0], : c.shape[1]] = c
    data = {
        "K": (("obs", "zernike"), np.array([_pad(r.get("K"), J) for r in rows]).reshape(n, J),
              {"units": "wave"}),
        "K_sd": (("obs", "zernike"), np.array([_pad(r.get("K_sd"), J) for r in rows])
                 .reshape(n, J), {"units": "wave"}),
        "stage1_K": (("obs", "zernike"), np.array([_pad(r.get("stage1_K"), J) for r in rows])
                     .reshape(n, J), {"units": "wave"}),
        "stage1_cov": (("obs", "zernike", "zernike_"), cov, {"units": "wave^2"}),
    }
    for k in SCALARS:
        vals = [r.get(k) for r in rows]
        if k in ("elevation_deg", "wavelength_m", "surface_rms_um", "surface_rms_sd_um",
                 "ruze", "ruze_sd", "wall_time_s", "compile_time_s"):
            data[k] = ("obs", np.array([np.nan if v is None else float(v) for v in vals]))
        elif k in ("order", "selected_order"):
            data[k] = ("obs", np.array([-1 if v is None else int(v) for v in vals]))
        else:
            data[k] = ("obs", np.array(["" if v is None else str(v) for v in vals], dtype=str))
    nl = zernike.nl_list(N)
    ds = xr.Dataset(data, coords={"obs": np.arange(n), "zernike": names, "zernike_": names,
                                  "n": ("zernike", [a for a, _ in nl]),
                                  "l": ("zernike", [b for _, b in nl])},
                    attrs={"content": "bayesoof campaign table (bayesoof/campaign/table.py)"})
    nc_path = write_netcdf(folder / NC_NAME, ds, overwrite=True)
    return csv_path, nc_path


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else repr(float(v))
    return v


def read_table(folder):
    """The campaign table as an xarray Dataset (``campaign.nc`` in ``folder``)."""
    import xarray as xr

    path = Path(folder) / NC_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {NC_NAME} (run 'bayesoof batch' into it first)")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def stage1_from_table(ds):
    """Stage-1 input of the gravity model from a campaign table (successful rows only)."""
    from bayesoof.campaign.gravity import Stage1

    ok = np.asarray(ds["status"].values) == "ok"
    if not ok.any():
        raise ValueError("the campaign table has no successful observation")
    N = int(ds["order"].values[ok].max())
    J = zernike.n_coeffs(N)
    K = np.nan_to_num(ds["stage1_K"].values[ok][:, :J])
    cov = np.nan_to_num(ds["stage1_cov"].values[ok][:, :J, :J])
    lam = ds["wavelength_m"].values[ok]
    ratio = lam / lam[0]
    K = K * ratio[:, None]
    cov = cov * (ratio**2)[:, None, None]
    src = set(ds["estimate"].values[ok].tolist())
    return Stage1(ds["elevation_deg"].values[ok], K, cov, zernike.nl_list(N), float(lam[0]),
                  [Path(str(f)).stem for f in ds["file"].values[ok]],
                  "posterior" if src == {"posterior"} else "laplace")
