"""Simulated campaigns: beam maps at many elevations from a known gravity model.

``K_i = A sin(el_i) + B cos(el_i) + C + η_i`` with ``η_ij ~ N(0, τ_j²)``, each observation
simulated by :func:`bayesoof.simulate.simulate` (the forward model the fits use) with
MEANEL = el_i.  Piston is 0; the truth is returned with the maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesoof.campaign.gravity import design
from bayesoof.physics import zernike

__all__ = ["CampaignTruth", "random_gravity", "simulate_campaign", "write_campaign"]


@dataclass
class CampaignTruth:
    """The truth of a simulated campaign: β (3, J) waves, τ (J,) waves, K (n, J)."""

    elevation: np.ndarray
    beta: np.ndarray
    tau: np.ndarray
    K: np.ndarray
    order: int


def random_gravity(order: int, scale: float = 0.03, scatter: float = 0.005, seed: int = 0):
    """A random gravity model: β (3, J) ~ N(0, scale / mode_rms), τ_j = scatter / mode_rms.

    Piston zero (unobservable).  Waves of rms phase per mode.
    """
    rng = np.random.default_rng(seed)
    nl = zernike.nl_list(order)
    rms = np.array([zernike.mode_rms(n, l) for n, l in nl])
    beta = rng.normal(0.0, scale, (3, len(nl))) / rms
    tau = np.full(len(nl), scatter) / rms
    beta[:, 0] = 0.0
    tau[0] = 0.0
    return beta, tau


def simulate_campaign(elevations, beta, tau, telescope="effelsberg", seed: int = 0,
                      **simulate_kwargs):
    """Simulate one observation per elevation (deg); returns ``(list of BeamMaps, truth)``.

    ``simulate_kwargs`` go to :func:`bayesoof.simulate.simulate` (n_grid, snr, ...).
    """
    from bayesoof.simulate import simulate

    el = np.asarray(elevations, float)
    beta = np.asarray(beta, float)
    tau = np.asarray(tau, float)
    order = zernike.j_to_nl(beta.shape[1] - 1)[0]
    rng = np.random.default_rng(seed)
    K = design(el) @ beta + rng.normal(size=(el.size, beta.shape[1])) * tau
    K[:, 0] = 0.0
    maps = []
    for i, e in enumerate(el):
        meta = {"MEANEL": float(e), "OBJECT": f"sim-el{e:.0f}",
                "DATE_OBS": f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00"}
        maps.append(simulate(telescope, K[i], seed=seed * 100003 + i, meta=meta,
                             **simulate_kwargs))
    return maps, CampaignTruth(el, beta, tau, K, order)


def write_campaign(maps, folder, stem: str = "obs") -> list[Path]:
    """Write each observation as a Nikolic-format FITS file ``folder/<stem>NNN.fits``."""
    from bayesoof.data.fitsio import write_nikolic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, m in enumerate(maps):
        p = folder / f"{stem}{i:03d}.fits"
        write_nikolic(m, p, overwrite=False)
        paths.append(p)
    return paths
