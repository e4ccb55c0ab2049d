"""Weighted best-of-N (Li et al. 2023; Snell et al. 2024): sample N solutions, sum the aggregated PRM scores
of each equivalent final answer, answer with the heaviest one (its best-scored solution).

A pool strategy: one pool of N samples (tts.strategies.pool) and a selection rule. A sweep shares one pool of
N_max samples across every N and every pool-based strategy; this module holds the rule, the
expected-accuracy estimator and the stand-alone run of one cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tts.data.problem import Problem
from tts.engines.protocols import PolicyEngine, PRMScorer
from tts.schemas import StrategyConfig
from tts.strategies.base import SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.estimators import Estimate, expected_weighted_best_of_k
from tts.strategies.pool import PoolRule, ProblemPool, check_correct, run_pool_strategy, select
from tts.strategies.voting import answer_groups, best_choice, weighted_choice

NAME = "weighted_best_of_n"


@dataclass
class WeightedBestOfNConfig(StrategyConfig):
    name: str = NAME


# PRM-weighted vote over answer classes (the best-scored sample is reported when none has an answer).
RULE = PoolRule(
    choose=weighted_choice,
    fallback=best_choice,
    uses_scores=True,
    uses_groups=True,
)


def estimate(
    pool: ProblemPool,
    k: int,
    aggregation: str,
    correct: Sequence[bool],
    *,
    seed: int = 0,
    samples: int = 2000,
) -> Estimate:
    """Expected weighted-vote accuracy at k: exact enumeration of k-subsets when few, else seeded resampling."""
    check_correct(pool, k, correct)
    groups = answer_groups(pool.answers)
    return expected_weighted_best_of_k(
        groups, pool.scores(aggregation), correct, k, seed=seed, samples=samples
    )


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
    """The strategy over N samples per problem; one generate call (and one PRM call) for all problems."""
    return run_pool_strategy(
        NAME, RULE, problems, policy, prm, n=n, sampling=sampling, seed=seed, params=params
    )


ENTRY = StrategyEntry(
    name=NAME,
    schema=WeightedBestOfNConfig,
    run=run,
    traits=Traits(pool_based=True, needs_verifier=True),
    select=lambda pool, n, aggregation: select(pool, RULE, n, aggregation),
    estimate=estimate,
)
