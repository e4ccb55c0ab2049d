"""Code problems end to end without a model: loaders (HumanEval, MBPP and HumanEval-format local files), program
building, grading through the real sandbox, execution signatures, and the sample pool on code (majority vote by
execution output, best-of-N by verifier score, pass@k from one pool)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from tts.config import ConfigError, DatasetConfig, validate
from tts.data import DATASETS
from tts.data.code import code_jsonl_problems, humaneval_problems, mbpp_problems, prompt_inputs
from tts.engines.protocols import Completion, Generation, GenerationRequest, ScoreRequest, StepScores
from tts.grading import grade
from tts.grading.code import build_program, execution_answers, grade_code, run_programs
from tts.grading.sandbox import SandboxLimits, SandboxResult
from tts.grid import compose
from tts.strategies.base import SamplingSettings
from tts.strategies.pool import build_pool, pass_at_k
from tts.testing.pools import expected_correct, select

GOOD = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])\n"
GOOD_TOO = "    s = sorted(numbers)\n    return any(y - x < threshold for x, y in zip(s, s[1:]))\n"  # same behaviour, other code
WRONG = "    return False\n"
CRASH = "    raise RuntimeError('boom')\n"


@pytest.fixture(scope="module")
def humaneval() -> list:
    return humaneval_problems()


@pytest.fixture(scope="module")
def he0(humaneval: list):
    return humaneval[0]


# ----------------------------------------------------------------------------------------------- data
def test_humaneval_loads_offline_with_grader_metadata(humaneval: list) -> None:
    assert len(humaneval) == 164
    p = humaneval[0]
    assert (p.id, p.kind, p.dataset, p.metadata["entry_point"]) == (
        "HumanEval/0",
        "code",
        "humaneval",
        "has_close_elements",
    )
    assert p.question + "\n" == p.metadata["prompt"] and p.answer.startswith("    for idx")
    assert p.metadata["tests"].rstrip().endswith("check(has_close_elements)")
    assert p.metadata["public_inputs"] == [
        "has_close_elements([1.0, 2.0, 3.0], 0.5)",
        "has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)",
    ]
    assert sum(bool(q.metadata["public_inputs"]) for q in humaneval) >= 140  # the rest vote by identical code


def test_registry_and_config_adapter_load_humaneval() -> None:
    problems = DATASETS.get("humaneval")(DatasetConfig(name="humaneval", limit=3))
    assert [p.id for p in problems] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    picked = DATASETS.get("humaneval")(DatasetConfig(name="humaneval", ids=["HumanEval/53", "HumanEval/23"]))
    assert [p.id for p in picked] == ["HumanEval/53", "HumanEval/23"]
    with pytest.raises(ValueError, match=r"dataset.ids: unknown ids \['HumanEval/999'\]"):
        DATASETS.get("humaneval")(DatasetConfig(name="humaneval", ids=["HumanEval/999"]))


def test_ids_are_rejected_for_datasets_that_ignore_them() -> None:
    cfg = compose(["dataset=arithmetic", "dataset.ids=[a]"])
    with pytest.raises(ConfigError, match="dataset.ids"):
        validate(cfg)
    assert validate(compose(["dataset=humaneval", "dataset.ids=[HumanEval/0]"])).dataset.ids == [
        "HumanEval/0"
    ]


def test_prompt_inputs_read_other_example_styles() -> None:
    prompt = (
        'def f(xs):\n    """Example:\n    f([1, 2]) ==> 3\n    f(("a", "b")) ➞ "ab"\n    not_f(1)\n    """\n'
    )
    assert prompt_inputs(prompt, "f") == ["f([1, 2])", 'f(("a", "b"))']


def test_mbpp_from_a_local_copy(tmp_path: Path) -> None:
    row = {
        "task_id": 2,
        "text": "Write a function to find the shared elements from the given two lists.",
        "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
        "test_list": [
            "assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))",
            "assert set(similar_elements((1, 2, 3, 4), (5, 4, 3, 7))) == set((3, 4))",
        ],
        "test_setup_code": "",
        "challenge_test_list": [],
    }
    path = tmp_path / "mbpp.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (p,) = mbpp_problems(path=str(path))
    assert (p.id, p.metadata["entry_point"]) == ("mbpp/2", "similar_elements")
    assert p.metadata["public_inputs"] == ["set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10)))"]
    assert "Your code should pass this test:" in p.question
    assert grade_code(p, p.answer).correct
    assert not grade_code(p, "def similar_elements(a, b):\n    return ()\n").correct


def test_code_jsonl_maps_columns_and_names_missing_ones(tmp_path: Path) -> None:
    rows = [{"name": "t/0", "src": "def inc(x):\n", "unit": "assert inc(1) == 2\n", "fn": "inc"}]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cols = {"id": "name", "prompt": "src", "tests": "unit", "entry_point": "fn"}
    (p,) = code_jsonl_problems(path, columns=cols)
    assert (p.id, p.kind, p.answer) == ("t/0", "code", "")
    assert grade_code(p, "    return x + 1\n").correct
    with pytest.raises(ValueError, match=r"dataset.columns.tests: .*tasks.jsonl record 1: no column 'test'"):
        code_jsonl_problems(path, columns={"id": "name", "prompt": "src", "entry_point": "fn"})
    with pytest.raises(ValueError, match="unknown fields"):
        code_jsonl_problems(path, columns={"question": "src"})


# --------------------------------------------------------------------------------------- program building
def test_plain_completion_is_cut_at_stop_sequences(he0) -> None:
    ext = build_program(he0, GOOD + "\n\ndef unrelated():\n    pass\nprint('x')\n")
    assert ext.code == GOOD + "\n" and not ext.restated
    assert ext.program == he0.metadata["prompt"] + GOOD + "\n"


def test_fenced_block_and_restated_function_are_used_whole(he0) -> None:
    fenced = "Here you go:\n```python\ndef has_close_elements(numbers, threshold):\n" + GOOD + "```\nDone."
    ext = build_program(he0, fenced)
    assert ext.restated and ext.code.startswith("def has_close_elements") and "Done" not in ext.program
    restated = (
        "def has_close_elements(numbers, threshold):\n" + GOOD + "\nif __name__ == '__main__':\n    pass\n"
    )
    ext2 = build_program(he0, "Sure:\nimport math\n" + restated)
    assert ext2.restated and ext2.code.startswith("import math\ndef ") and "__main__" not in ext2.code
    assert grade_code(he0, fenced).correct and grade_code(he0, restated).correct


# ----------------------------------------------------------------------------------------------- grading
def test_grade_code_through_the_sandbox(he0) -> None:
    good, wrong, crash = grade_code(he0, GOOD), grade_code(he0, WRONG), grade_code(he0, CRASH)
    assert good.correct and good.answer == GOOD and good.detail.startswith("tests passed")
    assert not wrong.correct and wrong.detail == "failed: AssertionError"
    assert not crash.correct and "RuntimeError: boom" in crash.detail
    empty = grade_code(he0, "  \n")
    assert (empty.correct, empty.no_answer) == (False, True)


def test_grade_dispatches_code_and_keeps_truncation(he0) -> None:
    g = grade(he0, GOOD, "length")
    assert g.correct and g.truncated


class FakeSandbox:
    """Counts the programs it is asked to run; every program passes."""

    def __init__(self) -> None:
        self.limits = SandboxLimits(timeout_s=1.5)
        self.ran: list[str] = []

    def run_many(self, programs: Sequence[str], timeout_s: float | None = None) -> list[SandboxResult]:
        self.ran.extend(programs)
        return [SandboxResult("passed", 0, 0.01) for _ in programs]


def test_identical_programs_run_once() -> None:
    box = FakeSandbox()
    programs = ["print(1)  # cache-test", "print(2)  # cache-test", "print(1)  # cache-test"]
    assert [r.status for r in run_programs(programs, box)] == ["passed"] * 3
    assert run_programs(programs[:1], box)[0].passed
    assert box.ran == programs[:2]


# ---------------------------------------------------------------------------------- execution signatures
def test_execution_answers_group_by_behaviour(he0) -> None:
    a = execution_answers(he0, [GOOD, GOOD_TOO, WRONG, "    return True\n", CRASH, ""])
    answers = [e.answer for e in a]
    assert answers[0] == answers[1] and answers[0].startswith("@exec@")
    assert len({answers[0], answers[2], answers[3]}) == 3
    assert answers[4] is not None  # the crash is caught per input: a behaviour of its own
    assert answers[5] is None


def test_without_public_inputs_identical_code_votes_together(he0) -> None:
    bare = type(he0)(
        he0.id,
        he0.question,
        he0.answer,
        he0.dataset,
        kind="code",
        metadata={**he0.metadata, "public_inputs": []},
    )
    a = [e.answer for e in execution_answers(bare, [GOOD, GOOD + "\n", GOOD_TOO, "    return (\n"])]
    assert a[0] == a[1] and a[0].startswith("@code@") and a[2] != a[0] and a[3] is None


# ------------------------------------------------------------------------------------- the pool on code
class FakeCodePolicy:
    """Returns the given completions in order for every request (n of them, cycling)."""

    def __init__(self, completions: Sequence[str]) -> None:
        self.completions = list(completions)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for r in requests:
            texts = [self.completions[j % len(self.completions)] for j in range(r.n)]
            out.append(
                Generation(tuple(Completion(t, len(t.split()), "eos") for t in texts), prompt_tokens=10)
            )
        return out


class FakeCodeVerifier:
    """Scores a candidate 0.9 when its text contains `liked`, else 0.1 (a verifier with a preference)."""

    def __init__(self, liked: str) -> None:
        self.liked = liked

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        return [
            StepScores(tuple(0.9 if self.liked in "\n\n".join(r.steps) else 0.1 for _ in r.steps), 5)
            for r in requests
        ]


def test_pool_strategies_on_code(he0) -> None:
    completions = [WRONG, GOOD, "    return False  # again\n", GOOD_TOO, WRONG, "    return True\n"]
    sampling = SamplingSettings(temperature=0.8, max_tokens=64, aggregation="last")
    (pool,) = build_pool(
        [he0], FakeCodePolicy(completions), FakeCodeVerifier("sorted"), n_max=6, sampling=sampling, seed=0
    )
    correct = [grade(he0, c.text).correct for c in pool.candidates]
    assert correct == [False, True, False, True, False, False]
    # majority by execution output: the three "return False" programs form one class and win at n=6 ...
    assert pool.answers[0] == pool.answers[2] == pool.answers[4] and pool.answers[1] == pool.answers[3]
    assert not grade(he0, select(pool, "majority_vote", 6, "last").text).correct
    # ... while best-of-N by verifier score picks the liked (sorted) implementation
    best = select(pool, "best_of_n", 6, "last")
    assert best.extra["chosen"] == 3 and grade(he0, best.text).correct
    # pass@k for every k <= N_max from the one pool: Chen et al.'s estimator = brute force over k-subsets
    for k in range(1, 7):
        subsets = list(itertools.combinations(range(6), k))
        brute = sum(any(correct[i] for i in s) for s in subsets) / len(subsets)
        assert pass_at_k(6, sum(correct), k) == pytest.approx(brute)
    assert expected_correct(pool, "best_of_n", 6, "last", correct).value == 1.0
    assert expected_correct(pool, "best_of_n", 1, "last", correct).value == pytest.approx(2 / 6)
