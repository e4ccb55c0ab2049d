"""Shared pytest setup. Fixture modules live in tests/fixtures/ (one owner each) and are loaded as plugins.

Integration tests share ONE local Ray and ONE engine per model per session (session-scoped fixtures).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # tests run a local Ray without token auth, on purpose
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the test suite may touch a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

pytest_plugins = [
    "tests.fixtures.paths",
    "tests.fixtures.models",
    "tests.fixtures.ray_cluster",
]


# ---- wall-clock bounds: `perf` tests are deselected unless --perf is given (timings on a shared, loaded
# machine are not a unit test's business; bench/ holds the measurements)
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--perf", action="store_true", help="also run the wall-clock bound tests (marker perf)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--perf"):
        return
    perf = [item for item in items if item.get_closest_marker("perf")]
    if perf:
        config.hook.pytest_deselected(items=perf)
        items[:] = [item for item in items if not item.get_closest_marker("perf")]
