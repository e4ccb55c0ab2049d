"""Majority vote (self-consistency, Wang et al. 2023): sample N solutions, answer with the most common
final answer (answers grouped by math-verify equivalence; ties go to the answer seen first). Needs no verifier,
so the pool is not scored.

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
from tts.strategies.estimators import Estimate, expected_majority_at_k
from tts.strategies.pool import PoolRule, ProblemPool, check_correct, run_pool_strategy, select
from tts.strategies.voting import answer_groups, majority_choice

NAME = "majority_vote"


@dataclass
class MajorityVoteConfig(StrategyConfig):
    name: str = NAME


# Votes over answer classes; no verifier (the first sample is reported when none has an answer).
RULE = PoolRule(
    choose=lambda groups, scores: majority_choice(groups),
    fallback=lambda scores: 0,
    uses_scores=False,
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
    """Exact expected majority@k over random k-subsets of the pool (multivariate hypergeometric DP)."""
    check_correct(pool, k, correct)
    value = expected_majority_at_k(answer_groups(pool.answers), correct, k)
    return Estimate(value, value, value, "exact")


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
    schema=MajorityVoteConfig,
    run=run,
    traits=Traits(pool_based=True),
    select=lambda pool, n, aggregation: select(pool, RULE, n, aggregation),
    estimate=estimate,
)
