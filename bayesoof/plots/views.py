"""What the figures of a whole run need: :class:`FitView` and :class:`PosteriorView`.

Each is built from an in-memory result (``from_result``) or from a run directory
(``from_run``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesoof.io.run import RunDirectory, read_run
from bayesoof.physics.telescope import Telescope, get_telescope

__all__ = ["FitView", "PosteriorView", "as_view"]


@dataclass
class FitView:
    """What the figures of a fit need, from a fit result or a run directory.

    Attributes
    ----------
    data : BeamMaps
    telescope : Telescope
    model_beam, sigma : ndarray (n_samples,)
        Model beam a_i P_i + b_i and σ at every sample (data units, map order).
    offsets : ndarray (n_maps,)
        Fitted per-map offsets b_i (data units).
    K, K_sd : ndarray (J,)
        Coefficients and their Laplace sd, waves.
    K_cov : ndarray (J, J)
        Laplace covariance of K, waves² (zeros for fixed terms).
    cov, names : ndarray (p, p), list of str
        Laplace covariance of the free parameters and their labels.
    title : str
        Data source and order, for figure titles.
    """

    data: object
    telescope: Telescope
    model_beam: np.ndarray
    sigma: np.ndarray
    offsets: np.ndarray
    K: np.ndarray
    K_sd: np.ndarray
    K_cov: np.ndarray
    cov: np.ndarray
    names: list
    title: str = ""

    @property
    def wavelength(self) -> float:
        """Observing wavelength, m."""
        return self.data.wavelength

    @classmethod
    def from_result(cls, result) -> FitView:
        """View of an in-memory quick-fit result (:func:`bayesoof.fit`)."""
        p = result.params
        src = Path(result.data.source).name
        return cls(
            data=result.data, telescope=result.telescope,
            model_beam=np.asarray(result.model_beam, float),
            sigma=np.broadcast_to(np.asarray(result.sigma, float),
                                  result.forward.observed.shape).copy(),
            offsets=np.asarray(p["offset"], float), K=np.asarray(result.K, float),
            K_sd=np.asarray(result.K_sd, float), K_cov=np.asarray(result.last.K_cov(), float),
            cov=np.asarray(result.cov, float), names=list(result.free_names),
            title=f"{src}, order {result.order}{_verdict_tag(result.adequacy.verdict)}",
        )

    @classmethod
    def from_run(cls, run_dir) -> FitView:
        """View of a run directory written by ``FitResult.save`` (read by ``io.read_run``)."""
        return cls.from_record(read_run(run_dir))

    @classmethod
    def from_record(cls, run: RunDirectory) -> FitView:
        """View of an opened run directory (:func:`bayesoof.io.run.read_run`)."""
        from bayesoof.data.containers import BeamMap, BeamMaps

        summary, fit = run.summary, run.fit
        index = fit.map_index
        maps = tuple(
            BeamMap(fit.u[index == i], fit.v[index == i], fit.beam[index == i], fit.d_z[i],
                    fit.sigma[index == i], name)
            for i, name in enumerate(fit.map_names)
        )
        meta = {"source": str(summary.get("source", run.path.name)),
                "OBJECT": summary.get("object", "")}
        data = BeamMaps(maps, float(summary["wavelength_m"]), meta)
        return cls(
            data=data, telescope=_telescope_from_summary(summary),
            model_beam=fit.model_beam, sigma=fit.sigma, offsets=fit.offsets, K=fit.K,
            K_sd=fit.K_sd, K_cov=fit.K_cov, cov=fit.cov, names=list(fit.free_names),
            title=(f"{Path(str(summary.get('source', ''))).name}, order {summary['order']}"
                   f"{_verdict_tag((summary.get('adequacy') or {}).get('verdict'))}"),
        )

    def laplace_draws(self, n: int = 1000, seed: int = 0) -> np.ndarray:
        """Draws of K (n, J) from the Laplace approximation N(K, K_cov), waves."""
        rng = np.random.default_rng(seed)
        c = 0.5 * (self.K_cov + self.K_cov.T)
        w, vec = np.linalg.eigh(c)
        root = vec * np.sqrt(np.clip(w, 0.0, None))
        return self.K + rng.standard_normal((n, self.K.size)) @ root.T


def _verdict_tag(verdict: str | None) -> str:
    """Title suffix marking the adequacy verdict (nothing when unknown)."""
    if verdict == "misfit":
        return " [MODEL MISFIT: see adequacy]"
    return f" [{verdict}]" if verdict else ""


def _telescope_from_summary(summary: dict) -> Telescope:
    """Rebuild the telescope of a run from summary.json (its geometry, else the preset)."""
    from bayesoof.physics.telescope import Blockage, Optics, TelescopeError

    t = summary.get("telescope") or {}
    if isinstance(t, str):
        return get_telescope(t)
    name, radius = str(t.get("name", "telescope")), float(t["radius_m"])
    if t.get("blockage") is not None and t.get("optics") is not None:
        b = dict(t["blockage"])
        b["leg_angles"] = tuple(b.get("leg_angles", ()))
        optics = {k: v for k, v in t["optics"].items() if k != "residual"}  # not drawn
        return Telescope(name, radius, Blockage(**b), Optics(**optics),
                         str(t.get("description", "")))
    try:  # custom callables are not stored: the preset of that name, if any
        return get_telescope(name)
    except (TelescopeError, FileNotFoundError):
        return Telescope(name, radius, description="geometry not stored (custom callables)")


@dataclass
class PosteriorView:
    """What the posterior figures need: the fit's view, the draws and the model mean.

    Attributes
    ----------
    fit : FitView
        The quick fit the chains started from (data, telescope, MAP, Laplace).
    posterior : xarray.Dataset
        Posterior draws of the chains of the primary mode (dims chain, draw, zernike, map).
    K_draws : ndarray (S, J)
        All Zernike coefficients of every primary draw, waves.
    model_mean : ndarray (n_samples,) or None
        Posterior-mean model beam (data units), when the products were computed.
    sampler : str
    """

    fit: FitView
    posterior: object
    K_draws: np.ndarray
    model_mean: np.ndarray | None = None
    sampler: str = ""

    @classmethod
    def from_result(cls, post) -> PosteriorView:
        """View of an in-memory :class:`~bayesoof.inference.posterior.PosteriorResult`."""
        if post.idata is None:
            raise ValueError("the posterior has no draws (interrupted before sampling)")
        if post.fit is None:
            raise ValueError("the posterior result carries no quick fit (post.fit is None)")
        model_mean = post.products.get("model_mean") if post.products else None
        return cls(FitView.from_result(post.fit), post.primary_posterior(), post.K_draws(),
                   None if model_mean is None else np.asarray(model_mean, float),
                   str(post.sampler))

    @classmethod
    def from_run(cls, run_dir) -> PosteriorView:
        """View of a run directory holding ``posterior.nc`` (written by ``bayesoof sample``)."""
        return cls.from_record(read_run(run_dir))

    @classmethod
    def from_record(cls, run: RunDirectory) -> PosteriorView:
        """View of an opened run directory holding a posterior."""
        post = run.posterior
        if post is None:
            raise FileNotFoundError(f"{run.path}: no posterior.nc (run 'bayesoof sample' "
                                    "into it first)")
        return cls(FitView.from_record(run), post.primary_posterior(), post.K_draws(),
                   post.model_mean, post.sampler)

    def chosen(self, n: int = 4) -> list[str]:
        """Labels of the ``n`` free Zernike terms with the largest |mean| / sd.

        Tilts (pointing) come last: they are only chosen when too few other terms are free.
        """
        if "K" not in self.posterior:
            return []
        k = self.posterior["K"]
        labels = [str(z) for z in k["zernike"].values]
        mean = k.mean(("chain", "draw")).values
        sd = k.std(("chain", "draw")).values + 1e-300
        score = np.abs(mean) / sd
        tilt = [lab in ("K(1,-1)", "K(1,1)") for lab in labels]
        order = sorted(range(len(labels)), key=lambda i: (tilt[i], -score[i]))
        return [labels[i] for i in sorted(order[:n])]


def as_view(source, cls):
    """``source`` as a ``cls`` view: itself, from a run directory, or from a result.

    A run directory is a path or one opened by :func:`~bayesoof.io.run.read_run`.
    """
    if isinstance(source, cls):
        return source
    if isinstance(source, RunDirectory):
        return cls.from_record(source)
    if isinstance(source, str | os.PathLike):
        return cls.from_run(source)
    return cls.from_result(source)
