"""BLAS thread control for the small matrix products of the forward model."""

from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_limits

__all__ = ["blas_threads"]


@contextlib.contextmanager
def blas_threads(n: int = 1):
    """Limit BLAS threads (NumPy's products inside pytensor's C backend) to ``n``.

    ``n`` <= 0 leaves the thread pool alone.  The products are ~100-200 wide; on a busy
    2-core machine OpenBLAS's spinning threads made a gradient ~50× slower than one
    thread (bench/bench_forward.py: 144 ms vs 2.45 ms, pyoof example, order 5).
    """
    if n <= 0:
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield
