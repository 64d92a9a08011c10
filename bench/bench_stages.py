"""Where a whole ``bayesoof sample`` process spends its time: wall and CPU per stage.

Runs the command line in this process (``bayesoof sample FILE --telescope T --order 5
--quiet --out DIR`` plus any extra arguments) with timers around its stages: reading the
data, the quick fit (orders 1..N), saving it, the Laplace step (building and compiling
the density), re-whitening it, the sampler (warm-up and draws; the CPU of its worker
processes is counted when they end), assembling the posterior (diagnostics, products),
and writing the run directory.  Imports are timed before the first stage; "other" is
the rest of the process (printing, imports done inside the stages are in the stage).

Run:  python bench/bench_stages.py lat127.fits [--out DIR] [-- --seed 1 ...]
"""

from __future__ import annotations

import argparse
import importlib
import resource
import sys
import tempfile
import time
from contextlib import contextmanager

ROWS: list[tuple[float, str, float, float, float]] = []  # (start, name, wall, CPU, workers)


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


@contextmanager
def stage(name: str):
    w0, (c0, k0) = time.perf_counter(), _cpu()
    try:
        yield
    finally:
        c1, k1 = _cpu()
        ROWS.append((w0, name, time.perf_counter() - w0, c1 - c0, k1 - k0))


def wrap(owner, attr: str, name: str) -> None:
    """Time every call of ``owner.attr`` as stage ``name``."""
    fn = getattr(owner, attr)

    def timed(*a, **k):
        with stage(name):
            return fn(*a, **k)

    setattr(owner, attr, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--telescope", default="effelsberg")
    ap.add_argument("--order", default="5")
    ap.add_argument("--out", default=None, help="run directory parent (default: a temp dir)")
    ap.add_argument("extra", nargs="*", help="more arguments of 'bayesoof sample' (after --)")
    a = ap.parse_args()
    w0, (c0, k0) = time.perf_counter(), _cpu()
    with stage("imports (cli, numpy, astropy)"):
        from bayesoof.cli import app
    with stage("imports (pytensor, pymc, arviz, samplers)"):
        for mod in ("bayesoof.inference.sample", "bayesoof.inference.posterior",
                    "bayesoof.inference.fit", "arviz", "nutpie"):
            importlib.import_module(mod)
    cli_sample = importlib.import_module("bayesoof.cli.sample")
    smp = importlib.import_module("bayesoof.inference.sample")
    post = importlib.import_module("bayesoof.inference.posterior")
    rec = importlib.import_module("bayesoof.inference.results.record")
    wrap(cli_sample, "load_inputs", "read the data")
    wrap(cli_sample, "run_fit", "quick fit (orders 1..N)")
    wrap(smp, "laplace", "Laplace (density built + compiled)")
    wrap(smp, "_whitened", "sampler density (re-whitened)")
    wrap(smp, "run_sampler", "sampler: warm-up + draws (+ workers' CPU)")
    wrap(post, "assemble", "assemble (diagnostics + products)")
    wrap(post.PosteriorResult, "compute_products", "  of which products")
    wrap(post.PosteriorResult, "save", "write posterior files")
    for cls in vars(rec).values():
        if isinstance(cls, type) and "save" in vars(cls) and cls.__module__ == rec.__name__:
            wrap(cls, "save", "write the quick fit's files")
    out = a.out or tempfile.mkdtemp(prefix="bench_stages_")
    argv = ["sample", a.file, "--telescope", a.telescope, "--order", a.order, "--quiet",
            "--out", out, *a.extra]
    app.main(argv)
    wall, (c1, k1) = time.perf_counter() - w0, _cpu()
    total_cpu, kids = c1 - c0, k1 - k0
    print(f"\n{'stage':48s} {'wall s':>8s} {'CPU s':>8s} {'of it workers':>13s}",
          file=sys.stderr)
    seen_wall = seen_cpu = 0.0
    for _, name, w, c, k in sorted(ROWS):  # in order of start: a part after its whole
        print(f"{name:48s} {w:8.1f} {c + k:8.1f} {k:13.1f}", file=sys.stderr)
        if not name.startswith("  "):
            seen_wall, seen_cpu = seen_wall + w, seen_cpu + c + k
    print(f"{'other':48s} {wall - seen_wall:8.1f} {total_cpu + kids - seen_cpu:8.1f}",
          file=sys.stderr)
    print(f"{'whole process':48s} {wall:8.1f} {total_cpu + kids:8.1f} {kids:13.1f}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
