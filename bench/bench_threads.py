"""How well the C-compiled sampler density runs in several threads (nutpie's chains).

nutpie runs its chains as threads calling the PyTensor function; the C thunks hold Python's
GIL, NumPy's products release it.  This fits FILE (order 5, default configuration), builds
the Laplace-whitened density the samplers use, and calls copies of its log p + gradient
from 1, 2 and 4 threads at the MAP, printing wall and CPU (user, sys) per gradient and the
cores used.

With ``--processes P ...`` it runs nutpie itself (the default NUTS: one sampler per chain,
the chains spread over P worker processes, P = 1: threads of this process) for ``--tune``
+ ``--draws`` iterations of 4 chains, and prints wall and CPU (this process and its
workers) per gradient and the cores used.

Run:  python bench/bench_threads.py lat127.fits [--calls 150] [--threads 1 2 4]
      python bench/bench_threads.py lat127.fits --threads --processes 1 2 4 [--draws 200]
"""

from __future__ import annotations

import argparse
import resource
import threading
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--telescope", default="effelsberg")
    ap.add_argument("--calls", type=int, default=150, help="gradients per thread")
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2, 4])
    ap.add_argument("--processes", type=int, nargs="*", default=[],
                    help="run nutpie's 4 chains in this many worker processes (1: threads)")
    ap.add_argument("--pymc-cores", type=int, nargs="*", default=[],
                    help="also run PyMC's NUTS (4 chains) in this many worker processes")
    ap.add_argument("--tune", type=int, default=100)
    ap.add_argument("--draws", type=int, default=200)
    a = ap.parse_args()

    from bayesoof.data.fitsio import read_beam_maps
    from bayesoof.inference.density import AffineDensity, compile_function
    from bayesoof.inference.fit import fit
    from bayesoof.inference.laplace import laplace
    from bayesoof.inference.model import build_model
    from bayesoof.inference.threads import blas_threads

    with blas_threads(1):
        model = build_model(fit(read_beam_maps(a.file), a.telescope, order=5))
        lap = laplace(model)
        dens = AffineDensity(model, lap.u_mode, np.linalg.cholesky(lap.cov))
        fn = compile_function([dens.z], [dens.logp_graph, dens.grad_graph], mode="FAST_RUN")
        z = np.zeros(dens.dim)

        def work(f):
            for _ in range(a.calls):
                f(z)

        print(f"{a.file}: {dens.dim} parameters, {a.calls} gradients per thread")
        for n in a.threads:
            fns = [fn.copy() for _ in range(n)]  # one per thread, as nutpie's chains
            for f in fns:
                f(z)
            r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            threads = [threading.Thread(target=work, args=(f,)) for f in fns]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - w0
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            user, sys_ = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
            k = 1e3 / (a.calls * n)
            print(f"{n} thread(s): wall {wall * k:.2f} ms per gradient, CPU user {user * k:.2f}"
                  f" + sys {sys_ * k:.2f} ms per gradient, {(user + sys_) / wall:.2f} cores")
        for p in a.processes:
            sampler_run(dens, "nutpie", {"processes": p}, a.tune, a.draws)
        for p in a.pymc_cores:
            sampler_run(dens, "pymc", {"cores": p}, a.tune, a.draws)


def sampler_run(dens, sampler: str, options: dict, tune: int, draws: int) -> None:
    """4 chains of ``sampler`` (nutpie or PyMC): wall and CPU per gradient, cores used."""
    from bayesoof.inference.sample import run_sampler

    def cpu():
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
            resource.RUSAGE_CHILDREN)
        return s.ru_utime + c.ru_utime, s.ru_stime + c.ru_stime

    u0, s0 = cpu()
    raw = run_sampler(dens, sampler, draws=draws, tune=tune, chains=4, seed=1, **options)
    u1, s1 = cpu()
    wall, n = raw.sampling_time, raw.n_grad
    k = 1e3 / n
    print(f"{sampler} {options}, 4 chains: {n} gradients, sampling {wall:.1f} s:"
          f" wall {wall * k:.2f} ms per gradient, CPU user {(u1 - u0) * k:.2f} + sys "
          f"{(s1 - s0) * k:.2f} ms per gradient, {(u1 - u0 + s1 - s0) / wall:.2f} cores")


if __name__ == "__main__":
    main()
