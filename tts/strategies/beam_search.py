"""PRM beam search (Snell et al. 2024): N beams per problem, pruned to the top N/M by the verifier after every
step and re-expanded into M children each. Two references implement it differently; `semantics` picks one.

`sal` (the default): huggingface/search-and-learn, src/sal/search/beam_search.py `_beam_search`. Step 1
samples N first steps from the prompt; every later step samples one next step for each of N children of the
N/M surviving beams (stop at the step delimiter), scores every child with the PRM (aggregate(step scores,
aggregation), sal's `agg_strategy`) and keeps the best N/M unfinished ones. Finished beams (EOS, a stated final
answer, max_tokens) are set aside and do not compete; the final beams are the first N to finish (sal's
`completed_beams[: config.n]`, `sort_completed` off), so a problem stops once N have finished (sal runs on, but
what finishes later is cut), when no beam is left, or at max_steps (whose step is sampled to EOS, sal's last
iteration). With `filter_duplicates` (sal's option, off by default; its Llama recipes turn it on) unfinished
children with identical text are merged before pruning, keeping one, so the N/M kept beams are distinct
partial solutions (the N children of the next step are then spread over the distinct ones).

`openr`: OpenR as Liu et al. (2025) run it, RyanLiu112/compute-optimal-tts src/reason/guided_search/tree.py
`SearchTree.beam_search` with envs/base_env.py `update_legal_actions`. The root is expanded into N children;
every kept node into M (`max_actions // beam_size`), a node's identical children counted once. Each child is
ranked by the PRM's score of its newest step (`child_values.append(rs[-1])`, whatever `aggregation` says), and
finished children COMPETE with unfinished ones for the k = N/M - (finished so far) places: a finished child
that makes the cut is a final beam, one that does not is dropped. The beam shrinks as beams finish; the search
stops once N/M have finished or after max_steps steps (OpenR's `tree_max_depth`, 40 in Liu et al.'s run.sh), the
last step sampled like any other and the beams left unfinished then final beams too (OpenR's truncated end
nodes). So the final beams are N/M, not N.

Either way the answer comes from the final beams by `final_selection` (argmax: the best by aggregated score,
the best unfinished one if none finished; or a PRM-weighted or majority vote; both references pick by PRM
max, sal also votes, OpenR reports both). Deliberate differences from both: a beam also finishes when it states
a final answer (\\boxed{}) or reaches max_tokens over all its steps (sal caps each step at max_tokens, OpenR
drops a step cut by the token limit; here a step is cut at step_max_tokens and continued next step); ties in
the ranking go to the earlier child (sal's argsort to the later, OpenR's heap to the node). All beams of all
problems advance in lockstep: one generate call and one PRM call per step (tts.strategies.tree).

Budget: generations = step-level samples / steps (N for sal; openr samples (N/M - finished) x M a step).
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
    Beam,
    Group,
    TreeSearchConfig,
    check_search_args,
    keep_top,
    search,
    tree_budget,
)

NAME = "beam_search"
SEMANTICS = ("sal", "openr")


@dataclass
class BeamSearchConfig(TreeSearchConfig):
    name: str = NAME
    filter_duplicates: bool = False  # merge identical partial solutions at a step, keeping one (sal)
    semantics: str = "sal"  # sal (search-and-learn) | openr (OpenR, Liu et al.): SEMANTICS

    def check(self, n: int) -> None:
        super().check(n)
        if not isinstance(self.filter_duplicates, bool):
            raise ConfigError(
                f"strategy.filter_duplicates: invalid value {self.filter_duplicates!r}; must be true or false"
            )
        if self.semantics not in SEMANTICS:
            raise ConfigError(
                f"strategy.semantics: invalid value {self.semantics!r}; allowed: {', '.join(SEMANTICS)}"
            )


def keep_top_openr(group: Group, children: list[Beam], beam_width: int) -> None:
    """OpenR's step: identical children merged (one action each), ranked by their newest step's PRM score;
    the top N/M - finished (finished children included) survive, the finished among them become final beams;
    each survivor is expanded into beam_width children. `group.cap` is N/M."""
    distinct: dict[str, Beam] = {}
    for c in children:
        distinct.setdefault(c.text, c)
    ranked = sorted(distinct.values(), key=lambda c: -(c.step_scores[-1] if c.step_scores else 0.0))
    top = ranked[: group.cap - len(group.finished)]  # stable: the earlier child wins ties
    group.finished.extend(c for c in top if c.finished)
    group.active = [c for c in top if not c.finished]
    group.widths = [beam_width] * len(group.active)
    group.done = not group.active or len(group.finished) >= group.cap


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
    semantics: str = "sal",
) -> list[StrategyResult]:
    """Beam search with N = n beams and beam width M = beam_width (n must be a multiple of M), as `semantics`
    says. `seed` is accepted for the strategy signature; sampling randomness is the engine's."""
    check_search_args(n, beam_width, max_steps)
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics: invalid value {semantics!r}; allowed: {', '.join(SEMANTICS)}")
    if semantics == "openr":
        return search(
            problems,
            policy,
            prm,
            groups_per_problem=1,
            width=n,
            keep=n // beam_width,
            cap=n // beam_width,
            advance=partial(keep_top_openr, beam_width=beam_width),
            sampling=sampling,
            max_steps=max_steps,
            final_selection=final_selection,
            n=n,
            last_to_eos=False,
            include_unfinished=True,
        )
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
