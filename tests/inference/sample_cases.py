"""Simulated cases shared by the posterior tests (test_sample*.py).

Geometry: Effelsberg, λ = 9 mm, d_z = ±22 mm, SNR 200 in the in-focus map, amplitude
100, offset 1, default illumination (c_dB = -14.5 dB free in the quick fit, q = 1.4
fixed), truths from ``simulate.random_coefficients`` (0.05 wave rms per mode, tilts 0).
Aperture: 48 pixels across the dish, shared by the simulation and the fits, so that the
model is exact and the tests check the inference (the discretisation is tested in
test_forward.py); it keeps one gradient at ~1 ms.
"""

from __future__ import annotations

import numpy as np

from bayesoof.inference.fit import fit
from bayesoof.physics.aperture import ApertureGrid
from bayesoof.simulate import DEFAULT_ILLUMINATION, random_coefficients, simulate

SAMPLING = ApertureGrid.across(50.0, 48)
AMP, OFFSET = 100.0, 1.0


def simulated(order: int, seed: int, n_grid: int = 31):
    """Random truths of the given order and their simulated maps (n_grid² per map)."""
    truth = random_coefficients(order, scale=0.05, seed=seed)
    data = simulate("effelsberg", truth, n_grid=n_grid, snr=200.0, seed=seed + 1000,
                    amp=AMP, offset=OFFSET, sampling=SAMPLING)
    return truth, data


def quick_fit(data, order):
    """The quick fit on the shared aperture sampling."""
    return fit(data, telescope="effelsberg", order=order, sampling=SAMPLING)


def truths(result, K_true) -> dict:
    """Truth of every free parameter, keyed like the posterior variables."""
    info = result.info
    out = {"K": K_true[info.free_j]}
    for k in info.free_illum:
        out[k] = DEFAULT_ILLUMINATION[k]
    if info.free["amp"]:
        out["amp"] = np.full(3, AMP)
    if info.free["offset"]:
        out["offset"] = np.full(3, OFFSET)
    return out

