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
