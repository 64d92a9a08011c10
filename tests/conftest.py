"""Shared pytest configuration: opt-in slow tests (``--run-slow``)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False,
        help="also run the tests marked slow (long statistical studies)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow study: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


ENV = ("BAYESOOF_CACHE_DIR", "BAYESOOF_CACHE_MAX_ENTRIES")


def pytest_configure(config):
    """One fresh on-disk cache of compiled objectives for the whole run.

    The controller (or the only process) makes an empty directory and points
    ``BAYESOOF_CACHE_DIR`` at it before the xdist workers start, so they inherit it (and
    so do the CLI subprocesses and notebook kernels the tests start): a test run never
    reads what an earlier run or the developer's own runs stored, and tests of the same
    geometry share one compile instead of repeating it (~10-15 s each; the suite's main
    fixed cost).  Tests of the cache itself point it at their own directories.
    """
    import os
    import tempfile

    if hasattr(config, "workerinput"):  # an xdist worker: the controller set it
        return
    path = tempfile.mkdtemp(prefix="bayesoof-test-compiled-")
    config._bayesoof_cache = (path, {k: os.environ.get(k) for k in ENV + ("PYTENSOR_FLAGS",)})
    os.environ["BAYESOOF_CACHE_DIR"] = path
    os.environ["BAYESOOF_CACHE_MAX_ENTRIES"] = "64"  # the run's geometries, not a user's 8
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "gcc__cxxflags" not in flags:  # a developer's own C flags win
        os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, TEST_PYTENSOR_FLAGS) if f)


# PyTensor's C modules built without g++ optimisation or debug information (-O0 -g0 after
# PyTensor's -O3 -g) in test runs: the suite compiles ~600 C modules, on a machine whose
# PyTensor cache is cold (CI) that is most of its fixed cost.  One cold order-4
# `bayesoof fit` on the example: 59 s at -O3, 33 s at -O0 -g0, 9.5 s warm with either (the
# graphs' time is in FFTs and NumPy calls, not in the generated loops).  The flags are
# compile arguments, part of both PyTensor's module key and its module hash, so these
# modules never stand in for the -O3 ones a user's own runs compile and cache (the
# config flag cmodule__remove_gxx_opt is not in the module hash: its modules would).
TEST_PYTENSOR_FLAGS = "gcc__cxxflags=-O0 -g0"


def pytest_unconfigure(config):
    import os
    import shutil

    saved = getattr(config, "_bayesoof_cache", None)
    if saved is None:
        return
    path, old_env = saved
    shutil.rmtree(path, ignore_errors=True)  # only the directory this run made
    for k, old in old_env.items():
        if old is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = old
