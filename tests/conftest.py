"""Shared pytest setup. Fixture modules live in tests/fixtures/ (one owner each) and are loaded as plugins.

Integration tests share ONE local Ray and ONE engine per model per session (session-scoped fixtures).
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # tests run a local Ray without token auth, on purpose
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the test suite may touch a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

pytest_plugins = [
    "tests.fixtures.builtins",
    "tests.fixtures.paths",
    "tests.fixtures.models",
    "tests.fixtures.ray_cluster",
]
