"""Benchmark of the quick fit: orders 1 -> 5 on pyoof's example and on the bundled example.

    python bench/bench_fit.py [--order 5] [--repeat 2]

* pyoof's example (``shared/data/pyoof_example0.fits``: Effelsberg, 32 GHz, 3 maps of
  97 x 97, no σ in the file, so σ is estimated): parabolic taper, pyoof's free/fixed set
  (preset ``pyoof``: c_dB, q, K(1,±1) free; x0, y0, K(0,0) fixed; i_amp -> per-map a_i).
* the bundled example (``bayesoof.simulate.example_path()``: 3 maps of 61 x 61, σ in the
  file, truth of order 4): default configuration.

Each fit is run ``--repeat`` times in one process.  The first run includes building the
PyTensor graph of the residuals and their Jacobian and compiling it (C backend) -- or
loading it from the on-disk cache of an earlier run (``bayesoof.inference.compiled_cache``);
later runs reuse the compiled function (same geometry), so their time is the fit alone.

``--cli`` also times the whole command ``bayesoof fit FILE --telescope effelsberg`` in fresh
processes (``--cli-repeat`` each, the first one possibly compiling, the later ones loading
the compiled objective from disk): wall and CPU (user + sys) seconds of the process, its
peak RSS, and wall / CPU seconds of each stage inside it: imports, reading the input,
compiling (or loading) the objective, solving (orders 1..N, adequacy test, misfit
covariance) and writing the run directory; on pyoof's example and on a real-looking
on-the-fly observation of 3 × 10 000 scattered samples (``bench/otf_scan.py``).  CPU
seconds are the figure to compare on a loaded machine (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bayesoof.testing import shared_dir

PYOOF_EXAMPLE = shared_dir() / "data" / "pyoof_example0.fits"


def _report(label: str, result, total: float) -> None:
    st = result.statistics
    print(f"  {label}: total {total:.2f} s = compile {result.compile_time:.2f} s + "
          f"fit {total - result.compile_time:.2f} s")
    print("    order  n_free  iterations  evaluations          chi2   chi2/dof   time [s]")
    for o in result.orders:
        print(f"    {o.order:5d}  {int(o.space.free.sum()):6d}  {o.n_iter:10d}  {o.n_eval:11d}"
              f"  {o.chi2:12.1f}  {o.reduced_chi2:9.4f}  {o.wall_time:9.3f}"
              + ("" if o.converged else "  NOT CONVERGED"))
    print(f"    rms phase {st['phase_rms']:.4f} ± {st['phase_rms_sd']:.4f} rad (plain), "
          f"{st['phase_rms_weighted']:.4f} rad (illumination-weighted); rms surface "
          f"{st['surface_rms']:.1f} µm; Ruze {st['ruze_weighted']:.4f}")


def run(path, label: str, config, order: int, repeat: int) -> list[float]:
    from bayesoof.data.fitsio import read_beam_maps
    from bayesoof.inference.fit import fit

    data = read_beam_maps(path)
    print(f"\n{label}: {path}")
    print("  " + data.describe().replace("\n", "\n  "))
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        result = fit(data, "effelsberg", order=order, config=config)
        total = time.perf_counter() - t0
        times.append(total - result.compile_time)
        how = "compiles" if result.compile_time else "compiled function cached"
        _report(f"run {i + 1} ({how})", result, total)
        if i == 0:
            print(f"    forward model: {result.forward.describe()}; σ "
                  f"{', '.join(result.sigma_origin)}; config {result.config['source']}")
    K = result.K
    print("    K [waves]: " + " ".join(f"{k:+.4f}" for k in K))
    return times


_CHILD = """
import json, sys, time
_t = {}
def _stage(name, t0, c0):
    w, c = _t.get(name, (0.0, 0.0))
    _t[name] = (w + time.perf_counter() - t0, c + time.process_time() - c0)
def _timed(owner, attr, name):
    f = getattr(owner, attr)
    def wrapper(*a, **k):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return f(*a, **k)
        finally:
            _stage(name, t0, c0)
    setattr(owner, attr, wrapper)
