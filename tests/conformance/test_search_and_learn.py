"""Beam search (semantics "sal") and DVTS against huggingface/search-and-learn (Beeching et al. 2024, the open
replication of Snell et al.'s PRM search): src/sal/search/beam_search.py `_beam_search` and
src/sal/search/diverse_verifier_tree_search.py `_dvts`, with src/sal/config.py `Config` and the recipes under
recipes/Llama-3.2-1B-Instruct/. Worked examples traced by hand from those functions, then whole runs on the
fakes (tts.testing.fake_engines).
"""

from __future__ import annotations

from tts.data.problem import Problem
from tts.strategies.base import SamplingSettings
from tts.strategies.beam_search import run as beam_search
from tts.strategies.dvts import run as dvts
from tts.strategies.tree import Beam, Group, _spread, keep_best, keep_top
from tts.testing.fake_engines import FakePolicy, FakePRM

SAMPLING = SamplingSettings(temperature=0.8, max_tokens=96, step_max_tokens=16, aggregation="last")
PROBLEMS = [
    Problem(id="a", question="9 - 3 + 8 * 2 - 5", answer="23", dataset="t"),
    Problem(id="b", question="7 + 6 - 4 + 2", answer="11", dataset="t"),
]


def sal_duplicate(active: int, n: int) -> list[int]:
    """`_beam_search`: `repeats = (config.n // len(active_beams)) + 1`,
    `(active_beams * repeats)[: config.n]`: how many of the N next children each active beam gets."""
    copies = (list(range(active)) * (n // active + 1))[:n]
    return [copies.count(i) for i in range(active)]


def test_every_step_expands_the_kept_beams_into_n_children_as_sal_duplicates_them():
    """N = 8 over 2 kept beams: [b0, b1] * 5 cut to 8 gives 4 each; over 3 (fewer live than N/M or after
    duplicate filtering): [b0, b1, b2] * 3 cut to 8 gives 3, 3, 2; over 1: 8."""
    for n in (4, 8, 16):
        for active in range(1, n + 1):
            assert _spread(n, active) == sal_duplicate(active, n), (n, active)
    assert sal_duplicate(3, 8) == [3, 3, 2]


def test_finished_beams_are_set_aside_and_the_first_n_to_finish_are_final():
    """`_beam_search`, N = 4, M = 2 (keep N/M = 2): a child that stops on EOS goes to `completed_beams` (in the
    order of `active_beams`) and out of the ranking; the top 2 of the others by aggregated score survive
    (`np.argsort(agg_scores)[-(config.n // config.beam_width):]`). With `sort_completed` off (its default and
    the Llama beam-search recipe's), the final beams are `completed_beams[: config.n]`, the first four to finish.
      step 1 children: c0 EOS .30, c1 .90, c2 .50, c3 .70 -> completed [c0]; kept c1, c3
      step 2 children: d0 EOS .20, d1 EOS .80, d2 EOS .10, d3 EOS .99 -> completed [c0, d0, d1, d2, d3]
    The final beams are c0, d0, d1, d2: d3 (.99) finished fifth and is cut, so the argmax answer is d1's (.80).
    This module's rule before kept the best N of all finished beams by score (c0, d1, d3, ... : d3)."""
    group = Group(problem=0, width=4, keep=2, cap=4, active=[Beam(problem=0)])
    c = [
        Beam(0, "c0", finish_reason="eos", rank=0.3),
        Beam(0, "c1", rank=0.9),
        Beam(0, "c2", rank=0.5),
        Beam(0, "c3", rank=0.7),
    ]
    keep_top(group, c)
    assert group.finished == [c[0]] and group.active == [c[1], c[3]] and not group.done
    d = [Beam(0, f"d{i}", finish_reason="eos", rank=r) for i, r in enumerate((0.2, 0.8, 0.1, 0.99))]
    keep_top(group, d)
    assert group.finished == [c[0], d[0], d[1], d[2]] and group.done
    assert max(group.finished, key=lambda b: b.rank) is d[1]


def test_filter_duplicates_keeps_one_of_identical_partial_solutions():
    """`if config.filter_duplicates:` keeps the first index of each `current_text` before the top-k cut; the
    Llama-3.2-1B recipe turns it on. Identical texts score alike, so the first and the best coincide."""
    group = Group(problem=0, width=4, keep=2, cap=4, active=[Beam(problem=0)])
    children = [
        Beam(0, "x", rank=0.9),
        Beam(0, "x", rank=0.9),
        Beam(0, "y", rank=0.5),
        Beam(0, "z", rank=0.1),
    ]
    keep_top(group, children, filter_duplicates=True)
    assert [b.text for b in group.active] == ["x", "y"]


def test_dvts_returns_every_leaf_of_each_subtree_last_expansion():
    """`_dvts`: each subtree keeps `best_score_ind = np.argmax(agg_scores)` of its beam_width children and is
    pruned once that child stops on EOS (or its text holds "boxed{"); the output then holds, for every subtree,
    `previous_text + next_texts[i]` for i in range(beam_width), with `best_scores = all_scores[i]`: N leaves,
    the unchosen siblings included. M = 3: children e0 .4, e1 .9 (EOS), e2 .7 -> all three are final."""
    group = Group(problem=0, width=3, keep=1, cap=1, active=[Beam(problem=0)])
    e = [Beam(0, "e0", rank=0.4), Beam(0, "e1", finish_reason="eos", rank=0.9), Beam(0, "e2", rank=0.7)]
    keep_best(group, e, all_leaves=True)
    assert group.finished == e and group.done
    group = Group(problem=0, width=3, keep=1, cap=1, active=[Beam(problem=0)])
    keep_best(group, e)  # final_leaves: best, the rule before
    assert group.finished == [e[1]]
    group = Group(problem=0, width=3, keep=1, cap=1, active=[Beam(problem=0)])
    live = [Beam(0, "f0", rank=0.4), Beam(0, "f1", rank=0.9)]
    keep_best(group, live, all_leaves=True)  # best not finished: the subtree follows it
    assert group.active == [live[1]] and not group.finished and not group.done


def test_dvts_whole_run_has_n_leaves_and_picks_by_argmax_over_all():
    """`dvts()`: `pred` = the completion of `np.argmax` of aggregated `best_scores` over all N leaves of a
    problem. N = 8, M = 2: 4 subtrees x 2 leaves."""
    results = dvts(
        PROBLEMS, FakePolicy(2, error_rate=0.4), FakePRM(2, mode="hash"), n=8, sampling=SAMPLING, seed=0,
        beam_width=2, max_steps=8,
    )  # fmt: skip
    for r in results:
        assert len(r.candidates) == 8
        assert r.candidates[r.extra["chosen"]].score == max(c.score for c in r.candidates)


def test_beam_search_whole_run_keeps_at_most_n_final_beams_and_n_children_a_step():
    """`_beam_search` expands N children every iteration (`len(active_beams) != config.n` -> duplicated) and
    returns N completed beams: every generate call holds N samples per live problem."""
    policy = FakePolicy(3, error_rate=0.4, record=True)
    results = beam_search(
        PROBLEMS, policy, FakePRM(3, mode="hash"), n=8, sampling=SAMPLING, seed=0, beam_width=2, max_steps=8
    )
    for r in results:
        assert 0 < len(r.candidates) <= 8 and r.extra["finished"] <= 8
    for call in policy.history:
        per_problem: dict[str, int] = {}
        for q in call:
            per_problem[q.prompt.question] = per_problem.get(q.prompt.question, 0) + q.n
        assert set(per_problem.values()) == {8}
