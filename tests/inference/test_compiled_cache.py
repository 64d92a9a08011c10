"""The on-disk cache of compiled objectives: round trip, invalidation, eviction, and a fit
that reuses a function compiled by an earlier run."""

from __future__ import annotations

import numpy as np
import pytest

from bayesoof.inference import compiled_cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESOOF_CACHE_DIR", str(tmp_path / "compiled"))
    monkeypatch.delenv("BAYESOOF_CACHE_MAX_ENTRIES", raising=False)
    return tmp_path / "compiled"


def test_store_load_roundtrip_and_keys(cache):
    compiled_cache.store("geometry-a", {"x": np.arange(3)})
    assert compiled_cache.load("geometry-a")["x"].tolist() == [0, 1, 2]
    assert compiled_cache.load("geometry-b") is None  # another key: nothing


def test_unreadable_entry_is_dropped(cache):
    compiled_cache.store("k", [1, 2])
    (path,) = cache.glob("objective-*.pkl")
    path.write_bytes(b"not a pickle")
    assert compiled_cache.load("k") is None
    assert not path.exists()


def test_at_most_max_entries(cache):
    for i in range(compiled_cache.MAX_ENTRIES + 3):
        compiled_cache.store(f"k{i}", i)
    assert len(list(cache.glob("objective-*.pkl"))) == compiled_cache.MAX_ENTRIES
    assert compiled_cache.load("k0") is None  # the oldest went first
    assert compiled_cache.load(f"k{compiled_cache.MAX_ENTRIES + 2}") is not None


def test_max_entries_from_the_environment(cache, monkeypatch):
    monkeypatch.setenv("BAYESOOF_CACHE_MAX_ENTRIES", "2")
    for i in range(4):
        compiled_cache.store(f"k{i}", i)
    assert len(list(cache.glob("objective-*.pkl"))) == 2
    monkeypatch.setenv("BAYESOOF_CACHE_MAX_ENTRIES", "many")
    with pytest.warns(UserWarning, match="BAYESOOF_CACHE_MAX_ENTRIES='many'.*keeping 8"):
        assert compiled_cache.max_entries() == compiled_cache.MAX_ENTRIES


def test_disabled(monkeypatch, tmp_path):
    monkeypatch.setenv("BAYESOOF_CACHE_DIR", "off")
    compiled_cache.store("k", 1)
    assert compiled_cache.load("k") is None


def test_fit_reuses_function_compiled_by_an_earlier_run(cache):
    """A new process (emptied in-memory cache) loads the stored objective: same result."""
    from bayesoof.data.fitsio import read_beam_maps
    from bayesoof.inference import fit as fit_mod
    from bayesoof.simulate import example_path

    data = read_beam_maps(example_path())
    fit_mod._CACHE.clear()
    first = fit_mod.fit(data, "effelsberg", order=1)
    assert len(list(cache.glob("objective-*.pkl"))) == 1
    fit_mod._CACHE.clear()  # as in a new process
    second = fit_mod.fit(data, "effelsberg", order=1)
    np.testing.assert_array_equal(first.theta, second.theta)  # same compiled arithmetic


_PROCESS = """
import json, os, subprocess, sys
probes = []  # PyTensor's g++ probes run by this process (BLAS, -march=native)
_popen = subprocess.Popen.__init__
def _record(self, args, *a, **k):
    text = " ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args)
    if "march=native" in text or "try_blas" in text or "try_march" in text:
        probes.append(text[:80])
    return _popen(self, args, *a, **k)
subprocess.Popen.__init__ = _record
import numpy as np
from bayesoof.data.fitsio import read_beam_maps
from bayesoof.inference.fit import fit
from bayesoof.simulate import example_path
# the pyoof preset: the smallest graph (no legs, focus, pointing or drift blocks); what is
# checked (which module keys a loading process reads) does not depend on the graph
r = fit(read_beam_maps(example_path()), "effelsberg", order=1, config="pyoof")
setuptools_after_fit = "setuptools" in sys.modules
from pytensor.link.c import cmodule
cache = cmodule._module_cache
read = len(cache.module_hash_to_key_data)  # module keys unpickled so far
import pytensor, pytensor.tensor as pt
x = pt.vector("x")
later = float(pytensor.function([x], pt.exp(x).sum())(np.zeros(3)))  # compiled afterwards
print(json.dumps({"theta": r.theta.tolist(), "loaded": r.compile_time > 0 and r.wall_time > 0,
                  "read": read, "entries": len(os.listdir(cache.dirname)), "later": later,
                  "probes": probes, "blas": pytensor.config.blas__ldflags,
                  "march": cmodule.GCC_compiler.march_flags,
                  "setuptools_after_fit": setuptools_after_fit}))
"""