t0, c0 = time.perf_counter(), time.process_time()
import bayesoof.cli.fit as cli_fit
import bayesoof.data.fitsio, bayesoof.inference.fit as fit_mod
import bayesoof.inference.results.rundir, bayesoof.inference.results.record as record
import astropy.io.fits, h5netcdf
from bayesoof.cli import main
_stage("import", t0, c0)
_timed(cli_fit, "load_inputs", "read")
_timed(fit_mod, "fit", "fit")
_timed(fit_mod, "_objective", "compile")
_timed(record.FitResult, "save", "write")
sys.argv = ["bayesoof", "fit", *sys.argv[1:]]
t0 = time.perf_counter()
status = main()
_stage("main", t0, time.process_time())
w, c = _t.pop("fit")
_t["solve"] = (w - _t["compile"][0], c - _t["compile"][1])
print(json.dumps({"status": status, **_t}))
"""

STAGES = ("import", "read", "compile", "solve", "write")


def cli_runs(path: Path, label: str, repeat: int, out: Path) -> None:
    """Time ``bayesoof fit`` in fresh processes (see the module docstring)."""
    print(f"\nwhole process: bayesoof fit {path.name} --telescope effelsberg ({label})")
    print("    stages: wall s / CPU s of the process's threads; 'cpu s': user + sys of the "
          "whole process, compiler runs included")
    print("    run   wall s    cpu s  " + "  ".join(f"{s:>12s}" for s in STAGES)
          + "  peak RSS MB")
    for i in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), "--telescope", "effelsberg", "--quiet",
             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        stdout = proc.stdout.read()
        proc.stdout.close()
        if status != 0:
            print(f"    {i + 1:3d}  failed (status {status})")
            continue
        inner = json.loads(stdout.strip().splitlines()[-1])
        cells = "  ".join(f"{inner[s][0]:5.2f} / {inner[s][1]:4.2f}" for s in STAGES)
        print(f"    {i + 1:3d}  {wall:7.2f}  {usage.ru_utime + usage.ru_stime:7.2f}  {cells}"
              f"  {usage.ru_maxrss / 1024:11.0f}")
    print(f"    (load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; 'compile' is "
          "compiling the objective or loading it from the disk cache; 'solve' the fit of "
          "orders 1..N with the adequacy test and misfit covariance; 'write' the run "
          "directory; the rest of the process is Python's start and exit)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--order", type=int, default=5)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--cli", action="store_true", help="also time whole `bayesoof fit` processes")
    p.add_argument("--cli-repeat", type=int, default=3)
    p.add_argument("--cli-only", action="store_true", help="only the whole-process timings")
    args = p.parse_args()
    t0 = time.perf_counter()
    import pytensor

    import bayesoof.inference.fit  # noqa: F401  (timed: the quick fit's imports)

    import_s = time.perf_counter() - t0

    from bayesoof.simulate import example_path

    print(f"bayesoof quick-fit benchmark; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; PyTensor "
          f"{pytensor.__version__}, linker {pytensor.config.linker}, BLAS threads 1 while fitting")
    print(f"imports of the quick fit (pytensor, scipy, astropy, bayesoof): {import_s:.2f} s")
    if args.cli or args.cli_only:
        with tempfile.TemporaryDirectory() as tmp:
            if PYOOF_EXAMPLE.exists():
                cli_runs(PYOOF_EXAMPLE, "pyoof's example, default config", args.cli_repeat,
                         Path(tmp))
            sys.path.insert(0, str(Path(__file__).parent))
            from otf_scan import otf_observation

            from bayesoof.data.fitsio import write_beam_maps

            otf = Path(tmp) / "otf_3x10000.fits"
            write_beam_maps(otf_observation(10000)[0], otf)
            cli_runs(otf, "on-the-fly, 3 x 10 000 scattered samples", args.cli_repeat, Path(tmp))
        if args.cli_only:
            return
    summary = {}
    if PYOOF_EXAMPLE.exists():
        summary["pyoof example"] = run(PYOOF_EXAMPLE, "pyoof example (preset 'pyoof')", "pyoof",
                                       args.order, args.repeat)
    else:
        print(f"\n{PYOOF_EXAMPLE} not found: skipped")
    summary["bundled example"] = run(example_path(), "bundled example (default config)", None,
                                     args.order, args.repeat)
    print(f"\nfit time of orders 1..{args.order} without compilation [s]:")
    for k, v in summary.items():
        print(f"  {k:16s} " + "  ".join(f"{t:.2f}" for t in v) + f"   (best {np.min(v):.2f})")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (all fits): {rss:.0f} MB; load average now "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
