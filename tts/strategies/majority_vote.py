"""Majority vote (self-consistency, Wang et al. 2023): sample N solutions, answer with the most common
final answer (answers grouped by math-verify equivalence; ties go to the answer seen first). Needs no verifier,
so the pool is not scored.

A pool strategy: one pool of N samples (tts.strategies.pool) and a selection rule. A sweep shares one pool of
N_max samples across every N and all three pool strategies; this module is the stand-alone run of one cell.
"""

from __future__ import annotations

from collections.abc import Sequence

from tts.data.problem import Problem
from tts.engines.protocols import PolicyEngine, PRMScorer
from tts.strategies.base import SamplingSettings, StrategyResult
from tts.strategies.pool import run_pool_strategy


def run(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    **params: object,
) -> list[StrategyResult]:
    """majority_vote over N samples per problem; one generate call (and one PRM call) for all problems."""
    return run_pool_strategy(
        "majority_vote", problems, policy, prm, n=n, sampling=sampling, seed=seed, params=params
    )
