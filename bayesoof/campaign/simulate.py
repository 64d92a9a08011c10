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


class _Simulator:
    """One compiled forward model (symbolic K) for many observations of one geometry.

    Reproduces :func:`bayesoof.simulate.simulate` on a lattice (same graph, same noise
    rule: σ = peak of the in-focus map / snr) without recompiling for every K.
    """

    def __init__(self, telescope, order: int, wavelength=0.009, d_z=(-0.022, 0.0, 0.022),
                 n_grid: int = 97, extent: float = 9.5, illumination=None,
                 illumination_kind: str = "parabolic"):
        import pytensor
        import pytensor.tensor as pt

        from bayesoof.data.containers import BeamMap, BeamMaps
        from bayesoof.physics.forward import ForwardModel
        from bayesoof.physics.telescope import get_telescope
        from bayesoof.simulate import DEFAULT_ILLUMINATION, beam_grid

        self.tel = get_telescope(telescope)
        self.wavelength = float(wavelength)
        self.dz = np.asarray(d_z, float)
        u, v = beam_grid(self.wavelength, self.tel.radius, n_grid, extent)
        self.u, self.v = u, v
        geometry = BeamMaps(tuple(BeamMap(u, v, np.zeros(u.size), d, name=f"map{i}")
                                  for i, d in enumerate(self.dz)), self.wavelength, {})
        self.fm = ForwardModel(geometry, self.tel, max(order, 1), illumination_kind, "direct")
        illum = dict(DEFAULT_ILLUMINATION if illumination is None else illumination)
        if illumination_kind == "gaussian":
            illum.pop("q", None)
        K = pt.dvector("K")
        self._f = pytensor.function([K], self.fm.power(K, illum, None), mode="FAST_RUN")
        self.J = zernike.n_coeffs(max(order, 1))

    def __call__(self, K, snr: float = 200.0, seed: int = 0, meta=None):
        from bayesoof.data.containers import BeamMap, BeamMaps
        from bayesoof.simulate import _names

        Kf = np.zeros(self.J)
        Kf[: np.size(K)] = K
        power = self._f(Kf)
        rng = np.random.default_rng(seed)
        fm = self.fm
        focus = fm.map_slices[int(np.flatnonzero(self.dz == 0)[0])]
        sigma = float(np.max(power[focus])) / snr
        noisy = power + rng.normal(0.0, sigma, power.size)
        names = _names(self.dz)
        maps = tuple(BeamMap(self.u, self.v, noisy[fm.map_slices[i]], d,
                             np.full(self.u.size, sigma), names[i])
                     for i, d in enumerate(self.dz))
        info = {"OBJECT": "simulated", "MEANEL": 45.0, "DATE_OBS": "simulated",
                "TELESC": self.tel.name, "SIM_SNR": float(snr), "SIM_SEED": int(seed)}
        info.update(meta or {})
        out = BeamMaps(maps, self.wavelength, info)
        out.validate()
        return out


def simulate_campaign(elevations, beta, tau, telescope="effelsberg", seed: int = 0,
                      snr: float = 200.0, **geometry):
    """Simulate one observation per elevation (deg); returns ``(list of BeamMaps, truth)``.

    ``geometry``: wavelength, d_z, n_grid, extent, illumination, illumination_kind (as
    :func:`bayesoof.simulate.simulate`; lattice maps, unit amplitude, no offset).  The
    forward model is compiled once for the whole campaign.
    """
    el = np.asarray(elevations, float)
    beta = np.asarray(beta, float)
    tau = np.asarray(tau, float)
    order = zernike.j_to_nl(beta.shape[1] - 1)[0]
    rng = np.random.default_rng(seed)
    K = design(el) @ beta + rng.normal(size=(el.size, beta.shape[1])) * tau
    K[:, 0] = 0.0
    sim = _Simulator(telescope, order, **geometry)
    maps = []
    for i, e in enumerate(el):
        meta = {"MEANEL": float(e), "OBJECT": f"sim-el{e:.0f}",
                "DATE_OBS": f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00"}
        maps.append(sim(K[i], snr=snr, seed=seed * 100003 + i, meta=meta))
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
