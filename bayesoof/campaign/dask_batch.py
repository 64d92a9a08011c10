"""Many observations on dask.distributed: one run directory each and the campaign table.

:func:`batch` sends each worker the *path* of a file (workers read the files themselves;
no beam map is pickled), fits it (quick fit, or the order chosen by the evidence with
``order="auto"``; with ``sample=True`` also the posterior), writes its run directory
``<out>/runs/<file stem>-NNN`` (staged: it appears complete or not at all) and returns a
small row (:mod:`bayesoof.campaign.table`).  The client prints one progress line per
finished observation and writes ``<out>/campaign.csv`` and ``campaign.nc``.

* **Cluster**: a LocalCluster of processes, one single-threaded worker per core, by
  default; ``scheduler=ADDRESS`` (or Dask's ``scheduler-address`` configuration) connects
  to an existing cluster with the security (TLS) settings of Dask's configuration
  (``distributed.comm.tls.*``, read by ``distributed.Security()``).  On a remote cluster
  the files and ``out`` must be on a file system the workers share.
* **Compiled models are reused per worker**: the quick fit caches its compiled objective
  per geometry (sample positions, d_z, wavelength, telescope, order: ``inference/fit.py``)
  in the worker's process, which lives for the whole batch; observations of the same
  geometry compile once per worker (``compile_time_s`` is 0 in their rows).
* **Resumable**: an observation whose run directory (with its ``row.json``) exists in
  ``<out>/runs`` is not refitted; failed ones are retried.
* **Failures**: an observation that fails is reported with its reason (a row with status
  "failed") and does not stop the others.
* **Ctrl-C**: pending tasks are cancelled and a local cluster is closed before the
  KeyboardInterrupt propagates.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BatchOptions", "batch", "collect_files", "process_file"]

RUNS = "runs"
ROW_NAME = "row.json"
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


@dataclass
class BatchOptions:
    """What every observation gets (plain data: sent to the workers)."""

    telescope: str | None = None
    order: int | str | None = None  # None: the configuration's; "auto": by the evidence
    max_order: int = 5  # candidates 1..max_order with order="auto"
    config: str | dict | None = None
    sample: bool = False
    sample_kwargs: dict = field(default_factory=dict)
    n_phase: int = 101


def collect_files(inputs) -> list[Path]:
    """FITS files from files and directories (a directory: its *.fits, sorted)."""
    out = []
    for item in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir()
                           if q.is_file() and q.name.lower().endswith(FITS_SUFFIXES))
            if not found:
                raise FileNotFoundError(f"{p}: no FITS files (*.fits, *.fit, *.fts) in it")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    seen, unique = set(), []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if isinstance(exc, (ValueError, OSError, KeyError)) else \
        f"{type(exc).__name__}: {msg}"


def _row_from_results(path: Path, res, post, run: Path, sel, t0: float) -> dict:
    """The table row of one observation (see :mod:`bayesoof.campaign.table`)."""
    from bayesoof.campaign.gravity import likelihood_from_posterior, posterior_K_draws

    data = res.data
    st = res.statistics
    el = data.meta.get("MEANEL")
    row = {
        "file": str(path), "status": "ok", "reason": "",
        "telescope": res.telescope.name, "object": str(data.meta.get("OBJECT", "")),
        "date": str(data.meta.get("DATE_OBS", data.meta.get("DATE-OBS", ""))),
        "elevation_deg": float(el) if el is not None else None,
        "wavelength_m": data.wavelength, "order": res.order,
        "selected_order": None if sel is None else sel.selected_order,
        "adequacy": res.adequacy.verdict, "converged": bool(res.converged),
        "estimate": "laplace", "run_dir": str(run),
        "compile_time_s": res.compile_time, "worker": f"pid {os.getpid()}",
        "K": res.K.tolist(), "K_sd": res.K_sd.tolist(),
        "surface_rms_um": st["surface_rms_weighted"], "surface_rms_sd_um":
            st["surface_rms_weighted_sd"],
        "ruze": st["ruze_weighted"], "ruze_sd": st["ruze_weighted_sd"],
        "stage1_K": res.K.tolist(), "stage1_cov": res.last.K_cov().tolist(),
    }
    if post is not None:
        posterior = post.idata.posterior
        if post.primary_chains:  # the mode the products use
            posterior = posterior.isel(chain=post.primary_chains)
        d, free = posterior_K_draws(posterior, res.space.nl, res.K)
        K_lik, C_lik = likelihood_from_posterior(d, res.space.nl, free=free)
        rms = (post.products or {}).get("rms_summary", {})
        row.update({
            "estimate": "posterior", "K": d.mean(axis=0).tolist(),
            "K_sd": d.std(axis=0, ddof=1).tolist(), "stage1_K": K_lik.tolist(),
            "stage1_cov": C_lik.tolist(), "converged": bool(post.converged),
        })
        if rms.get("surface_rms"):
            row["surface_rms_um"] = rms["surface_rms"]["mean"]
            row["surface_rms_sd_um"] = rms["surface_rms"]["sd"]
        if rms.get("ruze"):
            row["ruze"], row["ruze_sd"] = rms["ruze"]["mean"], rms["ruze"]["sd"]
        if (post.products or {}).get("adequacy") is not None:
            row["adequacy"] = post.products["adequacy"].verdict
    row["wall_time_s"] = time.perf_counter() - t0
    return row


def process_file(path, runs_dir, options: BatchOptions) -> dict:
    """Fit one observation and write its run directory; never raises (a failed row)."""
    import warnings

    t0 = time.perf_counter()
    path = Path(path)
    try:
        from bayesoof.campaign.order import fit_auto
        from bayesoof.data.fitsio import read_beam_maps
        from bayesoof.inference.fit import fit
        from bayesoof.io import staged_run, write_json
        from bayesoof.io.jsonclean import clean

        data = read_beam_maps(path)
        tel = options.telescope or data.meta.get("TELESC")
        if not tel:
            raise ValueError(f"{path}: the file does not name its telescope (no TELESC card);"
                             " give the telescope")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sel = None
            if options.order == "auto":
                res, sel = fit_auto(data, tel, max_order=options.max_order,
                                    config=options.config)
            else:
                res = fit(data, tel, order=options.order, config=options.config)
            post = None
            if options.sample:
                from bayesoof.inference.sample import sample

                post = sample(data, telescope=tel, order=res.order, fit_result=res,
                              **options.sample_kwargs)
                if post.idata is None:
                    raise RuntimeError("sampling kept no draw")
        with staged_run(runs_dir, path.stem) as (staging, finish):
            built = res.save(staging, stem=path.stem, n_phase=options.n_phase)
            if post is not None:
                post.save(built)
            row = _row_from_results(path, res, post, built, sel, t0)
            write_json(built / ROW_NAME, clean(row))
            run = finish(built)
        row["run_dir"] = str(run)
        return row
    except Exception as exc:  # reported as a failed row: the batch goes on
        return {"file": str(path), "status": "failed", "reason": _one_line(exc),
                "wall_time_s": time.perf_counter() - t0, "worker": f"pid {os.getpid()}"}


def _finished(runs_dir: Path) -> dict:
    """{resolved file path: row} of the observations already done in ``runs_dir``."""
    done = {}
    if not runs_dir.is_dir():
        return done
    for row_file in sorted(runs_dir.glob(f"*/{ROW_NAME}")):
        try:
            row = json.loads(row_file.read_text())
        except (OSError, ValueError):
            continue
        row["run_dir"] = str(row_file.parent)
        done[str(Path(row["file"]).resolve())] = row
    return done


def _client(scheduler, n_workers, threads: bool):
    """(client, cluster or None): a LocalCluster of processes, or Dask's scheduler."""
    import dask
    from distributed import Client, LocalCluster, Security

    address = scheduler or dask.config.get("scheduler-address", None)
    if address:
        return Client(address, security=Security()), None
    n = n_workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=not threads)
    return Client(cluster), cluster


def _say(stream, msg: str) -> None:
    if stream is not None:
        stream.write(msg + "\n")
        stream.flush()


def _progress_line(k: int, n: int, row: dict, t_start: float) -> str:
    width = 20
    fill = int(round(width * k / n))
    bar = "#" * fill + "." * (width - fill)
    name = Path(row["file"]).name
    if row["status"] == "ok":
        what = (f"order {row['order']}, surface rms {row['surface_rms_um']:.1f} ± "
                f"{row['surface_rms_sd_um']:.1f} µm, {row['adequacy']}, "
                f"{'converged' if row['converged'] else 'NOT converged'}")
    else:
        what = f"FAILED: {row['reason']}"
    return (f"[{bar}] {k}/{n} {name}: {what} ({row.get('wall_time_s', 0):.1f} s, "
            f"{row.get('worker', '')}; elapsed {time.perf_counter() - t_start:.0f} s)")


def batch(inputs, out="bayesoof_campaign", options: BatchOptions | None = None, *,
          scheduler: str | None = None, n_workers: int | None = None, threads: bool = False,
          client=None, progress=sys.stderr, **option_kwargs) -> list[dict]:
    """Fit every observation on Dask; write run directories and the campaign table.

    Parameters
    ----------
    inputs : path or sequence of paths
        FITS files and/or directories of FITS files.
    out : str or Path
        Campaign folder: ``runs/`` (one run directory per observation), ``campaign.csv``,
        ``campaign.nc``.  Re-running into the same folder skips finished observations.
    options : BatchOptions, optional
        Or its fields as keyword arguments (telescope, order, max_order, config, sample,
        sample_kwargs).
    scheduler : str, optional
        Address of an existing dask.distributed scheduler (default: Dask's
        ``scheduler-address`` configuration, else a LocalCluster).
    n_workers : int, optional
        Workers of the LocalCluster (default: one per core).
    threads : bool
        LocalCluster of threads instead of processes (one process; for tests).
    client : distributed.Client, optional
        Use this client (it is not closed).
    progress : text stream or None
        Where the progress lines go.

    Returns
    -------
    list of dict
        The rows of the campaign table, in the order of the inputs.
    """
    from distributed import as_completed

    from bayesoof.campaign.table import write_table

    options = options or BatchOptions(**option_kwargs)
    files = collect_files(inputs)
    out = Path(out)
    runs_dir = out / RUNS
    runs_dir.mkdir(parents=True, exist_ok=True)
    done = _finished(runs_dir)
    rows: dict[str, dict] = {}
    todo = []
    for f in files:
        key = str(f.resolve())
        if key in done:
            rows[key] = done[key]
        else:
            todo.append(f)
    n = len(files)
    _say(progress, f"campaign of {n} observations -> {out} ({n - len(todo)} already done, "
                   f"{len(todo)} to fit)")
    t_start = time.perf_counter()
    if todo:
        own = client is None
        cluster = None
        if own:
            client, cluster = _client(scheduler, n_workers, threads)
        futures = []
        try:
            info = client.scheduler_info()
            _say(progress, f"dask: {len(info.get('workers', {}))} workers at "
                           f"{client.scheduler.address}"
                           + (f", dashboard {client.dashboard_link}"
                              if getattr(client, "dashboard_link", None) else ""))
            # paths only: each worker reads its file (pure=False: a re-run refits)
            futures = [client.submit(process_file, str(f.resolve()), str(runs_dir.resolve()),
                                     options, pure=False, key=f"bayesoof-{f.stem}-{i}")
                       for i, f in enumerate(todo)]
            k = n - len(todo)
            for fut in as_completed(futures):
                row = fut.result()
                k += 1
                rows[str(Path(row["file"]).resolve())] = row
                _say(progress, _progress_line(k, n, row, t_start))
        finally:  # Ctrl-C or an error: cancel what is pending, close what we opened
            if own:
                pending = [f for f in futures if not f.done()]
                if pending:
                    client.cancel(pending)
                client.close()
                if cluster is not None:
                    cluster.close()
    ordered = [rows[str(f.resolve())] for f in files]
    csv_path, nc_path = write_table(ordered, out)
    n_ok = sum(r["status"] == "ok" for r in ordered)
    _say(progress, f"{n_ok} of {n} observations fitted, {n - n_ok} failed; table {csv_path}, "
                   f"{nc_path} ({time.perf_counter() - t_start:.0f} s)")
    for r in ordered:
        if r["status"] != "ok":
            reason = r["reason"]
            if r["file"] not in reason:
                reason = f"{r['file']}: {reason}"
            _say(progress, f"  failed: {reason}")
    return ordered
