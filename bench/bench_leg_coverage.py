"""Cost of the free leg geometry's coverage graph (physics/leg_coverage.py) alone.

    python bench/bench_leg_coverage.py [--pixels 96 128 192]

For the Effelsberg preset with the default fit bounds (half-width 0.5-2.0 × 1 m, shade
half-angle 20 ± 10°) on aperture grids of ``--pixels`` across: the construction time, the
pixels whose coverage can change, the edge pixels integrated per evaluation, and the thread
CPU time of the compiled (C backend) coverage and of coverage + gradient (a random
weighting of the pixels), minimum of three 1-s rounds; then the largest difference from
the NumPy coverage (``ApertureGrid.coverage``) at a point inside the bounds.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _cpu_ms(fn, *args) -> float:
    fn(*args)
    best = np.inf
    for _ in range(3):
        t0, k = time.thread_time(), 0
        while time.thread_time() - t0 < 1.0:
            fn(*args)
            k += 1
        best = min(best, (time.thread_time() - t0) / k * 1e3)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pixels", type=int, nargs="+", default=[96, 128, 192])
    args = p.parse_args()
    import pytensor
    import pytensor.tensor as pt

    from bayesoof.physics.aperture import ApertureGrid
    from bayesoof.physics.leg_coverage import LegCoverage
    from bayesoof.physics.telescope import get_telescope

    tel = get_telescope("effelsberg")
    bounds = {"leg_half_width": (0.5, 2.0), "shade_half_angle": (10.0, 30.0)}
    print(f"load average {os.getloadavg()[0]:.2f}")
    for n in args.pixels:
        grid = ApertureGrid.across(tel.radius, n)
        t0 = time.perf_counter()
        lc = LegCoverage(grid, tel, bounds)
        t_init = time.perf_counter() - t0
        x, w = pt.dvector("x"), pt.dvector("w")
        cov = lc({"leg_half_width": x[0], "shade_half_angle": x[1]}).ravel()
        value = pytensor.function([x], cov)
        grad = pytensor.function([x, w], [cov, pytensor.grad(pt.dot(w, cov), x)])
        v = np.array([1.23, 17.3])
        weights = np.random.default_rng(0).normal(size=n * n)
        ref = grid.coverage(lc._with(dict(zip(bounds, v, strict=True)))).ravel()
        print(f"{n:4d} pixels across: construction {t_init:.2f} s, {lc.n_pixels} pixels can "
              f"change, {lc.n_edge} integrated per evaluation; value "
              f"{_cpu_ms(value, v):.2f} ms, value + gradient {_cpu_ms(grad, v, weights):.2f} ms "
              f"thread CPU; max |coverage - NumPy| {np.abs(value(v) - ref).max():.1e}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
