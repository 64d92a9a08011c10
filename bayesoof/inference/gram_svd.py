"""The SVD inside scipy's trust-region step, from the Gram matrix: several times cheaper.

:func:`scipy.optimize.least_squares` ('trf', ``tr_solver='exact'``) takes, at every
Jacobian, the SVD of the scaled Jacobian with n diagonal rows appended, an (m + n) × n
matrix.  The quick fit's Jacobians are tall (pyoof's example: 28 227 × 41), and LAPACK's
SVD of such a matrix costs ~38 ms on one core here, against ~3 ms for the Gram matrix
``AᵀA`` (one product) whose eigen-decomposition gives the same V and s (``s² = eig``),
with ``U = A V / s`` (one more product; scipy only takes ``Uᵀf`` from it, so it is left
unformed, :class:`ProjectingU`).  Measured on pyoof's example (orders 1 -> 5, 46
Jacobians): 0.4-0.8 s of the fit.

Forming ``AᵀA`` squares the condition number: an eigenvalue is accurate to ~1e-16 of the
largest, so a singular value ``s`` to ~1e-16 s_max² / s² relative, and the step the solver
builds from them, ``V (Uᵀf / s)`` = the normal-equations solution, to ~1e-16 (s_max /
s_min)².  The Gram route is taken only when ``s_min / s_max >= 1e-6`` (the step then to
~1e-4 relative at worst, and the trust region accepts or rejects it on the real cost
anyway; pyoof's example: 2.3e-4 at worst over its 46 Jacobians, so 2e-9); otherwise, and
for matrices that are not tall, scipy's own SVD runs.
The Laplace covariance of a result is not affected: :func:`bayesoof.inference.fit.
laplace_covariance` takes its own SVD (of the Jacobian's QR factor R, no Gram matrix).

:func:`trf_gram_svd` routes the ``svd`` of scipy's ``trf`` module through
:func:`gram_svd` inside the ``with`` block and in the calling thread only; elsewhere (other
threads, other callers of least_squares) scipy's SVD runs unchanged.  With a scipy whose
``trf`` module has no ``svd`` to route, the block is a no-op (:data:`AVAILABLE` False).
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import scipy.linalg

__all__ = ["AVAILABLE", "ProjectingU", "gram_svd", "trf_gram_svd"]

MIN_RATIO = 1e-6  # s_min / s_max below which the exact SVD is taken (see the module docstring)
MIN_ROWS_PER_COLUMN = 8  # m >= 8 n: below that the SVD is cheap already

try:  # scipy's private module: where its trust-region-reflective solver looks the SVD up
    from scipy.optimize._lsq import trf as _trf

    _SCIPY_SVD = _trf.svd
    AVAILABLE = True
except (ImportError, AttributeError):  # pragma: no cover  (another scipy layout)
    _trf, _SCIPY_SVD, AVAILABLE = None, scipy.linalg.svd, False

_state = threading.local()
_install_lock = threading.Lock()


class ProjectingU:
    """``U = a V / s`` (m, n) left unformed: ``U.T.dot(f)`` is ``(Vᵀ (aᵀ f)) / s``.

    scipy's trust-region step uses its U only as ``U.T.dot(f)`` (one vector, at once), so
    forming U, an (m × n) product as large as the Gram matrix's, is waste (~3 ms per
    Jacobian of pyoof's example).  ``a`` is held by reference: the product is taken when
    asked, so ``a`` must not change in between (scipy asks on the next line).
    ``np.asarray(U)`` forms it.
    """

    def __init__(self, a: np.ndarray, v: np.ndarray, s: np.ndarray):
        self._a, self._v, self._s = a, v, s
        self.shape = (a.shape[0], s.size)

    @property
    def T(self):  # noqa: N802  (numpy's name)
        """Uᵀ, for ``.dot``."""
        return _ProjectingUT(self)

    def __array__(self, dtype=None, copy=None):
        u = (self._a @ self._v) / self._s
        return u if dtype is None else u.astype(dtype)


class _ProjectingUT:
    def __init__(self, u: ProjectingU):
        self._u = u
        self.shape = u.shape[::-1]

    def dot(self, f):
        """Uᵀ f for a vector or matrix ``f`` of ``a``'s rows."""
        u = self._u
        proj = u._v.T @ (u._a.T @ f)
        return proj / (u._s if np.ndim(proj) == 1 else u._s[:, None])


def gram_svd(a, full_matrices: bool = False, projecting_u: bool = False, **kwargs):
    """``U, s, Vᵀ`` of ``a`` (m, n) as :func:`scipy.linalg.svd` with ``full_matrices=False``.

    From the eigen-decomposition of ``aᵀa`` when ``a`` is tall and ``s_min / s_max >=``
    :data:`MIN_RATIO`; by scipy's SVD otherwise (and for ``full_matrices=True``).
    Singular values in decreasing order, as scipy returns them.  ``projecting_u``: U on
    the Gram route is a :class:`ProjectingU` (``U.T.dot`` only), not an array.
    """
    a = np.asarray(a, dtype=float)
    if full_matrices or a.ndim != 2 or a.shape[0] < MIN_ROWS_PER_COLUMN * a.shape[1]:
        return _SCIPY_SVD(a, full_matrices=full_matrices, **kwargs)
    w, v = np.linalg.eigh(a.T @ a)  # ascending
    w, v = w[::-1], v[:, ::-1]
    if not (np.all(np.isfinite(w)) and w[0] > 0 and w[-1] >= MIN_RATIO**2 * w[0]):
        return _SCIPY_SVD(a, full_matrices=False, **kwargs)
    s = np.sqrt(w)
    u = ProjectingU(a, v, s) if projecting_u else (a @ v) / s
    return u, s, np.ascontiguousarray(v.T)


def _routed_svd(a, *args, **kwargs):
    """scipy's trf module's ``svd``: :func:`gram_svd` inside :func:`trf_gram_svd`, else scipy's."""
    if getattr(_state, "depth", 0) > 0:  # trf uses U as U.T.dot(f) only, at once
        return gram_svd(a, *args, projecting_u=True, **kwargs)
    return _SCIPY_SVD(a, *args, **kwargs)


@contextlib.contextmanager
def trf_gram_svd():
    """Inside: scipy's least_squares ('trf', exact) takes its SVDs by :func:`gram_svd`.

    Only in the calling thread; re-entrant.  The router is installed in scipy's ``trf``
    module once (it calls scipy's own SVD outside these blocks).
    """
    if not AVAILABLE:
        yield
        return
    with _install_lock:
        if _trf.svd is not _routed_svd:
            _trf.svd = _routed_svd
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
