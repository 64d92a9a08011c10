"""Raw draws kept on disk, so that no sampling time is ever lost to a later failure.

With ``checkpoint=DIR``, :func:`bayesoof.inference.sample.sample_model` writes
``DIR/raw_draws.npz``:

* as soon as the sampler returns (finished or interrupted), **before** the draws are
  assembled into InferenceData, diagnosed and turned into products;
* every :data:`INTERVAL` s during long numpyro, PyMC and emcee runs (the draws so far), so that
  even a killed process leaves what it had sampled.

The file holds the whitened draws ``z`` (chains, draws, d) and the sampler statistics, the
whitening (``u = center + chol z``), the Laplace result, the sampler settings, and a JSON
*recipe*: how the model was built (data file, telescope, order, fit configuration, priors).
:func:`finish` rebuilds the model from the recipe (the quick fit is deterministic) and
completes the run directory; on the command line ``bayesoof finish RUN_DIR``.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["INTERVAL", "RAW_FILE", "finish", "load_raw", "recipe", "save_raw"]

#: name of the raw-draws file in a run directory
RAW_FILE = "raw_draws.npz"
#: seconds between periodic checkpoints of a running sampler
INTERVAL = 60.0


def _json(obj) -> str:
    from bayesoof.io import clean

    return json.dumps(clean(obj))


def _plain(obj) -> bool:
    try:
        json.dumps(obj)
    except (TypeError, ValueError):
        return False
    return True


def recipe(data, telescope, order: int, fit_kwargs: dict | None = None, priors=None,
           model_kwargs: dict | None = None) -> dict | None:
    """How to rebuild a model for :func:`finish`, or None when it cannot be written down.

    ``data``: a file path or BeamMaps read from a file; ``telescope``: a preset name, a
    TOML path or a Telescope (kept by name); the rest must be JSON-able.
    """
    import os

    src = data if isinstance(data, str | os.PathLike) else getattr(data, "source", None)
    if src is None or not Path(src).is_file():
        return None
    tel = telescope if isinstance(telescope, str) else getattr(telescope, "name", None)
    if isinstance(telescope, str) and Path(telescope).is_file():
        tel = str(Path(telescope).resolve())
    out = {"data": str(Path(src).resolve()), "telescope": tel, "order": int(order),
           "fit_kwargs": dict(fit_kwargs or {}), "priors": priors,
           "model_kwargs": dict(model_kwargs or {})}
    if tel is None or not _plain(out):
        return None
    cfg = out["fit_kwargs"].get("config")
    if isinstance(cfg, str) and Path(cfg).is_file():
        out["fit_kwargs"]["config"] = str(Path(cfg).resolve())
    return out


def save_raw(directory, raw, density, lap, settings: dict, recipe: dict | None,
             partial: bool = False) -> Path:
    """Write ``directory/raw_draws.npz`` (atomically, replacing an earlier checkpoint).

    Parameters
    ----------
    raw : RawDraws
        Whitened draws and statistics.
    density : AffineDensity
        Supplies the whitening ``center``, ``chol`` and the value-variable names.
    lap : LaplaceResult or None
    settings : dict
        Sampler settings (as stored in the posterior summary).
    recipe : dict or None
        How to rebuild the model (:func:`finish`); None when it cannot be rebuilt.
    partial : bool
        True for a periodic checkpoint of a sampler still running.
    """
    from bayesoof.io import write_bytes

    arrays = {
        "z": np.asarray(raw.z, float),
        "center": np.asarray(density.center, float),
        "chol": np.asarray(density.chol, float),
        "curve": np.asarray(density.curve, float),
    }
    for k, v in raw.stats.items():
        arrays[f"stat__{k}"] = np.asarray(v)
    meta = {
        "n_grad": raw.n_grad, "n_grad_sampling": raw.n_grad_sampling,
        "wall_time": raw.wall_time, "sampling_time": raw.sampling_time,
        "interrupted": bool(raw.interrupted or partial), "info": raw.info,
        "value_vars": list(density.names), "settings": settings, "recipe": recipe,
        "partial": bool(partial), "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if lap is not None:
        arrays["lap_u_mode"] = np.asarray(lap.u_mode, float)
        arrays["lap_cov"] = np.asarray(lap.cov, float)
        meta["laplace"] = {"logp": lap.logp, "converged": lap.converged, "n_iter": lap.n_iter,
                           "message": lap.message, "wall_time": lap.wall_time,
                           "labels": list(lap.labels)}
    arrays["meta"] = np.array(_json(meta))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = Path(directory) / RAW_FILE
    write_bytes(path, buf.getvalue(), overwrite=True)
    return path


def load_raw(path) -> dict:
    """Read a raw-draws file (or the one in a run directory) into a dict.

    Keys: ``raw`` (RawDraws), ``center``, ``chol``, ``curve`` (None in files written
    before the curved whitening: affine), ``laplace`` (LaplaceResult or None),
    ``settings``, ``recipe``, ``value_vars``, ``partial``.
    """
    from bayesoof.inference.sample import LaplaceResult, RawDraws

    path = Path(path)
    if path.is_dir():
        path = path / RAW_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (no raw draws were kept here)")
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        stats = {k[len("stat__"):]: f[k] for k in f.files if k.startswith("stat__")}
        raw = RawDraws(z=f["z"], stats=stats, n_grad=meta["n_grad"],
                       n_grad_sampling=meta["n_grad_sampling"], wall_time=meta["wall_time"],
                       sampling_time=meta["sampling_time"], interrupted=meta["interrupted"],
                       info=meta.get("info") or {})
        lap = None
        if "laplace" in meta:
            L = meta["laplace"]
            lap = LaplaceResult(u_mode=f["lap_u_mode"], cov=f["lap_cov"], logp=L["logp"],
                                converged=L["converged"], n_iter=L["n_iter"],
                                message=L["message"], wall_time=L["wall_time"],
                                labels=L["labels"])
        return {"raw": raw, "center": f["center"], "chol": f["chol"], "laplace": lap,
                "curve": f["curve"] if "curve" in f.files else None,
                "settings": meta["settings"], "recipe": meta.get("recipe"),
                "value_vars": meta["value_vars"], "partial": meta.get("partial", False)}


def finish(run_dir, products: bool = True):
    """Complete a run directory whose sampling ended but whose assembly did not.

    Rebuilds the model from the recipe in ``run_dir/raw_draws.npz`` (reading the data
    file again and repeating the deterministic quick fit), assembles the kept draws into
    a :class:`~bayesoof.inference.posterior.PosteriorResult` and saves it into
    ``run_dir`` (``posterior.nc``, ``posterior_products.nc``, the summary's posterior
    section).  Returns the result.

    Raises
    ------
    FileNotFoundError
        No raw draws in ``run_dir``.
    FileExistsError
        The run is already complete (``posterior.nc`` exists).
    ValueError
        The model cannot be rebuilt (no recipe, or the rebuilt model differs).
    """
    from bayesoof.inference.fit import fit
    from bayesoof.inference.model import build_model
    from bayesoof.inference.posterior import assemble
    from bayesoof.inference.sample import AffineDensity

    run_dir = Path(run_dir)
    if (run_dir / "posterior.nc").exists():
        raise FileExistsError(f"{run_dir}: already complete (posterior.nc exists)")
    kept = load_raw(run_dir)
    recipe = kept["recipe"]
    if not recipe or not recipe.get("data"):
        raise ValueError(
            f"{run_dir / RAW_FILE}: no recipe to rebuild the model (the data were not read "
            "from a file); load_raw() it and call bayesoof.inference.posterior.assemble"
        )
    t0 = time.perf_counter()
    fit_result = fit(recipe["data"], telescope=recipe["telescope"], order=recipe["order"],
                     verbose=False, **(recipe.get("fit_kwargs") or {}))
    model = build_model(fit_result, priors=recipe.get("priors"),
                        **(recipe.get("model_kwargs") or {}))
    settings = kept["settings"]
    mode = settings.get("compile_mode")
    density = AffineDensity(model, kept["center"], kept["chol"], mode=mode,
                            curve=kept.get("curve"))
    if density.names != kept["value_vars"] or density.dim != kept["raw"].z.shape[-1]:
        raise ValueError(
            f"{run_dir / RAW_FILE}: the rebuilt model has parameters {density.names} "
            f"(dimension {density.dim}), the draws were made for {kept['value_vars']} "
            f"(dimension {kept['raw'].z.shape[-1]}); cannot finish"
        )
    result = assemble(model, density, kept["raw"], kept["laplace"], settings, t0,
                      products=products, seed=int(settings.get("seed", 0)))
    result.fit = fit_result
    result.save(run_dir)
    return result
