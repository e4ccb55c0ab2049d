"""Diverse verifier tree search (DVTS; Beeching et al. 2024, huggingface/search-and-learn
src/sal/search/diverse_verifier_tree_search.py `_dvts`): N/M independent subtrees per problem, each a greedy
search that follows its single best-scored child.

Step 1 samples N first steps from the prompt, M for each subtree; every later step expands each subtree's kept
beam into M children, scores them with the PRM and keeps the best one. A subtree ends when its best child is
finished (EOS, a stated final answer: sal prunes on EOS and on "boxed{"; max_tokens) or at max_steps (whose
step is sampled to EOS, sal's last iteration). Because subtrees never compete with each other, DVTS keeps
diverse solutions where beam search tends to collapse onto one prefix.

Final beams (`final_leaves`): `all` (the default), every child of each subtree's last expansion, the best and
its M - 1 siblings, N in all, as sal returns them (`previous_text + next_texts[i]` for each of the beam_width
children, each with its own scores; siblings that had not finished are partial solutions, and take part in the
selection as sal's do: without an answer they count in no vote); `best`, each subtree's best child only, N/M
final beams (this module's rule before it followed sal). The answer comes from the final beams by
`final_selection` (argmax by default: sal's `pred` is the argmax of aggregated scores over all N). All
subtrees of all problems advance in lockstep: one generate call and one PRM call per step
(tts.strategies.tree). With `lookahead` k > 0 each child is ranked by a greedy k-step rollout, as in lookahead
search (Snell et al. 2024); k = 0 (the default, sal's) is plain DVTS.

Budget: generations = N (step-level samples / mean steps per subtree), about N (k + 1) with lookahead.
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
from tts.strategies.tree import (
    TreeSearchConfig,
    check_lookahead,
    check_search_args,
    keep_best,
    search,
    tree_budget,
)

NAME = "dvts"
FINAL_LEAVES = ("all", "best")


@dataclass
class DVTSConfig(TreeSearchConfig):
    name: str = NAME
    lookahead: int = 0  # k: steps rolled out (at temperature 0) to rank a child; 0 = its own prefix
    final_leaves: str = "all"  # all: every leaf of each subtree's last expansion, N (sal) | best: N/M

    def rollout_steps(self) -> int:
        return self.lookahead

    def check(self, n: int) -> None:
        super().check(n)
        check_lookahead(self.lookahead)
        if self.final_leaves not in FINAL_LEAVES:
            raise ConfigError(
                f"strategy.final_leaves: invalid value {self.final_leaves!r}; allowed: {', '.join(FINAL_LEAVES)}"
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
    lookahead: int = 0,
    final_leaves: str = "all",
) -> list[StrategyResult]:
    """DVTS with N = n and M = beam_width: n / beam_width subtrees of width beam_width."""
    check_search_args(n, beam_width, max_steps, lookahead)
    if final_leaves not in FINAL_LEAVES:
        raise ValueError(f"final_leaves: invalid value {final_leaves!r}; allowed: {', '.join(FINAL_LEAVES)}")
    return search(
        problems,
        policy,
        prm,
        groups_per_problem=n // beam_width,
        width=beam_width,
        keep=1,
        cap=1,
        advance=partial(keep_best, all_leaves=final_leaves == "all"),
        sampling=sampling,
        max_steps=max_steps,
        final_selection=final_selection,
        lookahead=lookahead,
        n=n,
    )


ENTRY = StrategyEntry(
    name=NAME,
    schema=DVTSConfig,
    run=run,
    traits=Traits(needs_verifier=True, tree=True),
    budget=tree_budget,
)
