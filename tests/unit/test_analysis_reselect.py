"""Re-selection from stored candidates (tts.analysis.reselect): on the fakes, picking from one run's stored
final candidates gives exactly the answer the strategy returns when run with that final_selection, for tree
search and sequential revision; rows without candidates are NaN; bad input names the field."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tts.analysis.reselect import reselect
from tts.data.problem import Problem
from tts.grading import answers_equivalent
from tts.strategies import STRATEGIES
from tts.strategies.base import SamplingSettings
from tts.testing.fake_engines import FakePolicy, FakePRM

SAMPLING = SamplingSettings(temperature=0.8, max_tokens=64, step_max_tokens=16, aggregation="min")
PROBLEMS = [
    Problem(id=f"p{i}", question=q, answer=a, dataset="t")
    for i, (q, a) in enumerate(
        [("3 + 4", "7"), ("5 * 2 + 1", "11"), ("9 - 3 + 8 * 2 - 5", "23"), ("6 + 6 - 1", "11")]
    )
]
CASES = {"beam_search": {"beam_width": 2, "max_steps": 6}, "sequential_revision": {"parallel": 2}}


def _correct(problem: Problem, answer: str | None) -> bool:
    return answer is not None and answers_equivalent(answer, problem.answer)


def _run(name: str, selection: str, seed: int):
    return STRATEGIES.get(name).run(
        PROBLEMS,
        FakePolicy(),
        FakePRM(),
        n=4,
        sampling=SAMPLING,
        seed=seed,
        final_selection=selection,
        **CASES[name],
    )


def _rows(results, name: str) -> pd.DataFrame:
    """What a cell file holds for these results: the candidates and, for revisions, the config columns that say
    how the strategy picked among them (hierarchically, chains of n / parallel attempts)."""
    config = {"n": 4, "config.strategy.parallel": 2, "config.strategy.selection_scope": "hierarchical"}
    return pd.DataFrame(
        {
            **({k: [v] * len(results) for k, v in config.items()} if name == "sequential_revision" else {}),
            "candidate_answers": [[c.answer for c in r.candidates] for r in results],
            "candidate_scores": [[c.score for c in r.candidates] for r in results],
            "candidate_correct": [
                [_correct(p, c.answer) for c in r.candidates] for p, r in zip(PROBLEMS, results, strict=True)
            ],
        }
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_reselecting_stored_candidates_gives_what_the_strategy_returns(name):
    checked, differs = 0, 0
    for seed in range(6):
        stored = _run(name, "argmax", seed)
        rows = _rows(stored, name)
        for selection in ("argmax", "weighted", "majority"):
            direct = _run(name, selection, seed)
            # the final candidates do not depend on the selection: only the pick among them does
            assert [[c.text for c in r.candidates] for r in direct] == [
                [c.text for c in r.candidates] for r in stored
            ]
            want = [float(_correct(p, r.answer)) for p, r in zip(PROBLEMS, direct, strict=True)]
            assert reselect(rows, selection).tolist() == want
            checked += len(want)
            differs += sum(d.answer != s.answer for d, s in zip(direct, stored, strict=True))
    assert checked == 6 * 3 * len(PROBLEMS)
    # the fakes' revision chains disagree, so the selections pick different answers there (12 picks)
    assert differs > 0 or name == "beam_search"


def test_selections_can_disagree_on_planted_candidates():
    rows = pd.DataFrame(
        {
            "candidate_answers": [["5", "7", "7"]],
            "candidate_scores": [[0.9, 0.3, 0.4]],
            "candidate_correct": [[False, True, True]],
        }
    )
    assert reselect(rows, "argmax").tolist() == [0.0]  # the best score is wrong
    assert reselect(rows, "majority").tolist() == [1.0]  # two votes for 7
    assert reselect(rows, "weighted").tolist() == [0.0]  # 0.9 for 5 beats 0.3 + 0.4 for 7


def test_revision_cells_are_re_picked_hierarchically_as_snell_selects():
    """Issue 20's example, stored as a cell file holds it (two chains of 3 attempts; chain 2's third attempt, an 8
    scored 0, changes no pick). Chains [(5, .9), (7, .5), (7, .5)] and [(9, .7), (5, .6), (8, 0)], weighted.
    Flat: 5 has .9 + .6 = 1.5, 7 has 1.0, 9 has .7 -> 5. Hierarchical (tts.strategies.sequential_revision
    .hierarchical_choice): chain 1 picks 7 (1.0 > .9), chain 2 picks 9 (.7 > .6); across the picks, each with its
    own score (7: .5, 9: .7) -> 9."""
    rows = pd.DataFrame(
        {
            "candidate_answers": [["5", "7", "7", "9", "5", "8"]],
            "candidate_scores": [[0.9, 0.5, 0.5, 0.7, 0.6, 0.0]],
            "candidate_correct": [[False, False, False, True, False, False]],
            "n": [6],
            "config.strategy.parallel": [2],
            "config.strategy.selection_scope": ["hierarchical"],
        }
    )
    assert reselect(rows, "weighted").tolist() == [1.0]  # 9
    assert reselect(rows.assign(**{"config.strategy.selection_scope": "flat"}), "weighted").tolist() == [0.0]


def test_rows_without_candidates_are_nan_and_bad_input_names_the_field():
    rows = pd.DataFrame(
        {"candidate_answers": [None, []], "candidate_scores": [None, []], "candidate_correct": [None, []]}
    )
    out = reselect(rows, "majority").tolist()
    assert math.isnan(out[0]) and out[1] == 0.0  # a pool row; a search that finished no candidate
    with pytest.raises(ValueError, match="selection: invalid value 'best'"):
        reselect(rows, "best")
    with pytest.raises(ValueError, match="candidate_scores: column missing"):
        reselect(rows[["candidate_answers"]], "argmax")
