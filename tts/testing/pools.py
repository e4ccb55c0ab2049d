"""Name-addressed shortcuts over the pool-based strategies' entries, for tests that compare strategies on one pool.

Production code reads `StrategyEntry.select` / `.estimate` from the cell's entry; tests often want "the best-of-N
answer of this pool at n", so these look the entry up by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tts.strategies import STRATEGIES


def _pool_entry(strategy: str) -> Any:
    entry = STRATEGIES.get(strategy)
    if not entry.traits.pool_based:
        raise ValueError(f"strategy: invalid value {strategy!r}; it is not pool-based (no select on a pool)")
    return entry


def select(pool: Any, strategy: str, n: int, aggregation: str) -> Any:
    return _pool_entry(strategy).select(pool, n, aggregation)


def expected_correct(
    pool: Any,
    strategy: str,
    k: int,
    aggregation: str,
    correct: Sequence[bool],
    *,
    seed: int = 0,
    samples: int = 2000,
) -> Any:
    return _pool_entry(strategy).estimate(pool, k, aggregation, correct, seed=seed, samples=samples)


def run_pool_strategy(strategy: str, problems: Any, policy: Any, prm: Any, **kwargs: Any) -> Any:
    """The strategy's stand-alone run (a pool of exactly n, then select); extra `params` are rejected by it."""
    params = kwargs.pop("params", {})
    return _pool_entry(strategy).run(problems, policy, prm, **kwargs, **params)
