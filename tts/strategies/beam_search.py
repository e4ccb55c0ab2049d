"""PRM beam search (Snell et al. 2024; HF search-and-learn): N beams per problem, pruned to the top N/M by the
verifier after every step and re-expanded into M children each.

Step 1 samples N first steps from the prompt; every later step samples one next step for each of N children of
the N/M surviving beams (stop at the step delimiter), scores every child with the PRM (aggregated prefix score)
and keeps the best N/M unfinished ones. Finished beams (EOS, a stated final answer, max_tokens) are set aside;
a problem stops when no beam is left, when N beams have finished, or at max_steps (whose step is sampled to
EOS). The answer comes from the final beams by `final_selection`: the best finished beam by aggregated score
(argmax; the best unfinished one if none finished), a PRM-weighted or a majority vote over them. All beams
of all problems advance in lockstep: one generate call and one PRM call per step (tts.strategies.tree).
With `filter_duplicates` (search-and-learn's option, off by default) unfinished children with identical text
are merged before pruning, keeping one, so the N/M kept beams are distinct partial solutions (the N children of
the next step are then spread over the distinct ones).

Budget: generations = N (step-level samples / steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from tts.data.problem import Problem
from tts.engines.protocols import PolicyEngine, PRMScorer
from tts.schemas import ConfigError
from tts.strategies.base import SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.tree import TreeSearchConfig, check_search_args, keep_top, search, tree_budget

NAME = "beam_search"


@dataclass
class BeamSearchConfig(TreeSearchConfig):
    name: str = NAME
    filter_duplicates: bool = False  # merge identical partial solutions at a step, keeping one

    def check(self, n: int) -> None:
        super().check(n)
        if not isinstance(self.filter_duplicates, bool):
            raise ConfigError(
                f"strategy.filter_duplicates: invalid value {self.filter_duplicates!r}; must be true or false"
            )


def run(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    beam_width: int = 4,
    max_steps: int = 40,
    final_selection: str = "argmax",
    filter_duplicates: bool = False,
) -> list[StrategyResult]:
    """Beam search with N = n beams and beam width M = beam_width (n must be a multiple of M). `seed` is
    accepted for the strategy signature; sampling randomness is the engine's (seeded at engine start)."""
    check_search_args(n, beam_width, max_steps)
    return search(
        problems,
        policy,
        prm,
        groups_per_problem=1,
        width=n,
        keep=n // beam_width,
        cap=n,
        advance=partial(keep_top, filter_duplicates=filter_duplicates),
        sampling=sampling,
        max_steps=max_steps,
        final_selection=final_selection,
        n=n,
    )


ENTRY = StrategyEntry(
    name=NAME,
    schema=BeamSearchConfig,
    run=run,
    traits=Traits(needs_verifier=True, tree=True),
    budget=tree_budget,
)
