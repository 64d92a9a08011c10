"""Shared pytest configuration: opt-in slow tests (``--run-slow``), longest files first."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False,
        help="also run the tests marked slow (long statistical studies)",
    )


#: The longest test files (seconds on a cold compile cache, two xdist workers, session 4),
#: run first: xdist's "loadfile" hands out files in collection order, so a long file
#: collected last would run alone at the end while the other worker idles.
LONGEST_FIRST = (
    "tests/test_notebooks.py",                       # ~275 s
    "tests/inference/test_sample_runs.py",           # ~180 s
    "tests/inference/test_sample_calibration.py",    # ~180 s
    "tests/inference/test_sample.py",                # ~160 s
    "tests/inference/test_compiled_cache.py",        # ~100 s
    "tests/cli/test_cli.py",                         # ~100 s
    "tests/campaign/test_order.py",                  # ~80 s
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow study: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _no_persisted_compiled_functions():
    """Tests compile afresh: the on-disk cache of compiled objectives is off unless a
    test points ``BAYESOOF_CACHE_DIR`` at a temporary directory itself."""
    import os

    old = os.environ.get("BAYESOOF_CACHE_DIR")
    os.environ["BAYESOOF_CACHE_DIR"] = "off"
    yield
    if old is None:
        os.environ.pop("BAYESOOF_CACHE_DIR", None)
    else:
        os.environ["BAYESOOF_CACHE_DIR"] = old
