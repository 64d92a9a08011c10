"""Simulated beam maps from the same forward graph the fits use.

Noise is Gaussian with one σ for all maps (one receiver), set by the peak SNR of the
in-focus map; σ is stored per sample in the maps so that fits can use it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytensor

from bayesoof.data.containers import BeamMap, BeamMaps
from bayesoof.physics import zernike
from bayesoof.physics.aperture import ApertureGrid
from bayesoof.physics.forward import ForwardModel
from bayesoof.physics.illumination import get_illumination
from bayesoof.physics.telescope import Telescope, get_telescope
from bayesoof.units import as_value

__all__ = [
    "DEFAULT_ILLUMINATION",
    "beam_grid",
    "example_path",
    "example_truth",
    "make_example",
    "random_coefficients",
    "simulate",
]

#: start values of the parabolic illumination (its registered model; x0 = y0 = 0 m)
DEFAULT_ILLUMINATION = dict(get_illumination("parabolic").start)


def beam_grid(wavelength: float, radius: float, n: int = 97, extent: float = 9.5):
    """Square lattice of n × n directions spanning ±extent beam widths λ/(2R); rad.

    Returns flat ``u, v`` arrays with u varying fastest (pyoof's ordering).
    """
    half = extent * wavelength / (2.0 * radius)
    axis = np.linspace(-half, half, n)
    uu, vv = np.meshgrid(axis, axis, indexing="xy")
    return uu.ravel(), vv.ravel()


def random_coefficients(order: int, scale: float = 0.05, seed: int = 0) -> np.ndarray:
    """Random K (waves) up to ``order``: N(0, scale / mode_rms) with piston and tilts 0.

    Scaling by the inverse rms of each unnormalised polynomial gives every mode the same
    expected rms phase (``scale`` waves).
    """
    rng = np.random.default_rng(seed)
    K = np.array(
        [rng.normal(0.0, scale) / zernike.mode_rms(n, l) for n, l in zernike.nl_list(order)]
    )
    K[:3] = 0.0  # piston and tilts: unobservable / pointing
    return K


def simulate(
    telescope: Telescope | str,
    K,
    wavelength=0.009,
    d_z=(-0.022, 0.0, 0.022),
    illumination: dict | None = None,
    illumination_kind: str = "parabolic",
    u=None,
    v=None,
    n_grid: int = 97,
    extent: float = 9.5,
    scatter: bool = False,
    amp=1.0,
    offset=0.0,
    pointing=None,
    snr: float | None = 200.0,
    seed: int = 0,
    sampling: ApertureGrid | None = None,
    method: str = "direct",
    meta: dict | None = None,
) -> BeamMaps:
    """Simulate beam maps.

    Parameters
    ----------
    telescope : Telescope or str
    K : array (J,)
        Zernike coefficients in waves (OSA order; J fixes the order).
    wavelength : float or Quantity
        m.
    d_z : sequence of float or Quantity
        Sub-reflector offsets, m; must include 0.
    illumination : dict
        Illumination coefficients (c_dB [dB], q, x0 [m], y0 [m]).
    u, v : sequence of arrays, optional
        Sample directions per map, rad.  Default: an n_grid² lattice over ±extent λ/(2R),
        or with ``scatter`` the same number of uniformly random points in that square.
    amp, offset : float or sequence
        Per-map amplitude and offset applied to the normalised power.
    pointing : array (n_maps, 2), optional
        Beam-centre offsets, rad.
    snr : float or None
        Peak SNR of the in-focus map (σ = peak / snr); None for noise-free maps (σ = 1e-3 ×
        peak is still recorded so the maps stay fittable).
    seed : int
        Seed of the noise and of scattered positions.
    sampling : ApertureGrid, optional
        Aperture pixels of the simulation (default: the forward model's choice).
    """
    tel = get_telescope(telescope)
    wl = float(as_value(wavelength, "m", "wavelength"))
    dz = np.atleast_1d(as_value(d_z, "m", "d_z")).astype(float)
    K = np.asarray(K, float)
    order, _ = zernike.j_to_nl(K.size - 1)
    if zernike.n_coeffs(order) != K.size:
        raise ValueError(f"K has {K.size} coefficients; expected a full order ((N+1)(N+2)/2)")
    illum = dict(DEFAULT_ILLUMINATION if illumination is None else illumination)
    model = get_illumination(illumination_kind)
    start = model.start_values(tel.radius)
    illum = {n: illum.get(n, start[n]) for n in model.params}  # its coefficients only
    rng = np.random.default_rng(seed)
    nm = dz.size
    if u is None:
        if scatter:
            half = extent * wl / (2.0 * tel.radius)
            u = [rng.uniform(-half, half, n_grid * n_grid) for _ in range(nm)]
            v = [rng.uniform(-half, half, n_grid * n_grid) for _ in range(nm)]
        else:
            gu, gv = beam_grid(wl, tel.radius, n_grid, extent)
            u, v = [gu] * nm, [gv] * nm
    u = [as_value(x, "rad", "u") for x in u]
    v = [as_value(x, "rad", "v") for x in v]
    geometry = BeamMaps(
        tuple(BeamMap(u[i], v[i], np.zeros(u[i].size), dz[i], name=f"map{i}") for i in range(nm)),
        wl,
        dict(meta or {}),
    )
    fm = ForwardModel(geometry, tel, max(order, 1), illumination_kind, method, sampling)
    amp = np.broadcast_to(np.asarray(amp, float), (nm,))
    off = np.broadcast_to(np.asarray(offset, float), (nm,))
    K_full = np.zeros(zernike.n_coeffs(max(order, 1)))
    K_full[: K.size] = K
    power = pytensor.function([], fm.power(K_full, illum, pointing), mode="FAST_RUN")()
    model = amp[fm.map_index] * power + off[fm.map_index]
    focus = fm.map_slices[int(np.flatnonzero(dz == 0)[0])] if np.any(dz == 0) else slice(None)
    peak = float(np.max(model[focus] - off[fm.map_index][focus]))
    sigma = peak / snr if snr else 1e-3 * peak
    noisy = model + (rng.normal(0.0, sigma, model.size) if snr else 0.0)
    names = _names(dz)
    maps = tuple(
        BeamMap(u[i], v[i], noisy[fm.map_slices[i]], dz[i], np.full(u[i].size, sigma), names[i])
        for i in range(nm)
    )
    info = {
        "OBJECT": "simulated",
        "MEANEL": 45.0,
        "DATE_OBS": "simulated",
        "TELESC": tel.name,
        "SIM_SNR": float(snr) if snr else 0.0,
        "SIM_SEED": int(seed),
    }
    info.update(meta or {})
    out = BeamMaps(maps, wl, info)
    out.validate()
    return out


def _names(dz: np.ndarray) -> list[str]:
    if dz.size == 3 and dz[0] < 0 and dz[1] == 0 and dz[2] > 0:
        return ["MINUS OOF", "ZERO OOF", "PLUS OOF"]
    return [f"DZ{d * 1e3:+.1f}MM" for d in dz]


# ------------------------------------------------------------------ bundled example

EXAMPLE_NAME = "example_effelsberg.fits"
EXAMPLE_SETTINGS = {
    "telescope": "effelsberg",
    "order": 4,
    "wavelength": 0.009,
    "d_z": (-0.022, 0.0, 0.022),
    "n_grid": 61,
    "extent": 8.0,
    "snr": 300.0,
    "seed": 20261121,
    "amp": 1000.0,
    "offset": 2.0,
}


def example_truth() -> np.ndarray:
    """The K (waves, order 4) the bundled example was simulated with."""
    return random_coefficients(EXAMPLE_SETTINGS["order"], scale=0.03, seed=7)


def make_example(path: str | Path, overwrite: bool = False) -> Path:
    """(Re)generate the bundled example: Effelsberg, 9 mm, order-4 aberrations, SNR 300.

    Written in the Nikolic format (it carries σ per sample in UFNU).
    """
    from bayesoof.data.fitsio import write_nikolic

    s = EXAMPLE_SETTINGS
    maps = simulate(
        s["telescope"], example_truth(), s["wavelength"], s["d_z"], n_grid=s["n_grid"],
        extent=s["extent"], snr=s["snr"], seed=s["seed"], amp=s["amp"], offset=s["offset"],
        meta={"OBJECT": "bayesoof example", "TRUTH": "bayesoof.simulate.example_truth()"},
    )
    write_nikolic(maps, path, overwrite=overwrite)
    return Path(path)


def example_path() -> Path:
    """Path of the bundled example FITS file."""
    return Path(str(resources.files("bayesoof").joinpath("examples", EXAMPLE_NAME)))
