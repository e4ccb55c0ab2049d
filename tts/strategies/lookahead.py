"""Lookahead search (Snell et al. 2024): PRM beam search in which each candidate step is judged by rolling it
out k more steps greedily (temperature 0) and scoring the rollout, not the step itself.

The beam still advances by the sampled step only; the rollout is thrown away. With aggregation "last" (Snell's
setting) a candidate's ranking score is the PRM's score of the rollout's last step; other aggregations apply to
the rollout's step scores the same way. Lockstep per step: one generate call for the candidate steps, one per
rollout step (identical prefixes rolled out once), and one PRM call, for every beam of every problem. k = 0 is
exactly beam search.

Budget: generations = step-level samples / steps, about N (k + 1), as Snell et al. count lookahead.
"""

from __future__ import annotations

from collections.abc import Sequence

from tts.data.problem import Problem
from tts.engines.protocols import PolicyEngine, PRMScorer
from tts.strategies.base import SamplingSettings, StrategyResult
from tts.strategies.tree import check_search_args, keep_top, search


def run(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    beam_width: int = 4,
    max_steps: int = 8,
    lookahead: int = 2,
) -> list[StrategyResult]:
    """Beam search (N = n, M = beam_width) ranking each candidate by a greedy rollout of `lookahead` steps."""
    check_search_args(n, beam_width, max_steps, lookahead)
    return search(
        problems,
        policy,
        prm,
        groups_per_problem=1,
        width=n,
        keep=n // beam_width,
        cap=n,
        advance=keep_top,
        sampling=sampling,
        max_steps=max_steps,
        lookahead=lookahead,
        n=n,
    )
