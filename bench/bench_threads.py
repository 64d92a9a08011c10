"""How well the C-compiled sampler density runs in several threads (nutpie's chains).

nutpie runs its chains as threads calling the PyTensor function; the C thunks hold Python's
GIL, NumPy's products release it.  This fits FILE (order 5, default configuration), builds
the Laplace-whitened density the samplers use, and calls copies of its log p + gradient
from 1, 2 and 4 threads at the MAP, printing wall and CPU (user, sys) per gradient and the
cores used.

Run:  python bench/bench_threads.py lat127.fits [--calls 150] [--threads 1 2 4]
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
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
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


if __name__ == "__main__":
    main()
