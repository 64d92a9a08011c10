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
:data:`MAX_ENTRIES` files of each kind are kept (``$BAYESOOF_CACHE_MAX_ENTRIES`` changes
it; the least recently used removed); a file that cannot be
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

Other costs of a new process cut here:

* :func:`slim` drops from a compiled function what only PyTensor's graph rewriting used
  (the shape and merge features, and the client entries of the ~10 000 variables the
  rewriting replaced): the entry of pyoof's example shrinks from 14 to 4.4 MB and unpickles
  in half the time; running the function needs none of it.
* PyTensor probes the system's BLAS and the processor's ``-march=native`` flags in every
  process (g++ runs: ~1 s wall, ~0.5 s CPU); :func:`remember_compiler_probes` keeps the
  results in the cache directory (``probes-*.json``) and gives them to later processes.
* Functions compiled afresh in every process (the posterior's density, its predictive
  and constrained maps: :mod:`bayesoof.inference.laplace`) would each miss PyTensor's
  module cache once and make it read every key (1 800 entries on a busy machine: ~5 s
  CPU).  :func:`note_module_hints` keeps the module-cache entries a run used under a
  tag (``hints-*.modules``), and :func:`read_module_hints` of the next run reads only
  those keys first; a compile that needs another module still reads them all, as before
  (a hint never changes what is compiled, only what is read first).
