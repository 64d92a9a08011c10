"""Reading a run directory back: the one reader of its summary and netCDF files.

Used by ``bayesoof info``, ``plot`` and ``surface``, the plots' views
(``FitView.from_run``, ``PosteriorView.from_run``) and the notebooks.
:func:`read_run` checks that the directory is a bayesoof run and reads its
``summary.json`` (a quick fit's, checked against the schema of :mod:`bayesoof.io.summary`,
or a gravity model's, ``"kind": "gravity"``).  The netCDF files are read on first use,
each group loaded into memory and the file closed:

* :attr:`RunDirectory.fit` -- ``result.nc`` of the quick fit as :class:`FitArrays`;
* :attr:`RunDirectory.posterior` -- ``posterior.nc`` (and ``posterior_products.nc``) as
  :class:`PosteriorArrays`, None when the run holds no posterior.

Values stay in the units they were written in (K waves, u/v rad, d_z m, beam and σ in
data units); nothing is converted.  xarray (with h5netcdf) reads the files, imported on
first use; ArviZ is not needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from bayesoof.io.summary import SUMMARY_NAME, Summary, SummaryError, read_summary

__all__ = ["FitArrays", "PosteriorArrays", "RunDirectory", "read_run"]

#: the quick fit's netCDF file and the groups a run directory's reader needs from it
RESULT_NAME = "result.nc"
POSTERIOR_NAME = "posterior.nc"
POSTERIOR_PRODUCTS_NAME = "posterior_products.nc"


def _group(path: Path, group: str):
    """One group of a netCDF-4 file as an in-memory xarray Dataset (the file is closed)."""
    import xarray as xr

    try:
        with xr.open_dataset(path, group=group, engine="h5netcdf") as ds:
            return ds.load()
    except OSError as err:
        raise SummaryError(f"{path}: group {group!r} not readable ({err})") from None


def _labels(values) -> list[str]:
    return [str(v) for v in np.asarray(values).tolist()]


@dataclass(frozen=True)
class FitArrays:
    """The quick fit of a run directory (``result.nc``) as NumPy arrays.

    Attributes
    ----------
    K, K_sd : ndarray (J,)
        MAP Zernike coefficients and their Laplace sd, waves (OSA order).
    zernike : list of str
        Their labels ``K(n,l)``; ``nl`` the (n, l) pairs.
    K_cov : ndarray (J, J)
        Laplace covariance of K, waves² (zeros for fixed terms).
    free_names : list of str
        Labels of the free parameters; ``cov`` (p, p) their Laplace covariance.
    offsets : ndarray (n_maps,)
        Per-map offsets b_i, data units.
    map_names : list of str
        Map names; ``d_z`` (n_maps,) their defocus offsets, m.
    map_index, u, v, beam, sigma, model_beam : ndarray (n_samples,)
        Map of each sample, its direction (rad), observed beam, σ and the model beam
        a_i P_i + b_i at the MAP (data units), all maps concatenated.
    """

    K: np.ndarray
    K_sd: np.ndarray
    zernike: list
    nl: list
    K_cov: np.ndarray
    free_names: list
    cov: np.ndarray
    offsets: np.ndarray
    map_names: list
    d_z: np.ndarray
    map_index: np.ndarray
    u: np.ndarray
    v: np.ndarray
    beam: np.ndarray
    sigma: np.ndarray
    model_beam: np.ndarray

    @classmethod
    def read(cls, path: Path) -> FitArrays:
        """Read ``result.nc`` (groups map_estimate, laplace, observed_data, constant_data)."""
        est = _group(path, "map_estimate")
        lap = _group(path, "laplace")
        obs = _group(path, "observed_data")
        const = _group(path, "constant_data")
        K = np.asarray(est["K"].values, float)
        zern = _labels(est["zernike"].values)
        names = _labels(lap["param"].values)
        cov = np.asarray(lap["cov"].values, float)
        return cls(
            K=K, K_sd=np.asarray(est["K_sd"].values, float), zernike=zern,
            nl=list(zip(est["n"].values.tolist(), est["l"].values.tolist(), strict=True)),
            K_cov=embed_covariance(cov, names, zern), free_names=names, cov=cov,
            offsets=np.asarray(est["offset"].values, float),
            map_names=_labels(const["map"].values),
            d_z=np.asarray(const["d_z_of_map"].values, float),
            map_index=np.asarray(const["map_index"].values, int),
            u=np.asarray(const["u"].values, float), v=np.asarray(const["v"].values, float),
            beam=np.asarray(obs["beam"].values, float),
            sigma=np.asarray(const["sigma"].values, float),
            model_beam=np.asarray(est["model_beam"].values, float),
        )


def embed_covariance(cov, names, labels) -> np.ndarray:
    """Covariance of ``labels`` taken from a covariance of ``names`` (zeros where absent).

    Parameters
    ----------
    cov : ndarray (p, p)
        Covariance of the parameters ``names`` (e.g. the free parameters of a fit).
    names, labels : sequence of str
        Labels of ``cov``'s rows; labels of the wanted rows (e.g. every ``K(n,l)``).
    """
    out = np.zeros((len(labels), len(labels)))
    pos = {n: i for i, n in enumerate(names)}
    pairs = [(j, pos[lab]) for j, lab in enumerate(labels) if lab in pos]
    if pairs:
        jj, pp = (np.array(t) for t in zip(*pairs, strict=True))
        out[np.ix_(jj, jj)] = np.asarray(cov, float)[np.ix_(pp, pp)]
    return out


@dataclass(frozen=True)
class PosteriorArrays:
    """The posterior of a run directory (``posterior.nc``, ``posterior_products.nc``).

    Attributes
    ----------
    posterior : xarray.Dataset
        Draws of every chain (dims chain, draw, zernike, map, ...).
    primary : list of int
        Chains of the primary mode (summary ``posterior.modes.primary``; all when absent).
    K_start : ndarray (J,)
        Every Zernike coefficient at the start (the quick fit's MAP), waves; labels
        ``zernike_all``.  Terms the model does not sample keep these values.
    model_mean : ndarray (n_samples,) or None
        Posterior-mean model beam, data units, when the products hold it.
    sampler : str
    """

    posterior: object
    primary: list
    K_start: np.ndarray
    zernike_all: list
    model_mean: np.ndarray | None
    sampler: str

    @classmethod
    def read(cls, run: Path, section: dict) -> PosteriorArrays:
        """Read ``posterior.nc`` of ``run``; ``section`` is the summary's posterior section."""
        post = _group(run / POSTERIOR_NAME, "posterior")
        const = _group(run / POSTERIOR_NAME, "constant_data")
        n_chains = post.sizes["chain"]
        primary = (section.get("modes") or {}).get("primary") or range(n_chains)
        model_mean = None
        products = run / POSTERIOR_PRODUCTS_NAME
        if products.is_file():
            import xarray as xr

            with xr.open_dataset(products, engine="h5netcdf") as ds:
                if "model_mean" in ds:
                    model_mean = np.asarray(ds["model_mean"].values, float)
        return cls(post, [c for c in primary if c < n_chains],
                   np.asarray(const["K_start"].values, float), _labels(const["zernike_all"].values),
                   model_mean, str(section.get("sampler", "")))

    def primary_posterior(self):
        """The ``posterior`` Dataset restricted to the primary mode's chains."""
        return self.posterior.isel(chain=self.primary)

    def K_draws(self, primary: bool = True) -> np.ndarray:
        """Every Zernike coefficient of every draw (S, J), waves; fixed terms at ``K_start``.

        ``primary``: only the primary mode's chains (as the products), else all chains.
        """
        post = self.primary_posterior() if primary else self.posterior
        S = post.sizes["chain"] * post.sizes["draw"]
        draws = np.tile(self.K_start, (S, 1))
        if "K" in post:
            pos = {lab: j for j, lab in enumerate(self.zernike_all)}
            free = [pos[z] for z in _labels(post["zernike"].values)]
            draws[:, free] = post["K"].values.reshape(S, -1)
        return draws


@dataclass(frozen=True)
class RunDirectory:
    """A run directory: its summary now, its netCDF files on first use.

    Attributes
    ----------
    path : Path
    kind : {'fit', 'gravity'}
        A quick fit (possibly with a posterior) or a gravity model (``bayesoof gravity``).
    summary : dict
        ``summary.json``: checked against the schema for a fit; as written for a gravity
        model (its own format, read in full by ``campaign.gravity.load_gravity``).
    """

    path: Path
    kind: str
    summary: Summary | dict

    @cached_property
    def fit(self) -> FitArrays:
        """``result.nc`` of the quick fit (FileNotFoundError when absent)."""
        nc = self.path / RESULT_NAME
        if self.kind != "fit" or not nc.is_file():
            raise FileNotFoundError(f"{self.path}: no {RESULT_NAME}; not a complete bayesoof "
                                    "fit run")
        return FitArrays.read(nc)

    @property
    def has_posterior(self) -> bool:
        """Whether the run holds a posterior (``posterior.nc``)."""
        return self.kind == "fit" and (self.path / POSTERIOR_NAME).is_file()

    @cached_property
    def posterior(self) -> PosteriorArrays | None:
        """``posterior.nc`` of the run, or None when it holds none."""
        if not self.has_posterior:
            return None
        return PosteriorArrays.read(self.path, self.summary.get("posterior") or {})


def _gravity_summary(path: Path) -> dict | None:
    """The summary.json of a gravity run (``"kind": "gravity"``), else None."""
    try:
        doc = json.loads((path / SUMMARY_NAME).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == "gravity" else None


def read_run(run_dir) -> RunDirectory:
    """Open a run directory written by bayesoof (``fit``, ``sample``, ``gravity``).

    Raises
    ------
    FileNotFoundError
        No such directory, or no summary.json in it.
    SummaryError
        A summary.json that is not valid JSON or not of this schema (names file and key).
    """
    run = Path(run_dir)
    gravity = _gravity_summary(run) if run.is_dir() else None
    if gravity is not None:
        return RunDirectory(run, "gravity", gravity)
    return RunDirectory(run, "fit", read_summary(run))
