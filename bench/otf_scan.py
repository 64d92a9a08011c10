"""A real-looking on-the-fly (OTF) observation: scattered samples along raster rows.

    python bench/otf_scan.py OUT.fits [--samples 10000] [--seed 1]

Three maps (d_z = -22, 0, +22 mm) of Effelsberg at 9.37 mm, each a raster of √N rows over
±9.5 beam widths λ/(2R): the telescope drives along u, rows alternate in direction, the
sample times jitter (positions along the row ±0.3 of the row step), the rows wander in v
(±0.05 of the row step) and positions are written rounded to 1e-7 rad, so no lattice is
found and every map is scattered.  Order-4 aberrations, SNR 200, σ in the file.
"""

from __future__ import annotations

import argparse

import numpy as np

from bayesoof.simulate import random_coefficients, simulate

WAVELENGTH = 0.0093685  # m
RADIUS = 50.0  # m


def otf_positions(samples: int, rng: np.random.Generator, extent: float = 9.5):
    """(u, v) of one raster map, rad."""
    rows = int(round(np.sqrt(samples)))
    per_row = int(np.ceil(samples / rows))
    half = extent * WAVELENGTH / (2 * RADIUS)
    step = 2 * half / (per_row - 1)
    row_v = np.linspace(-half, half, rows)
    u, v = [], []
    for r, v0 in enumerate(row_v):
        along = np.linspace(-half, half, per_row) + rng.uniform(-0.3, 0.3, per_row) * step
        u.append(along if r % 2 == 0 else along[::-1])
        v.append(v0 + rng.uniform(-0.05, 0.05, per_row) * step)
    u, v = np.concatenate(u)[:samples], np.concatenate(v)[:samples]
    return np.round(np.clip(u, -half, half), 7), np.round(v, 7)


def otf_observation(samples: int = 10000, seed: int = 1):
    """Simulated 3-map OTF observation (BeamMaps) and its true K."""
    rng = np.random.default_rng(seed)
    pos = [otf_positions(samples, rng) for _ in range(3)]
    K = random_coefficients(4, 0.05, seed)
    data = simulate("effelsberg", K, WAVELENGTH, u=[p[0] for p in pos], v=[p[1] for p in pos],
                    snr=200, seed=seed, method="auto")
    return data, K


def main(argv=None):
    from bayesoof.data.fitsio import write_beam_maps

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    data, _ = otf_observation(args.samples, args.seed)
    write_beam_maps(data, args.out, overwrite=True)
    print(data.describe())


if __name__ == "__main__":
    main()
