"""The rule-based arithmetic PRM (claims re-computed against the problem's own state) and the `none` PRM."""

from __future__ import annotations

import pytest

from tts.config import EngineConfig, PRMConfig
from tts.data.arithmetic import LEVELS, generate
from tts.engines import PRM_KINDS
from tts.engines.protocols import PRMScorer, ScoreRequest, StepScores
from tts.engines.rule_prm import parse_question, score_steps
from tts.grading import grade


@pytest.mark.parametrize(
    ("question", "steps", "expected"),
    [
        # right steps, then the right final answer
        ("3 + 2 + 4", ["3 + 2 = 5.", "5 + 4 = 9.", "The answer is \\boxed{9}."], [1.0, 1.0, 1.0]),
        # a false equation
        ("56 + 26", ["56 + 26 = 112.", "The answer is \\boxed{112}."], [0.0, 0.0]),
        # a TRUE equation on the wrong operand: the remaining operand is 4, not 5
        ("3 + 2 + 4", ["3 + 2 = 5.", "5 + 5 = 10.", "The answer is \\boxed{10}."], [1.0, 0.0, 0.0]),
        # the question wrapped by the policy's prompt template
        ("Compute 7 + 5 + 3", ["7 + 5 = 12.", "12 + 3 = 15.", "The answer is \\boxed{15}."], [1.0, 1.0, 1.0]),
        # subtraction, and a valid regrouping (4 + (5 - 2))
        ("4 + 5 - 2", ["4 + 5 = 9.", "9 - 2 = 7.", "The answer is \\boxed{7}."], [1.0, 1.0, 1.0]),
        ("4 + 5 - 2", ["5 - 2 = 3.", "4 + 3 = 7."], [1.0, 1.0]),
        # an invalid regrouping: 9 - 5 + 2 is not 9 - (5 + 2)
        ("9 - 5 + 2", ["5 + 2 = 7.", "9 - 7 = 2."], [0.0, 0.0]),
        # commuted operands, a step with nothing to check, a restatement, an unboxed final answer
        ("3 + 4", ["4 + 3 = 7.", "Let's check.", "3 + 4 = 7.", "The answer is 7."], [1.0, 0.5, 0.5, 1.0]),
        # a chain over the whole expression, then a claim about other numbers that also boxes a wrong answer
        ("3 + 2 + 4", ["3 + 2 + 4 = 5 + 4 = 9.", "7 + 6 = \\boxed{13}"], [1.0, 0.0]),
        # a chain with a false link
        ("3 + 2 + 4", ["3 + 2 + 4 = 5 + 4 = 10."], [0.0]),
        # skipping straight to a right or a wrong answer
        ("8 + 8", ["\\boxed{16}"], [1.0]),
        ("8 + 8", ["The answer is \\boxed{15}."], [0.0]),
        ("8 + 8", ["The answer is \\boxed{sixteen}."], [0.0]),
        # precedence: * before +
        ("2 + 3 * 4", ["3 * 4 = 12.", "2 + 12 = 14.", "\\boxed{14}"], [1.0, 1.0, 1.0]),
        ("2 + 3 \\times 4", ["2 + 3 = 5.", "5 \\times 4 = 20."], [0.0, 0.0]),
        # outside its domain: false equations are still caught, the rest is unchecked
        ("What is the capital of France?", ["4 + 3 = 7.", "2 + 2 = 5.", "\\boxed{Paris}"], [0.5, 0.0, 0.5]),
        ("3 + 4", [], []),
        ("3 + 4", [""], [0.5]),
    ],
)
def test_rule_prm_scores(question: str, steps: list[str], expected: list[float]) -> None:
    assert score_steps(question, steps) == expected


def test_parse_question_finds_the_expression() -> None:
    assert parse_question("Compute 7 + 5 + 3.").value() == 15
    assert parse_question("7 + 5 + 3 = ? Compute 2 + 2").value() == 4  # the last, not an equation's side
    assert parse_question("no numbers") is None


def test_canonical_solutions_of_every_generated_problem_score_one() -> None:
    """A left-to-right worked solution (the few-shot format) is fully verified; corrupting any one result
    makes that step score 0, and the final answer the grader extracts is correct."""
    for problem in generate(sorted(LEVELS), per_level=5, seed=7):
        operands, ops = problem.metadata["operands"], problem.metadata["ops"]
        value, steps = operands[0], []
        for op, x in zip(ops, operands[1:], strict=True):
            result = value + x if op == "+" else value - x
            steps.append(f"{value} {op} {x} = {result}.")
            value = result
        steps.append(f"The answer is \\boxed{{{value}}}.")
        question = f"Compute {problem.question}"
        assert score_steps(question, steps) == [1.0] * len(steps), problem
        assert grade(problem, "\n\n".join(steps)).correct
        for i in range(len(steps) - 1):
            corrupted = list(steps)
            corrupted[i] = corrupted[i].replace(" = ", " = 1", 1)  # 7 -> 17
            assert score_steps(question, corrupted)[i] == 0.0


def test_rule_prm_builds_from_the_registry() -> None:
    prm = PRM_KINDS.get("rule_arithmetic")(PRMConfig(name="rule", kind="rule_arithmetic"), EngineConfig())
    assert isinstance(prm, PRMScorer)
    assert prm.param_count == 0
    out = prm.score(
        [
            ScoreRequest("3 + 2 + 4", ("3 + 2 = 5.", "5 + 5 = 10.")),
            ScoreRequest("Compute 56 + 26", ("56 + 26 = 82.", "The answer is \\boxed{82}.")),
        ]
    )
    assert out == [StepScores((1.0, 0.0), tokens=0), StepScores((1.0, 1.0), tokens=0)]


def test_none_prm_scores_every_step_one() -> None:
    prm = PRM_KINDS.get("none")(PRMConfig(name="none", kind="none"), EngineConfig())
    assert isinstance(prm, PRMScorer)
    out = prm.score([ScoreRequest("q", ("a", "b", "c")), ScoreRequest("q", ())])
    assert out == [StepScores((1.0, 1.0, 1.0), tokens=0), StepScores((), tokens=0)]
