"""Test-time compute strategies, one module each, registered by name.

Each entry is a function `run(problems, policy, prm, *, n, sampling, seed, **params) -> list[StrategyResult]`
(see tts.strategies.base). Entries are lazy so that listing names imports nothing heavy.
"""

from __future__ import annotations

from tts.registry import Registry

STRATEGIES: Registry = Registry("strategy")
STRATEGIES.register("majority_vote", "tts.strategies.majority_vote:run")
STRATEGIES.register("best_of_n", "tts.strategies.best_of_n:run")
STRATEGIES.register("weighted_best_of_n", "tts.strategies.weighted_best_of_n:run")
STRATEGIES.register("beam_search", "tts.strategies.beam_search:run")
STRATEGIES.register("dvts", "tts.strategies.dvts:run")
STRATEGIES.register("lookahead", "tts.strategies.lookahead:run")

# Strategies whose every N <= Nmax is derived from one shared sample pool (tts.strategies.pool).
POOL_STRATEGIES = ("majority_vote", "best_of_n", "weighted_best_of_n")
