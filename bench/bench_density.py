"""Cost of the posterior density: value + gradient with the leg geometry held or sampled.

    python bench/bench_density.py [FILE] [--order 5] [--rounds 3]

Fits FILE (default: a simulated 3 × 127 × 127 Effelsberg lattice, order-5 aberrations of
0.05 waves rms per term, SNR 200) with the default quick fit, builds the PyMC model twice -- the leg
half-width and shade angle sampled (the default) and held at the fit's values
(``sample_legs=False``) -- and times the compiled C-backend ``z -> (logp, dlogp/dz)`` of
each at the whitening centre: thread CPU time per call (``time.thread_time``, the figure to
compare on a loaded machine), the minimum of ``--rounds`` rounds of 1.5 s each.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", nargs="?")
    p.add_argument("--order", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    from bayesoof.inference.fit import fit
    from bayesoof.inference.laplace import laplace
    from bayesoof.inference.model import build_model
    from bayesoof.simulate import random_coefficients, simulate

    data = args.file or simulate("effelsberg", random_coefficients(5, seed=3), n_grid=127)
    res = fit(data, "effelsberg", order=args.order)
    print(f"load average {os.getloadavg()[0]:.2f}; {res.forward.describe()}")
    for legs in (True, False):
        lap = laplace(build_model(res, sample_legs=legs), mode="FAST_RUN")
        fn = lap.density.logp_dlogp("FAST_RUN")
        z = np.zeros(lap.u_mode.size)
        fn(z)
        times = []
        for _ in range(args.rounds):
            t0, k = time.thread_time(), 0
            while time.thread_time() - t0 < 1.5:
                fn(z)
                k += 1
            times.append((time.thread_time() - t0) / k * 1e3)
        print(f"legs {'sampled' if legs else 'held   '}: {z.size} dimensions, value + gradient "
              f"{min(times):.2f} ms thread CPU (rounds: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