* Functions of the posterior's draws compiled in every run (the posterior predictive of
  :mod:`bayesoof.inference.posterior`) are kept too, keyed by the graph itself
  (:func:`graph_key`: every operation with its parameters, every constant's and shared
  variable's value, the types and the connections) rather than by what built it
  (:func:`cached_function`).
* The cyclic garbage collector is off while an entry is unpickled (:func:`gc_paused`):
  its collections there walk every object the imports made, for nothing (0.75-0.95 ->
  0.55 s CPU).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import hashlib
import json
import os
import pickle
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

__all__ = ["COMPILER_PROBE_MAX_AGE", "MAX_ENTRIES", "cache_dir", "cached_function",
           "gc_paused", "graph_key", "load", "max_entries", "note_module_hints",
           "read_module_hints", "remember_compiler_probes", "slim", "store"]

MAX_ENTRIES = 8  # default number of entries of each kind kept
COMPILER_PROBE_MAX_AGE = 86400.0  # s: remembered compiler probes older than a day are redone


def max_entries() -> int:
    """Entries of each kind kept: ``$BAYESOOF_CACHE_MAX_ENTRIES`` or :data:`MAX_ENTRIES`."""
    env = os.environ.get("BAYESOOF_CACHE_MAX_ENTRIES", "").strip()
    if not env:
        return MAX_ENTRIES
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n < 1:  # a warning, not an error: the function being stored has been compiled
        warnings.warn(f"environment variable BAYESOOF_CACHE_MAX_ENTRIES={env!r}: expected a "
                      f"whole number >= 1; keeping {MAX_ENTRIES}", stacklevel=2)
        return MAX_ENTRIES
    return n


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

    remember_compiler_probes()
    h = hashlib.sha1()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    cfg = pytensor.config
    return repr((sys.version, platform.machine(), numpy.__version__, pytensor.__version__,
                 cfg.mode, cfg.linker, cfg.floatX, cfg.blas__ldflags, cfg.cxx, h.hexdigest()))


def _cpu() -> str | None:
    """The processor's model and instruction-set flags (Linux); None where unknown."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    keep = sorted({ln for ln in lines if ln.startswith(("model name", "flags"))})
    return "\n".join(keep) or None


def remember_compiler_probes() -> None:
    """Give PyTensor the results of its per-process system probes from an earlier process.

    PyTensor probes for a BLAS (``config.blas__ldflags``) and for the g++ flags equivalent
    to ``-march=native`` (``GCC_compiler.march_flags``) in every process, running and
    compiling with g++ (~1 s wall, ~0.5 s CPU with the children).  The first process
    probes and keeps both in the cache directory, keyed by the interpreter, NumPy,
    PyTensor, the compiler, its flags, the library paths and the processor (model and
    instruction-set flags: a home directory shared by different machines gets one entry
    per processor); later ones set them before PyTensor reads them.  Nothing is done when
    the cache is disabled, for a value already read in this process, for BLAS flags the
    user configured (``PYTENSOR_FLAGS``, ``.pytensorrc``), or where the processor is
    unknown (the march flags must match it).  An entry older than
    :data:`COMPILER_PROBE_MAX_AGE` is probed again.
    """
    import numpy
    import pytensor
    from pytensor.link.c.cmodule import GCC_compiler

    _ext_suffix_without_setuptools()
    _compile_errors_without_setuptools()
    cfg = pytensor.config
    d = cache_dir()
    param = cfg._config_var_dict.get("blas__ldflags")
    if d is None or param is None or not cfg.cxx:
        return
    try:
        user_blas = cfg.fetch_val_for_key("blas__ldflags")  # PyTensor reads it unprobed
    except KeyError:
        user_blas = None
    blas_open = user_blas is None and not hasattr(param, "val")
    march_open = GCC_compiler.march_flags is None
    cpu = _cpu() if blas_open or march_open else None
    if cpu is None:
        return
    where = repr((sys.version, sys.prefix, numpy.__version__, pytensor.__version__, cfg.cxx,
                  cfg.gcc__cxxflags, os.environ.get("LD_LIBRARY_PATH"),
                  os.environ.get("LIBRARY_PATH"), user_blas, cpu))
    path = d / f"probes-{hashlib.sha1(where.encode()).hexdigest()}.json"
    try:
        if time.time() - path.stat().st_mtime < COMPILER_PROBE_MAX_AGE:
            kept = json.loads(path.read_text())
            if blas_open:
                cfg.blas__ldflags = str(kept["blas__ldflags"])
            if march_open:
                GCC_compiler.march_flags = [str(f) for f in kept["march_flags"]]
            return
    except (OSError, ValueError, KeyError, TypeError):
        pass
    kept = {"blas__ldflags": cfg.blas__ldflags}  # PyTensor's probes
    GCC_compiler.compile_args()
    kept["march_flags"] = list(GCC_compiler.march_flags or [])
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(kept, fh)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _ext_suffix_without_setuptools() -> None:
    """Give PyTensor the extension-module suffix from the standard library's ``sysconfig``.

    PyTensor's ``cmodule._get_ext_suffix`` asks ``setuptools._distutils.sysconfig`` for it
    when it first links a compiled module, importing setuptools for that (0.2-0.4 s of
    every fit's process, profiled); the standard library returns the same
    ``EXT_SUFFIX`` (tests/inference/test_compiled_cache.py compares them).
    """
    import sysconfig

    from pytensor.link.c import cmodule

    suffix = sysconfig.get_config_var("EXT_SUFFIX") or sysconfig.get_config_var("SO")
    if suffix and not getattr(cmodule._get_ext_suffix, "from_stdlib", False):
        def ext_suffix():
            return suffix

        ext_suffix.from_stdlib = True
        cmodule._get_ext_suffix = ext_suffix


_EXCEPTIONS = "pytensor.link.c.exceptions"


def _compile_errors_without_setuptools() -> None:
    """PyTensor's ``link.c.exceptions`` module, importing setuptools only when compiling.

    The module's first line imports setuptools (0.2 s: its ``CompileError`` is the base of
    PyTensor's), and PyTensor's VM imports the module's ``MissingGXX`` whenever it links a
    function, a loaded one too.  Before anything imports it, an equivalent module is put in
    its place: ``MissingGXX`` as PyTensor defines it, ``CompileError`` made on first access
    exactly as PyTensor makes it (a subclass of setuptools' ``CompileError`` printing its
    message as is), which only a compilation asks for.  Nothing changes once the real
    module is imported (tests/inference/test_compiled_cache.py checks both names).
    """
    import types

    from pytensor.link import c as c_package

    if _EXCEPTIONS in sys.modules:
        return
    module = types.ModuleType(_EXCEPTIONS, "PyTensor's C-linker exceptions (setuptools on demand: "
                                           "bayesoof.inference.compiled_cache)")

    class MissingGXX(Exception):
        """Raised when C code is to be generated but g++ is not available (PyTensor's)."""

    MissingGXX.__module__, MissingGXX.__qualname__ = _EXCEPTIONS, "MissingGXX"

    def __getattr__(name):
        if name != "CompileError":
            raise AttributeError(f"module {_EXCEPTIONS!r} has no attribute {name!r}")
        from setuptools.errors import CompileError as BaseCompileError

        class CompileError(BaseCompileError):
            """Custom `Exception` prints compilation errors with their original formatting."""

            def __str__(self):
                return self.args[0]

        CompileError.__module__, CompileError.__qualname__ = _EXCEPTIONS, "CompileError"
        module.CompileError = CompileError
        return CompileError

    module.MissingGXX = MissingGXX
    module.__getattr__ = __getattr__
    sys.modules[_EXCEPTIONS] = module
    c_package.exceptions = module


def slim(fn) -> None:
    """Drop from the compiled PyTensor function ``fn`` what only graph rewriting used.

    In place: the rewriting's shape and merge features, and the client entries (empty)
    of variables no longer in the graph, which hold on to every intermediate graph of the
    rewriting.  Calling the function, pickling it and re-linking it need none of these;
    the destroy handler (the order of in-place operations) is kept.
    """
    from pytensor.graph.rewriting.basic import MergeFeature
    from pytensor.tensor.rewriting.shape import ShapeFeature

    fg = fn.maker.fgraph
    for feature in list(fg._features):
        if isinstance(feature, (ShapeFeature, MergeFeature)):
            fg.remove_feature(feature)
    live = fg.variables
    handler = getattr(fg, "destroy_handler", None)
    for clients in (fg.clients, getattr(handler, "clients", {})):
        for var in [v for v, c in clients.items() if not c and v not in live]:
            del clients[var]


def _path(key: str, kind: str = "objective") -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    digest = hashlib.sha1((key + _environment()).encode()).hexdigest()
    return d / f"{kind}-{digest}.pkl"


def load(key: str, kind: str = "objective"):
    """The object stored under ``key``, or None (absent, disabled or unreadable).

    ``kind`` names the file family (``objective``: the quick fit's; ``function``: those of
    :func:`cached_function`); each keeps its own :data:`MAX_ENTRIES` most recent.
    """
    path = _path(key, kind)
    if path is None or not path.is_file():
        return None
    try:
        # the unpickled graph is kept whole: collections during it walk for nothing
        with gc_paused(), open(path, "rb") as fh:
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


@contextlib.contextmanager
def gc_paused():
    """No automatic cyclic garbage collection inside (restored after; re-entrant).

    Building, compiling and unpickling PyTensor graphs allocate hundreds of thousands of
    objects; each collection meanwhile walks every live object (those of the imports
    too) and finds little to free.  Measured on pyoof's example: compiling the objective
    15.7 -> 10.6 s CPU (peak RSS 490 -> 570 MB), loading it 0.76-0.95 -> 0.55 s.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


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


def _hint_path(tag: str) -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    digest = hashlib.sha1((tag + _environment()).encode()).hexdigest()
    return d / f"hints-{digest}.modules"


def read_module_hints(tag: str) -> int:
    """Read the module-cache keys that the run noted under ``tag`` used, and only those.

    PyTensor's module cache reads the key of every compiled module in its directory the
    first time a look-up misses in a process (``ModuleCache.refresh``).  Reading the keys
    of the modules an earlier run with the same ``tag`` used (:func:`note_module_hints`)
    first lets the compiles that need nothing else hit at once.  The other keys stay
    unread: a miss reads them as usual (and compiles what is missing), so the hint only
    decides what is read first.  Returns the number of hinted entries (0: none known or
    the cache is off).
    """
    path = _hint_path(tag)
    wanted = _loaded_with(path) if path is not None else set()
    if not wanted:
        return 0
    from pytensor.link.c import cmodule
    from pytensor.link.c.basic import get_module_cache

    fresh = cmodule._module_cache is None
    cache = get_module_cache(init_args={"do_refresh": False}) if fresh else cmodule._module_cache
    try:
        names = os.listdir(cache.dirname)
    except OSError:
        return 0
    skipped = {os.path.join(cache.dirname, n, "key.pkl") for n in names if n not in wanted}
    skipped -= cache.loaded_key_pkl
    cache.loaded_key_pkl |= skipped
    try:
        with gc_paused():
            cache.refresh(cleanup=False)
    finally:
        cache.loaded_key_pkl -= skipped
    if fresh:  # PyTensor's clean-up at exit would read them all (see _module_cache_reading)
        atexit.register(cache.loaded_key_pkl.update, skipped)
    return len(wanted)


def note_module_hints(tag: str) -> None:
    """Keep the module-cache entries loaded in this process as the hint for ``tag``."""
    path = _hint_path(tag)
    used = set(_module_entries())
    if path is None or not used or used <= _loaded_with(path):
        return
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        _note_loaded_with(path, used)
        hints = sorted(path.parent.glob("hints-*.modules"), key=lambda p: p.stat().st_mtime)
        for old in hints[:-max_entries()]:
            old.unlink(missing_ok=True)


class _Opaque(Exception):
    """A graph element :func:`graph_key` cannot describe (no key: not cached)."""


def _digest(h, x) -> None:
    """Feed a description of ``x`` (an op's parameter, a type, a constant) into ``h``."""
    import numpy as np
    from pytensor.graph.type import Type

    if isinstance(x, np.ndarray):
        h.update(f"<nd {x.dtype.str} {x.shape}>".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    elif x is None or isinstance(x, (bool, int, float, complex, str, bytes, np.generic)):
        h.update(f"<{type(x).__name__} {x!r}>".encode())
    elif isinstance(x, (tuple, list, frozenset, set)):
        items = sorted(x, key=repr) if isinstance(x, (set, frozenset)) else x
        h.update(f"<{type(x).__name__} {len(items)}>".encode())
        for item in items:
            _digest(h, item)
    elif isinstance(x, Mapping):  # (Elemwise's inplace pattern is a frozendict)
        h.update(f"<mapping {len(x)}>".encode())
        for k in sorted(x, key=repr):
            _digest(h, k)
            _digest(h, x[k])
    elif isinstance(x, slice):
        _digest(h, (x.start, x.stop, x.step))
    elif isinstance(x, Type):
        h.update(f"<type {type(x).__module__}.{type(x).__qualname__} {x!r}>".encode())
    elif hasattr(type(x), "__props__"):  # an Op (or a scalar op) described by its parameters
        h.update(f"<op {type(x).__module__}.{type(x).__qualname__}>".encode())
        for name in type(x).__props__:
            _digest(h, getattr(x, name))
    elif _plain_scalar_op(x):  # equal when of one class with one output type preference
        h.update(f"<scalar op {type(x).__module__}.{type(x).__qualname__}>".encode())
        _digest(h, (getattr(x, "output_types_preference", None), getattr(x, "bool", None)))
    elif callable(x) and hasattr(x, "__qualname__"):  # e.g. a scalar op's type preference
        h.update(f"<fn {getattr(x, '__module__', '')}.{x.__qualname__}>".encode())
    else:
        raise _Opaque(type(x).__qualname__)


def _plain_scalar_op(x) -> bool:
    """A scalar op whose equality is its class and output type preference (Add, Mul...)."""
    from pytensor.scalar import basic as ps

    eq = type(x).__eq__
    return isinstance(x, ps.ScalarOp) and eq in (ps.ScalarOp.__eq__,
                                                 ps.LogicalComparison.__eq__,
                                                 ps.FixedLogicalComparison.__eq__)


def graph_key(inputs, outputs) -> str | None:
    """A digest of the PyTensor graph from ``inputs`` to ``outputs``, or None.

    It describes every operation (its class and its ``__props__``), every constant and
    shared variable (type and value), every variable's type and which variables feed
    which node, in topological order: two graphs with the same key compute the same
    function of their inputs.  None when the graph holds an op without ``__props__``, an
    object it cannot describe, or a root that is neither an input, a constant nor a shared
    variable: such graphs are not cached.
    """
    import numpy as np
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import io_toposort

    h = hashlib.sha1()
    index = {}
    for i, v in enumerate(inputs):
        index[v] = i
        _digest(h, ("input", v.type))
    try:
        for node in io_toposort(list(inputs), list(outputs)):
            for v in node.inputs:
                if v not in index:
                    if isinstance(v, Constant):
                        _digest(h, ("constant", v.type, np.asarray(v.data)))
                    elif isinstance(v, SharedVariable):
                        _digest(h, ("shared", v.type, np.asarray(v.get_value(borrow=True))))
                    else:
                        return None  # a free variable: the function would not compile
                    index[v] = len(index)
            _digest(h, ("node", node.op, [index[v] for v in node.inputs],
                        [v.type for v in node.outputs]))
            for v in node.outputs:
                index[v] = len(index)
        for v in outputs:
            if v not in index:  # an input or a constant returned as it is
                if not isinstance(v, Constant):
                    return None
                _digest(h, ("constant", v.type, np.asarray(v.data)))
                index[v] = len(index)
            _digest(h, ("output", index[v]))
    except _Opaque:
        return None
    return h.hexdigest()


def cached_function(inputs, outputs, build, salt: str = ""):
    """The compiled function of ``build()`` for this graph, from the disk cache if stored.

    ``build`` compiles ``inputs -> outputs`` (``salt`` names how: mode, wrapper); the
    result is stored under :func:`graph_key` (with ``salt``, and the versions and sources
    every entry is keyed by; ``function-*.pkl``, their own :data:`MAX_ENTRIES`, so
    that they never push the quick fit's objectives out) and later runs load it instead
    of compiling (PyTensor re-links it from its module cache).  Graphs without a key are
    compiled every time.
    """
    key = graph_key(inputs, outputs)
    if key is None:
        return build()
    key = f"function {salt} {key}"
    fn = load(key, kind="function")
    if fn is None:
        with gc_paused():  # graph rewriting: no garbage to find
            fn = build()
        slim(fn)
        store(key, fn, kind="function")
    return fn


class _CodeKeepingPickler(pickle.Pickler):
    """Pickles PyTensor's fused scalar ops (``Composite``) with their generated C code.

    PyTensor drops a ``Composite``'s C code from its pickled state, and the op's hash *is*
    that code: unpickling a function then regenerates the code of every fused loop (its
    inner graph rebuilt and printed; 0.15-0.25 s of loading pyoof's example objective).  An
    entry is only read back by the same PyTensor version and configuration (the key,
    :func:`_environment`), which generate the same code, so it is kept.
    """

    def __init__(self, *args, **kwargs):
        from pytensor.scalar.basic import ScalarInnerGraphOp

        super().__init__(*args, **kwargs)
        self._fused = ScalarInnerGraphOp  # looked up once, not per pickled object

    def reducer_override(self, obj):
        if isinstance(obj, self._fused) and "_c_code" in obj.__dict__:
            state = obj.__getstate__()
            state["_c_code"] = obj.__dict__["_c_code"]
            return _blank, (type(obj),), state
        return NotImplemented


def _blank(cls):
    """An instance of ``cls`` without ``__init__`` (its state is set by unpickling)."""
    return cls.__new__(cls)


def store(key: str, obj, kind: str = "objective") -> None:
    """Store ``obj`` under ``key`` (best effort: a failure only warns); ``kind``: see load."""
    path = _path(key, kind)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pkl")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(_module_entries(), fh, protocol=pickle.HIGHEST_PROTOCOL)
                _CodeKeepingPickler(fh, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _sidecar(path).unlink(missing_ok=True)
        entries = sorted(path.parent.glob(f"{kind}-*.pkl"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-max_entries()]:
            old.unlink(missing_ok=True)
            _sidecar(old).unlink(missing_ok=True)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        warnings.warn(f"compiled {kind} not cached in {path.parent}: {exc}", stacklevel=2)
