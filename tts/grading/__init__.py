"""Grading: one completion of one problem -> a `Grade` (answer, correct, and the per-row flags).

Why one entry point: the sample pool, every strategy's result and the results store all need the same verdict
and the same flags (no_answer, fallback_extraction, truncated), computed the same way. Math problems go through
`extract_answer` (tts.grading.extract) and `answers_equivalent` (math-verify, tts.grading.equivalence); code
problems are dispatched lazily to `tts.grading.code:grade_code`, so importing this package never pulls in the
code sandbox. Grading never raises on a malformed completion: a bad completion is a wrong answer with a flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tts.data.problem import Problem
from tts.grading.equivalence import answers_equivalent, math_equivalent
from tts.grading.extract import Extraction, extract_answer


@dataclass(frozen=True)
class Grade:
    """The verdict for one completion.

    answer: the extracted final answer (None when there is none).
    correct: the answer is equivalent to the problem's reference (code: the tests pass).
    no_answer: nothing could be extracted. fallback_extraction: the answer is the text's last number, not an
    explicit `\\boxed{}` / `####` answer. truncated: generation stopped at its token limit.
    detail: a short human-readable note (why it is wrong, which fallback was used).
    """

    answer: str | None
    correct: bool
    no_answer: bool
    fallback_extraction: bool
    truncated: bool
    detail: str = ""


def grade(problem: Problem, text: str, finish_reason: str = "eos") -> Grade:
    """Grade completion `text` of `problem`. `finish_reason == "length"` marks the row truncated."""
    truncated = finish_reason == "length"
    if problem.kind == "code":
        from tts.grading.code import grade_code

        result = grade_code(problem, text)
        return dataclasses.replace(result, truncated=result.truncated or truncated)

    extraction = extract_answer(text)
    notes = ["truncated at the token limit"] if truncated else []
    if extraction.answer is None:
        return Grade(None, False, True, False, truncated, "; ".join(["no answer found", *notes]))
    correct = answers_equivalent(problem.answer, extraction.answer)
    if extraction.fallback:
        notes.insert(0, "answer taken from the last number (no \\boxed{} or ####)")
    if not correct:
        notes.insert(0, f"{extraction.answer!r} is not equivalent to the reference {problem.answer!r}")
    return Grade(extraction.answer, correct, False, extraction.fallback, truncated, "; ".join(notes))


__all__ = ["Extraction", "Grade", "answers_equivalent", "extract_answer", "grade", "math_equivalent"]
