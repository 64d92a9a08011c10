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

Re-linking looks every C module up in PyTensor's module cache (``config.compiledir``),
whose first use in a process unpickles the key of *every* module ever compiled there
(seconds for a few hundred entries, and millions of objects that then slow every garbage
collection).  An entry therefore also records the module-cache directories its function
uses (``objective-*.modules`` adds those that loading it needed besides), and
:func:`load` lets PyTensor read only those keys (when nothing has used the module cache
yet in this process); a look-up that misses then, or later (another function compiled
afterwards), reads the whole cache as usual before anything is compiled.
"""

from __future__ import annotations

import atexit
import contextlib
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
            modules = set(pickle.load(fh)) | _loaded_with(path)  # module-cache entries used
            with _module_cache_reading(modules):
                obj = pickle.load(fh)
    except Exception:  # noqa: BLE001  (a stale or truncated entry: recompile)
        path.unlink(missing_ok=True)
        _sidecar(path).unlink(missing_ok=True)
        return None
    used = set(_module_entries())
    if not used <= modules:  # re-linking used modules the compiling process did not
        _note_loaded_with(path, used | modules)
    os.utime(path)  # most recently used
    return obj


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".modules")


def _loaded_with(path: Path) -> set:
    """Module-cache entries that earlier loads of ``path`` used.

    PyTensor may key a node differently once unpickled than when it compiled it.
    """
    try:
        return set(_sidecar(path).read_text().split())
    except OSError:
        return set()


def _note_loaded_with(path: Path, modules: set) -> None:
    side = _sidecar(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".modules")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(sorted(modules)) + "\n")
        os.replace(tmp, side)
    except OSError:
        pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _module_entries() -> list[str]:
    """Directories (names) of the C modules PyTensor has loaded in this process."""
    cmodule = sys.modules.get("pytensor.link.c.cmodule")
    cache = getattr(cmodule, "_module_cache", None)
    if cache is None:
        return []
    return sorted({Path(name).parent.name for name in cache.module_from_name})


@contextlib.contextmanager
def _module_cache_reading(entries):
    """Let PyTensor's module cache, if not yet built in this process, read only ``entries``.

    The other keys are marked as read for the refresh that builds the cache and unmarked
    afterwards (so a later miss refreshes them as usual), and marked again at exit, where
    PyTensor's clean-up would otherwise read them all.
    """
    if not entries:
        yield
        return
    from pytensor.link.c import cmodule
    from pytensor.link.c.basic import get_module_cache

    if cmodule._module_cache is not None:  # already built: its refresh was paid
        yield
        return
    cache = get_module_cache(init_args={"do_refresh": False})
    wanted = set(entries)
    try:
        names = os.listdir(cache.dirname)
    except OSError:
        names = []
    skipped = {os.path.join(cache.dirname, n, "key.pkl") for n in names if n not in wanted}
    cache.loaded_key_pkl |= skipped
    try:
        cache.refresh()

        def refresh_all(*args, **kwargs):  # a miss: read every key before compiling
            cache.loaded_key_pkl.difference_update(skipped)
            del cache.refresh
            return cache.refresh(*args, **kwargs)

        cache.refresh = refresh_all
        yield
    finally:
        cache.__dict__.pop("refresh", None)
        cache.loaded_key_pkl -= skipped
        atexit.register(cache.loaded_key_pkl.update, skipped)  # runs before PyTensor's


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
                pickle.dump(_module_entries(), fh, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _sidecar(path).unlink(missing_ok=True)
        entries = sorted(path.parent.glob("objective-*.pkl"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-MAX_ENTRIES]:
            old.unlink(missing_ok=True)
            _sidecar(old).unlink(missing_ok=True)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        warnings.warn(f"compiled objective not cached in {path.parent}: {exc}", stacklevel=2)
