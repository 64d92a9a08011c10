"""Compiled objectives kept on disk between runs, keyed by graph inputs and code version.

Compiling the quick fit's residual-and-Jacobian function costs seconds per process, most of
it PyTensor's graph rewriting; a pickled compiled function skips the rewriting (PyTensor
re-links it from its own C module cache).  An entry is used only when everything the
graph depends on matches: the caller's key (geometry, telescope, order, illumination,
residual, ...; see ``bayesoof.inference.fit._fingerprint``) plus the versions of Python,
NumPy and PyTensor, PyTensor's mode flags, and a hash of bayesoof's own source files (any
code change invalidates every entry).

Location: ``$BAYESOOF_CACHE_DIR`` (set it to ``off`` to disable), else
``$XDG_CACHE_HOME/bayesoof/compiled`` or ``~/.cache/bayesoof/compiled``.  At most
:data:`MAX_ENTRIES` files are kept (least recently used removed); a file that cannot be
read is ignored and replaced.  Files are written atomically and only read from the
user's own cache directory.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import platform
import sys
import tempfile
import warnings
from pathlib import Path

__all__ = ["MAX_ENTRIES", "cache_dir", "load", "store"]

MAX_ENTRIES = 8


def cache_dir() -> Path | None:
    """Directory of the cached objectives, or None when disabled."""
    env = os.environ.get("BAYESOOF_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bayesoof" / "compiled"


@functools.lru_cache(maxsize=1)
def _environment() -> str:
    """Versions and flags the compiled graph depends on, and a hash of bayesoof's sources."""
    import numpy
    import pytensor

    h = hashlib.sha1()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    cfg = pytensor.config
    return repr((sys.version, platform.machine(), numpy.__version__, pytensor.__version__,
                 cfg.mode, cfg.linker, cfg.floatX, cfg.blas__ldflags, cfg.cxx, h.hexdigest()))


def _path(key: str) -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    digest = hashlib.sha1((key + _environment()).encode()).hexdigest()
    return d / f"objective-{digest}.pkl"


def load(key: str):
    """The object stored under ``key``, or None (absent, disabled or unreadable)."""
    path = _path(key)
    if path is None or not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh)
    except Exception:  # noqa: BLE001  (a stale or truncated entry: recompile)
        path.unlink(missing_ok=True)
        return None
    os.utime(path)  # most recently used
    return obj


def store(key: str, obj) -> None:
    """Store ``obj`` under ``key`` (best effort: a failure only warns)."""
    path = _path(key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pkl")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        entries = sorted(path.parent.glob("objective-*.pkl"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-MAX_ENTRIES]:
            old.unlink(missing_ok=True)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        warnings.warn(f"compiled objective not cached in {path.parent}: {exc}", stacklevel=2)
