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
