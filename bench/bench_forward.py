"""Benchmark of the forward model: value + gradient of a sum of squared residuals.

Cases (``--case``, several allowed):

* ``example`` — pyoof's example file (3 maps on a 97 × 97 lattice; a simulation of the
  same geometry when ../shared is absent), order 5, methods direct / nufft / auto.
* ``goal5`` — order 5, 3 maps × 16 129 samples: the 127 × 127 lattice (direct) beside the
  same number of scattered samples (auto).  Issue 10: scattered within 2× of the lattice.
* ``goal10`` — order 10, 9 maps × 40 000 scattered samples (auto).  Issue 10: ≤ 50 ms on
  one core with the C backend; JAX reported beside it.

Every function of a case is compiled first, then called in interleaved rounds so that all
see the same load (the machine is shared); printed per function: median wall time, median
CPU time of the calling thread (``time.thread_time``: excludes the time spent waiting for a
core, the better figure on a loaded machine), compile time, and the cost model's
prediction (``bayesoof.physics.transforms.COSTS``).  The load average is printed at the
start and the end.

``--calibrate`` times each transform alone over a range of sizes and fits the constants of
the cost model (non-negative least squares on the CPU times).

    python bench/bench_forward.py [--case example goal5 goal10] [--backends C JAX]
                                  [--rounds 20] [--calibrate] [--blas-threads 1]

BLAS is limited to one thread by default, as the fit and the samplers do (pass
--blas-threads 0 to leave the BLAS thread pool alone).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
from threadpoolctl import threadpool_limits

from bayesoof.data.containers import BeamMap, BeamMaps
from bayesoof.data.fitsio import read_beam_maps
from bayesoof.physics import transforms
from bayesoof.physics.forward import ForwardModel
from bayesoof.testing import shared_dir

warnings.filterwarnings("ignore")
PYOOF_EXAMPLE = shared_dir() / "data" / "pyoof_example0.fits"
WAVELENGTH = 0.0093685  # m, pyoof's example (32 GHz)
RADIUS = 50.0  # Effelsberg, m


def geometry(n_maps: int, samples: int, scattered: bool, d_z, extent=9.5, seed=0) -> BeamMaps:
    """Sample positions over ±extent λ/(2R) (lattice or uniform scatter); beam values 0."""
    rng = np.random.default_rng(seed)
    half = extent * WAVELENGTH / (2 * RADIUS)
    maps = []
    for i, dz in enumerate(d_z):
        if scattered:
            u, v = rng.uniform(-half, half, (2, samples))
        else:
            side = np.linspace(-half, half, int(round(np.sqrt(samples))))
            uu, vv = np.meshgrid(side, side, indexing="ij")
            u, v = uu.ravel(), vv.ravel()
        maps.append(BeamMap(u, v, np.zeros(u.size), float(dz), name=f"map{i}"))
    return BeamMaps(tuple(maps), WAVELENGTH)


def cases(names):
    """{case: (order, [(data label, data, method), ...])} for the case names asked."""
    out = {}
    if "example" in names:
        if PYOOF_EXAMPLE.is_file():
            data, label = read_beam_maps(PYOOF_EXAMPLE), "pyoof_example0 3x97^2"
        else:
            data = geometry(3, 97 * 97, False, (-0.022, 0.0, 0.022))
            label = "simulated 3x97^2"
        out["example"] = (5, [(label, data, m) for m in ("direct", "nufft", "auto")])
    if "goal5" in names:
        dz = (-0.022, 0.0, 0.022)
        lattice = geometry(3, 127 * 127, False, dz)
        scattered = geometry(3, 16129, True, dz)
        out["goal5"] = (5, [("3x127^2 lattice", lattice, "direct"),
                            ("3x127^2 lattice", lattice, "auto"),
                            ("3x16129 scattered", scattered, "auto")])
    if "goal10" in names:
        dz = np.linspace(-0.032, 0.032, 9)
        out["goal10"] = (10, [("9x40000 scattered", geometry(9, 40000, True, dz), "auto")])
    return out


def compile_case(data, order, method, mode):
    """Value + gradient (K, c_dB) of Σ (P - obs)²; returns (fm, fn, args, compile s)."""
    fm = ForwardModel(data, "effelsberg", order, method=method)
    K = pt.dvector("K")
    c_db = pt.dscalar("c_dB")
    power = fm.power(K, {"c_dB": c_db, "q": 1.4, "x0": 0.0, "y0": 0.0})
    obs = fm.observed / max(float(np.max(fm.observed)), 1e-300)
    loss = pt.sum((power - obs) ** 2)
    t0 = time.perf_counter()
    fn = pytensor.function([K, c_db], [loss, *pt.grad(loss, [K, c_db])], mode=mode)
    args = (np.random.default_rng(2).normal(0, 0.03, len(fm.nl)), -14.5)
    [np.asarray(o) for o in fn(*args)]
    return fm, fn, args, time.perf_counter() - t0


def interleaved(fns, rounds):
    """Median wall and thread-CPU seconds of each ``(fn, args)``, called in turn."""
    wall = [[] for _ in fns]
    cpu = [[] for _ in fns]
    for _ in range(rounds):
        for k, (fn, args) in enumerate(fns):
            t0, c0 = time.perf_counter(), time.thread_time()
            [np.asarray(o) for o in fn(*args)]  # block on JAX's asynchronous dispatch
            cpu[k].append(time.thread_time() - c0)
            wall[k].append(time.perf_counter() - t0)
    return [float(np.median(w)) for w in wall], [float(np.median(c)) for c in cpu]


def run_cases(names, backends, rounds):
    modes = {"C": None, "JAX": "JAX"}
    for case, (order, entries) in cases(names).items():
        rows, fns = [], []
        for label, data, method in entries:
            for backend in backends:
                fm, fn, args, comp = compile_case(data, order, method, modes[backend])
                rows.append((label, method, backend, comp, fm))
                fns.append((fn, args))
        wall, cpu = interleaved(fns, rounds)
        print(f"\n{case}: order {order}, value + gradient, {rounds} interleaved rounds")
        print(f"{'data':<22s} {'method':<7s} {'backend':<7s} {'wall ms':>8s} {'cpu ms':>8s}"
              f" {'model ms':>8s} {'compile s':>9s}  discretisation")
        for (label, method, backend, comp, fm), w, c in zip(rows, wall, cpu, strict=True):
            pred = 1e3 * getattr(fm, "predicted_seconds", float("nan"))
            print(f"{label:<22s} {method:<7s} {backend:<7s} {1e3 * w:8.2f} {1e3 * c:8.2f}"
                  f" {pred:8.2f} {comp:9.1f}  {fm.describe()}")


# ------------------------------------------------------------------ calibration
def _transform_fn(t, n):
    er, ei = pt.dmatrix("er"), pt.dmatrix("ei")
    fr, fi = t(er, ei)
    loss = pt.sum(fr**2 + fi**2)
    fn = pytensor.function([er, ei], [loss, *pt.grad(loss, [er, ei])])
    rng = np.random.default_rng(1)
    return fn, (rng.normal(size=(n, n)), rng.normal(size=(n, n)))


def calibrate(rounds):
    """Fit COSTS: CPU seconds = Σ_k count_k × cost_k over transforms of several sizes."""
    from scipy.optimize import nnls

    x = (np.arange(96) - 47.5) * 1.0417
    rng = np.random.default_rng(3)
    half = 9.5 * WAVELENGTH / (2 * RADIUS)
    entries = []  # (label, transform, features: gemm MACs, kernel taps, elementwise, call)
    for m in (1000, 4000, 16000, 40000):
        u, v = rng.uniform(-half, half, (2, m))
        t = transforms.NUFFT(x, WAVELENGTH, u, v)
        w = t.width
        entries.append((f"nufft M={m}", t,
                        (3 * transforms.LatticeDFT.count_macs(96, t.dft.nu, t.dft.nv),
                         4 * m * w * w, 0, 1)))
    for side in (31, 63, 97, 127, 161):
        grid = geometry(1, side * side, False, (0.0,)).maps[0].grid()
        t = transforms.DirectGrid(x, WAVELENGTH, grid)
        entries.append((f"lattice {side}^2", t,
                        (3 * transforms.LatticeDFT.count_macs(96, side, side), 0, 0, 1)))
    for m in (300, 1000, 3000):
        u, v = rng.uniform(-half, half, (2, m))
        t = transforms.DirectScatter(x, WAVELENGTH, u, v)
        entries.append((f"scatter M={m}", t, (3 * 4 * 96 * 96 * m, 0, 3 * 6 * 96 * m, 1)))
    fns = [_transform_fn(t, 96) for _, t, _ in entries]
    _, cpu = interleaved(fns, rounds)
    a = np.array([f for *_, f in entries], float)
    b = np.array(cpu)
    scale = a.max(axis=0)
    scale[scale == 0] = 1
    sol, _ = nnls(a / scale / b[:, None], np.ones_like(b))  # relative residuals
    costs = dict(zip(("gemm_mac", "kernel_tap", "elementwise", "call"), sol / scale, strict=True))
    print("\ncalibration (CPU time of value + gradient of each transform alone)")
    for (label, _, f), c in zip(entries, cpu, strict=True):
        pred = sum(fk * ck for fk, ck in zip(f, costs.values(), strict=True))
        print(f"  {label:<16s} measured {1e3 * c:8.3f} ms   model {1e3 * pred:8.3f} ms")
    print("COSTS = {" + ", ".join(f'"{k}": {v:.3g}' for k, v in costs.items()) + "}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", nargs="+", default=["example", "goal5"],
                    choices=["example", "goal5", "goal10"])
    ap.add_argument("--backends", nargs="+", default=["C", "JAX"], choices=["C", "JAX"])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calibrate", action="store_true", help="fit the cost model's constants")
    ap.add_argument("--blas-threads", type=int, default=1, help="0: leave BLAS threads alone")
    args = ap.parse_args(argv)
    if args.blas_threads > 0:
        threadpool_limits(limits=args.blas_threads, user_api="blas")
    backends = list(args.backends)
    if "JAX" in backends:
        try:
            import bayesoof.physics.jax_ops  # noqa: F401  (JAX versions of the Ops)
        except ImportError:
            backends.remove("JAX")
    print(f"pytensor {pytensor.__version__}, BLAS threads: {args.blas_threads or 'default'}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.calibrate:
        calibrate(args.rounds)
    else:
        run_cases(args.case, backends, args.rounds)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
