"""The on-disk cache of compiled objectives: round trip, invalidation, eviction, and a fit
that reuses a function compiled by an earlier run."""

from __future__ import annotations

import numpy as np
import pytest

from bayesoof.inference import compiled_cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESOOF_CACHE_DIR", str(tmp_path / "compiled"))
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
r = fit(read_beam_maps(example_path()), "effelsberg", order=1)
from pytensor.link.c import cmodule
cache = cmodule._module_cache
read = len(cache.module_hash_to_key_data)  # module keys unpickled so far
import pytensor, pytensor.tensor as pt
x = pt.vector("x")
later = float(pytensor.function([x], pt.exp(x).sum())(np.zeros(3)))  # compiled afterwards
print(json.dumps({"theta": r.theta.tolist(), "loaded": r.compile_time > 0 and r.wall_time > 0,
                  "read": read, "entries": len(os.listdir(cache.dirname)), "later": later,
                  "probes": probes, "blas": pytensor.config.blas__ldflags,
                  "march": cmodule.GCC_compiler.march_flags}))
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
