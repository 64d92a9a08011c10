"""Benchmark of the quick fit: orders 1 -> 5 on pyoof's example and on the bundled example.

    python bench/bench_fit.py [--order 5] [--repeat 2]

* pyoof's example (``shared/data/pyoof_example0.fits``: Effelsberg, 32 GHz, 3 maps of
  97 x 97, no σ in the file, so σ is estimated): parabolic taper, pyoof's free/fixed set
  (preset ``pyoof``: c_dB, q, K(1,±1) free; x0, y0, K(0,0) fixed; i_amp -> per-map a_i).
* the bundled example (``bayesoof.simulate.example_path()``: 3 maps of 61 x 61, σ in the
  file, truth of order 4): default configuration.

Each fit is run ``--repeat`` times in one process.  The first run includes building the
PyTensor graph of the residuals and their Jacobian and compiling it (C backend); later
runs reuse the compiled function (same geometry), so their time is the fit alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--order", type=int, default=5)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    import pytensor

    from bayesoof.simulate import example_path

    print(f"bayesoof quick-fit benchmark; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; PyTensor "
          f"{pytensor.__version__}, linker {pytensor.config.linker}, BLAS threads 1 while fitting")
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


if __name__ == "__main__":
    main()
