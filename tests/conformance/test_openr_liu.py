"""Beam search with semantics "openr" against OpenR as Liu et al. (2025) run it, RyanLiu112/compute-optimal-tts:
src/reason/guided_search/tree.py `SearchTree.beam_search` and `SearchTree._expand_leaf_node`, src/envs/base_env.py
`CoTEnv.update_legal_actions` and `get_done_and_info`, src/scripts/run.sh (tree_max_depth 40, width N,
num_seq = beam_size). Worked examples traced by hand from `beam_search`'s loop:

    for i in range(max_step + 1):
        for each node of the current top-k (best first):
            terminated -> end_nodes (stop once len(end_nodes) == beam_size)
            else -> its children, best `k = beam_size - len(end_nodes)` by value, pushed on a heap
        top_k_nodes = heapq.nsmallest(k, ...)        # the k best children over all nodes
        expand each: env.step; terminated or truncated -> set_as_terminate_node, else _expand_leaf_node

A child's value is `rs[-1]`, the PRM's score of its newest step ("prm-last"); the root is expanded into
`max_actions` = N children and every later node into `max_actions // beam_size` = M; a node's identical
children are one action (`processed_act not in text_list`).
"""

from __future__ import annotations

from tts.data.problem import Problem
from tts.strategies.base import SamplingSettings
from tts.strategies.beam_search import keep_top_openr
from tts.strategies.beam_search import run as beam_search
from tts.strategies.tree import Beam, Group
from tts.testing.fake_engines import FakePolicy, FakePRM

SAMPLING = SamplingSettings(temperature=0.8, max_tokens=96, step_max_tokens=16, aggregation="min")
PROBLEMS = [
    Problem(id="a", question="9 - 3 + 8 * 2 - 5", answer="23", dataset="t"),
    Problem(id="b", question="7 + 6 - 4 + 2", answer="11", dataset="t"),
]


def test_finished_children_compete_and_the_beam_shrinks_to_n_over_m_end_nodes():
    """N = 4, M = 2, so beam_size = 2. Values are newest-step scores.
      i = 0: root's 4 children a .6, b .9 (terminated), c .8, d .3 -> k = 2: b, c. b is an end node now
             (OpenR moves it at i = 1, before anything else happens); c is expanded into M = 2 children.
      i = 1: k = 2 - 1 = 1: c's children e .95 (terminated), f .5 -> e.
      i = 2: e -> end_nodes = [b, e] = beam_size: stop.
    Final beams b, e (N/M = 2), never N."""
    group = Group(problem=0, width=4, keep=2, cap=2, active=[Beam(problem=0)])
    a, b, c, d = (
        Beam(0, "a", step_scores=(0.6,)),
        Beam(0, "b", step_scores=(0.9,), finish_reason="eos"),
        Beam(0, "c", step_scores=(0.8,)),
        Beam(0, "d", step_scores=(0.3,)),
    )
    keep_top_openr(group, [a, b, c, d], beam_width=2)
    assert group.finished == [b] and group.active == [c] and group.widths == [2] and not group.done
    e, f = Beam(0, "ce", step_scores=(0.8, 0.95), finish_reason="eos"), Beam(0, "cf", step_scores=(0.8, 0.5))
    keep_top_openr(group, [e, f], beam_width=2)
    assert group.finished == [b, e] and group.active == [] and group.done


def test_a_finished_child_that_misses_the_cut_is_dropped():
    """Unlike search-and-learn, a terminated child that is not among the top k is gone (it never reaches
    end_nodes): k = 2 of x .9, y .8, z .7 (terminated) keeps x and y only."""
    group = Group(problem=0, width=3, keep=2, cap=2, active=[Beam(problem=0)])
    x, y = Beam(0, "x", step_scores=(0.9,)), Beam(0, "y", step_scores=(0.8,))
    z = Beam(0, "z", step_scores=(0.7,), finish_reason="eos")
    keep_top_openr(group, [x, y, z], beam_width=3)
    assert group.active == [x, y] and group.finished == [] and group.widths == [3, 3]


def test_children_rank_by_their_newest_step_not_the_aggregate():
    """`child_values.append(rs[-1])` ("prm-last"; prm-min is commented out): p's steps [.2, .95] outrank q's
    [.8, .6], though by min (this preset's aggregation) q would lead."""
    group = Group(problem=0, width=2, keep=1, cap=1, active=[Beam(problem=0)])
    p = Beam(0, "p", step_scores=(0.2, 0.95), rank=0.2)
    q = Beam(0, "q", step_scores=(0.8, 0.6), rank=0.6)
    keep_top_openr(group, [q, p], beam_width=2)
    assert group.active == [p]


def test_identical_children_are_one_action():
    """`if len(processed_act) > 0 and processed_act not in text_list`: two identical children take one place."""
    group = Group(problem=0, width=4, keep=2, cap=2, active=[Beam(problem=0)])
    same = [Beam(0, "s", step_scores=(0.9,)), Beam(0, "s", step_scores=(0.9,))]
    other = Beam(0, "t", step_scores=(0.1,))
    keep_top_openr(group, [*same, other], beam_width=2)
    assert group.active == [same[0], other]


def test_whole_run_expands_each_kept_node_into_m_and_ends_with_at_most_n_over_m():
    """N = 8, M = 2 (beam_size 4): the first call asks 8 children of the root, every later one M = 2 per kept
    node (`max_actions // beam_size`), at most 4 nodes; the final beams are at most N/M = 4."""
    policy = FakePolicy(5, error_rate=0.4, record=True)
    results = beam_search(
        PROBLEMS,
        policy,
        FakePRM(5, mode="hash"),
        n=8,
        sampling=SAMPLING,
        seed=0,
        beam_width=2,
        max_steps=40,
        semantics="openr",
    )
    assert [q.n for q in policy.history[0]] == [8, 8]  # one request of n = 8 per problem
    for call in policy.history[1:]:
        assert all(q.n == 2 for q in call)
        per_problem: dict[str, int] = {}
        for q in call:
            per_problem[q.prompt.question] = per_problem.get(q.prompt.question, 0) + 1
        assert max(per_problem.values()) <= 4
    for r in results:
        assert 0 < len(r.candidates) <= 4 and r.extra["finished"] <= 4


def test_the_depth_limit_truncates_and_the_truncated_are_final_beams():
    """`get_done_and_info`: `truncated = len(self.action_history) >= max_length`; a truncated node is set
    terminated and becomes an end node. At depth 1 on a five-step problem: one ordinary step (stopped at the
    delimiter), and the best first steps (up to N/M = 2) are the final beams, unfinished; the error-free
    policy's four first steps are identical, one action, so here there is one."""
    policy = FakePolicy(0, error_rate=0.0, record=True)
    [result] = beam_search(
        PROBLEMS[:1],
        policy,
        FakePRM(0, mode="hash"),
        n=4,
        sampling=SAMPLING,
        seed=0,
        beam_width=2,
        max_steps=1,
        semantics="openr",
    )
    assert len(policy.history) == 1 and all(q.stop == ("\n\n",) for q in policy.history[0])
    assert len(result.candidates) == 1  # the error-free policy's 4 first steps are one action
    assert result.candidates[0].finish_reason == "length" and len(result.candidates[0].steps) == 1