def test_new_process_reads_only_the_module_keys_it_needs(cache, tmp_path):
    """The second process loads the stored objective reading only the C-module keys the
    entry lists (not every entry of PyTensor's cache), fits identically, and a function
    compiled after that still finds or builds its modules."""
    import json
    import os
    import pickle
    import subprocess
    import sys

    env = {**os.environ, "BAYESOOF_CACHE_DIR": str(cache)}

    def run() -> dict:
        out = subprocess.run([sys.executable, "-c", _PROCESS], capture_output=True, text=True,
                             env=env, cwd=tmp_path, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = run()  # compiles and stores
    (entry,) = cache.glob("objective-*.pkl")
    with open(entry, "rb") as fh:
        modules = pickle.load(fh)
    assert modules and all(isinstance(m, str) for m in modules)
    second = run()  # loads
    assert second["theta"] == first["theta"]  # the same compiled arithmetic, bit for bit
    assert second["later"] == 3.0
    # only the listed keys were read before the later compile (a shared PyTensor cache
    # holds many more entries than one objective's few dozen)
    assert second["read"] <= len(modules) < second["entries"]
    # PyTensor's g++ probes ran in the first process only (where /proc/cpuinfo names the
    # processor); the second was given the same results
    if compiled_cache._cpu() is not None:
        assert first["probes"] and not second["probes"]
        assert len(list(cache.glob("probes-*.json"))) == 1
    assert (second["blas"], second["march"]) == (first["blas"], first["march"])
    # loading and fitting imported no setuptools (0.2-0.4 s): neither for the extension
    # suffix nor for PyTensor's CompileError (_compile_errors_without_setuptools)
    assert not second["setuptools_after_fit"]


_HINTED = """
import json, os
import numpy as np
import pytensor, pytensor.tensor as pt
from pytensor.link.c import cmodule
from bayesoof.inference import compiled_cache
hinted = compiled_cache.read_module_hints("test-hints")
x = pt.vector("x")
value = float(pytensor.function([x], (pt.exp(x) * 2.0 + 1.0).sum())(np.arange(3.0)))
cache = cmodule._module_cache
read = len(cache.module_hash_to_key_data)  # module keys unpickled so far
compiled_cache.note_module_hints("test-hints")
print(json.dumps({"hinted": hinted, "read": read, "entries": len(os.listdir(cache.dirname)),
                  "value": value}))
"""


def test_module_hints_let_the_next_process_read_only_the_keys_it_used(cache, tmp_path):
    """A function compiled afresh in every process (as the posterior's density is): the
    first process reads every key of PyTensor's module cache and notes the entries it
    used; the next one reads only those and still finds every module (same value)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "BAYESOOF_CACHE_DIR": str(cache)}

    def run() -> dict:
        out = subprocess.run([sys.executable, "-c", _HINTED], capture_output=True, text=True,
                             env=env, cwd=tmp_path, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = run()
    assert first["hinted"] == 0 and len(list(cache.glob("hints-*.modules"))) == 1
    second = run()
    assert second["value"] == first["value"] == float(np.sum(np.exp(np.arange(3.0)) * 2 + 1))
    # only the hinted keys were read: the compile found its modules without the full read
    # (the shared module cache holds more entries than this function's few)
    assert 0 < second["read"] <= second["hinted"] < second["entries"]


def test_graph_key_tells_graphs_apart_and_cached_function_loads_the_same_arithmetic(cache):
    """The key is the same for a graph built twice, differs when a constant, an operation
    or a type differs, is None with a free root; the second request loads the stored
    function (no compile) and computes the same values."""
    import pytensor
    import pytensor.tensor as pt

    def graph(const=(0.0, 1.0, 2.0), op=pt.mul, shape=(None,)):
        x = pt.tensor("x", dtype="float64", shape=shape)
        return x, (op(x, pt.constant(np.array(const))) ** 2).sum()

    x1, g1 = graph()
    x2, g2 = graph()
    key = compiled_cache.graph_key([x1], [g1])
    assert key is not None and key == compiled_cache.graph_key([x2], [g2])
    for other in (graph(const=(0.0, 1.0, 3.0)), graph(op=pt.add), graph(shape=(3,))):
        assert compiled_cache.graph_key([other[0]], [other[1]]) != key
    assert compiled_cache.graph_key([], [g1]) is None  # x is free: nothing to key

    built = []

    def build(x, g):
        built.append(1)
        return pytensor.function([x], g)

    first = compiled_cache.cached_function([x1], [g1], lambda: build(x1, g1), salt="test")
    second = compiled_cache.cached_function([x2], [g2], lambda: build(x2, g2), salt="test")
    assert len(built) == 1 and second is not first  # stored by the first, loaded by the second
    assert len(list(cache.glob("function-*.pkl"))) == 1 and not list(cache.glob("objective-*"))
    u = np.array([0.5, -1.0, 2.0])
    assert float(second(u)) == float(first(u)) == float(np.sum((u * [0.0, 1.0, 2.0]) ** 2))
    compiled_cache.cached_function([x2], [g2], lambda: build(x2, g2), salt="other mode")
    assert len(built) == 2  # another salt: compiled again


def test_extension_suffix_is_setuptools_own(cache):
    """PyTensor links compiled modules by the suffix the standard library's sysconfig gives
    once bayesoof is set up (avoiding setuptools' 0.2-0.4 s import), and it is the very
    value PyTensor's own lookup through setuptools returns."""
    from pytensor.link.c import cmodule
    from setuptools._distutils.sysconfig import get_config_var

    compiled_cache.remember_compiler_probes()
    assert getattr(cmodule._get_ext_suffix, "from_stdlib", False)
    assert cmodule._get_ext_suffix() == (get_config_var("EXT_SUFFIX") or get_config_var("SO"))


def test_compile_errors_module_stands_in_for_pytensors(monkeypatch):
    """The stand-in for ``pytensor.link.c.exceptions`` (installed when nothing imported the
    real one yet) has PyTensor's two names: MissingGXX, and CompileError made on first use
    as PyTensor makes it (setuptools' CompileError subclass printing its message as is)."""
    import sys

    from pytensor.link import c as c_package
    from setuptools.errors import CompileError as SetuptoolsCompileError

    name = "pytensor.link.c.exceptions"
    monkeypatch.delitem(sys.modules, name, raising=False)  # restored afterwards
    monkeypatch.setattr(c_package, "exceptions", None, raising=False)
    compiled_cache._compile_errors_without_setuptools()
    module = sys.modules[name]
    assert c_package.exceptions is module
    from pytensor.link.c.exceptions import CompileError, MissingGXX

    assert issubclass(MissingGXX, Exception) and not issubclass(MissingGXX, CompileError)
    assert issubclass(CompileError, SetuptoolsCompileError)
    assert str(CompileError("g++ said:\n  error")) == "g++ said:\n  error"
    assert module.CompileError is CompileError  # made once
    with pytest.raises(AttributeError, match="no attribute 'Other'"):
        module.Other  # noqa: B018
