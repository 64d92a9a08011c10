"""Benchmark of the forward model: value + gradient of a sum of squared residuals.

Order 5, the 3 maps of 97 × 97 points of pyoof's example file (or a simulation of the same
shape when ../shared is absent), for each transform path (direct DFT, FFT2) and each
backend (PyTensor C, JAX).  Prints ms per evaluation (median of repeats, JAX outputs
blocked on) and the compile time.  Also times scattered samples (same count).

    python bench/bench_forward.py [--repeats 30] [--scattered] [--blas-threads 1]

BLAS is limited to one thread by default, as the fit and the samplers do: the matrix
products are small, and on a 2-core machine OpenBLAS's spinning threads made them tens of
times slower (pass --blas-threads 0 to leave the BLAS thread pool alone).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
from threadpoolctl import threadpool_limits

import bayesoof  # noqa: F401  (registers the JAX FFT Ops)
from bayesoof.data.fitsio import read_beam_maps
from bayesoof.physics.forward import ForwardModel
from bayesoof.simulate import random_coefficients, simulate
from bayesoof.testing import shared_dir

warnings.filterwarnings("ignore")
PYOOF_EXAMPLE = shared_dir() / "data" / "pyoof_example0.fits"


def load(scattered: bool):
    if PYOOF_EXAMPLE.is_file() and not scattered:
        return read_beam_maps(PYOOF_EXAMPLE), "pyoof_example0.fits (3 x 97 x 97)"
    data = simulate(
        "effelsberg", random_coefficients(5, 0.03, 1), 0.0093685, n_grid=97,
        scatter=scattered, snr=200, seed=1,
    )
    return data, f"simulated 3 x 9409 {'scattered' if scattered else 'lattice'} samples"


def time_call(fn, args, repeats):
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        [np.asarray(o) for o in out]  # block on JAX's asynchronous dispatch
        samples.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(samples))


def bench(data, method, mode, repeats):
    fm = ForwardModel(data, "effelsberg", 5, method=method)
    K = pt.dvector("K")
    c_db = pt.dscalar("c_dB")
    power = fm.power(K, {"c_dB": c_db, "q": 1.4, "x0": 0.0, "y0": 0.0})
    obs = fm.observed / fm.observed.max()
    loss = pt.sum((power - obs) ** 2)
    grads = pt.grad(loss, [K, c_db])
    t0 = time.perf_counter()
    fn = pytensor.function([K, c_db], [loss, *grads], mode=mode)
    args = (random_coefficients(5, 0.03, 2), -14.5)
    np.asarray(fn(*args)[0])
    compile_s = time.perf_counter() - t0
    return fm, compile_s, time_call(fn, args, repeats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--scattered", action="store_true", help="also time scattered samples")
    ap.add_argument("--blas-threads", type=int, default=1, help="0: leave BLAS threads alone")
    args = ap.parse_args(argv)
    if args.blas_threads > 0:
        threadpool_limits(limits=args.blas_threads, user_api="blas")
    try:
        import jax  # noqa: F401

        import bayesoof.physics.jax_ops  # noqa: F401  (JAX versions of pytensor's FFT Ops)

        modes = ["FAST_RUN", "JAX"]
    except ImportError:
        modes = ["FAST_RUN"]
    cases = [False, True] if args.scattered else [False]
    print(
        f"pytensor {pytensor.__version__}, blas ldflags: {pytensor.config.blas__ldflags!r}, "
        f"BLAS threads: {args.blas_threads or 'default'}"
    )
    for scattered in cases:
        data, label = load(scattered)
        print(f"\n{label}, order 5 (21 K), value + gradient of sum of squared residuals")
        print(f"{'method':<8s} {'backend':<9s} {'ms/eval':>9s} {'compile s':>10s}  discretisation")
        for method in ("direct", "fft"):
            for mode in modes:
                fm, comp, ms = bench(data, method, mode, args.repeats)
                backend = "C" if mode == "FAST_RUN" else mode
                print(f"{method:<8s} {backend:<9s} {ms:9.2f} {comp:10.1f}  {fm.describe()}")


if __name__ == "__main__":
    main()
