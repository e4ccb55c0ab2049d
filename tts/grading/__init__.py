"""Grading: one completion of one problem -> a `Grade` (answer, correct, status and the per-row flags).

Why one entry point: the sample pool, every strategy's result and the results store all need the same verdict
and the same flags (no_answer, fallback_extraction, extraction, truncated, status), computed the same way. Math
problems go through the evaluator's extraction rules (`GradingRules`, tts.grading.rules: the marker order, and
whether an answer inside unfinished thinking counts; tts.grading.extract) and `equivalence` (math-verify behind a hang guard and a killable
worker, tts.grading.equivalence / tts.grading.bounded); code problems are dispatched lazily to tts.grading.code,
so importing this package never pulls in the code sandbox. Grading never raises on a malformed completion: a
bad completion is a wrong answer with a flag, and every grade returns within a fixed time (math:
`bounded.TIMEOUT_S` plus a worker start; code: the problem's sandbox timeout).

The runtime grades a batch with `grade_many(problems, texts, finish_reasons, rules=...)`: math rows in parallel
threads (each comparison in its own worker process), code rows in one parallel sandbox batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from tts.data.problem import Problem
from tts.grading.equivalence import answers_equivalent, equivalence, math_equivalent
from tts.grading.extract import EXTRACTION_KINDS, Extraction, extract_answer
from tts.grading.rules import DEFAULT_RULES, EVALUATORS, GradingRules

GradeStatus = Literal["ok", "guarded", "timeout", "malformed", "early_exit", "error"]
GRADE_STATUSES: tuple[str, ...] = ("ok", "guarded", "timeout", "malformed", "early_exit", "error")


@dataclass(frozen=True)
class Grade:
    """The verdict for one completion.

    answer: the extracted final answer (None when there is none).
    correct: the answer is equivalent to the problem's reference (code: the tests pass).
    no_answer: nothing could be extracted. fallback_extraction: the answer is the text's last number, not an
    explicit `\\boxed{}` / "the answer is" / `####` answer. truncated: generation stopped at its token limit.
    extraction: how the answer was found (tts.grading.extract.EXTRACTION_KINDS: boxed | answer_is | gsm8k |
    last_number | none; code rows: program).
    detail: a short human-readable note (why it is wrong, which fallback was used).
    status: how the verdict was reached (the row's `grade_status`):
      "ok"         checked in full (math: string fast path or math-verify; code: the tests ran to the end or
                   failed on their own);
      "guarded"    math: an answer whose evaluation could explode (huge factorial/binomial/Gamma/power tower)
                   was compared as a normalised string only;
      "timeout"    a time limit decided: math-verify killed after bounded.TIMEOUT_S, or the program ran past
                   its sandbox limit; graded incorrect;
      "malformed"  the completion's last answer box is malformed (`\\boxed}`, unclosed) or empty (`\\boxed{}`):
                   no answer taken;
      "early_exit" code: the program exited with code 0 before its tests finished (os._exit / sys.exit /
                   atexit / excepthook): graded incorrect;
      "error"      the grader itself failed (sandbox or worker could not start / died): incorrect, not the
                   completion's fault; rerun to grade it.
    """

    answer: str | None
    correct: bool
    no_answer: bool
    fallback_extraction: bool
    truncated: bool
    detail: str = ""
    status: GradeStatus = "ok"
    extraction: str = "none"


def grade(
    problem: Problem, text: str, finish_reason: str = "eos", rules: GradingRules = DEFAULT_RULES
) -> Grade:
    """Grade completion `text` of `problem` under `rules` (default: the project's evaluator, not a thinking
    policy). `finish_reason == "length"` marks the row truncated."""
    truncated = finish_reason == "length"
    if problem.kind == "code":
        from tts.grading.code import grade_code

        result = grade_code(problem, text)
        kind = "none" if result.no_answer else "program"
        return dataclasses.replace(result, truncated=result.truncated or truncated, extraction=kind)

    extraction = rules.extract(text)
    notes = ["truncated at the token limit"] if truncated else []
    if extraction.malformed:
        note = "malformed or empty answer box (missing, unclosed or empty argument): no answer taken"
        return Grade(None, False, True, False, truncated, "; ".join([note, *notes]), "malformed")
    if extraction.unfinished_thinking:
        note = f"thinking never ended (no {rules.thinking_end!r}): an answer inside it is no answer"
        return Grade(None, False, True, False, truncated, "; ".join([note, *notes]))
    if extraction.answer is None:
        return Grade(None, False, True, False, truncated, "; ".join(["no answer found", *notes]))
    correct, status = equivalence(problem.answer, extraction.answer)
    if status in ("guarded", "timeout", "error"):
        notes.insert(0, f"equivalence check: {status}")
    if extraction.fallback:
        notes.insert(0, "answer taken from the last number (no \\boxed{}, 'the answer is' or ####)")
    if not correct:
        notes.insert(0, f"{extraction.answer!r} is not equivalent to the reference {problem.answer!r}")
    status = "ok" if status == "malformed" else status  # an empty reference: a plain wrong answer
    detail = "; ".join(notes)
    return Grade(
        extraction.answer, correct, False, extraction.fallback, truncated, detail, status, extraction.kind
    )


def grade_many(
    problems: Sequence[Problem],
    texts: Sequence[str],
    finish_reasons: Sequence[str] | None = None,
    *,
    max_workers: int | None = None,
    rules: GradingRules = DEFAULT_RULES,
) -> list[Grade]:
    """Grade texts[i] of problems[i] (finish_reasons[i], default "eos") under `rules`, all in parallel; results in input
    order, each exactly what `grade` returns. Math rows run on `max_workers` threads (default: the bounded
    pool's size); code rows go to the sandbox in one batch (tts.grading.code.grade_many). Never raises for a
    completion; raises ValueError when the three sequences differ in length."""
    reasons = list(finish_reasons) if finish_reasons is not None else ["eos"] * len(texts)
    if not len(problems) == len(texts) == len(reasons):
        raise ValueError(
            f"grade_many: {len(problems)} problems, {len(texts)} texts, {len(reasons)} finish_reasons; "
            "give one of each per row"
        )
    grades: list[Grade | None] = [None] * len(problems)
    code = [i for i, p in enumerate(problems) if p.kind == "code"]
    if code:
        from tts.grading.code import grade_many as grade_code_many

        done = grade_code_many([problems[i] for i in code], [texts[i] for i in code])
        for i, g in zip(code, done, strict=True):
            truncated = g.truncated or reasons[i] == "length"
            kind = "none" if g.no_answer else "program"
            grades[i] = dataclasses.replace(g, truncated=truncated, extraction=kind)
    math = [i for i, p in enumerate(problems) if p.kind != "code"]
    if math:
        from tts.grading import bounded

        workers = max_workers or bounded.pool().max_workers
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(math)))) as threads:
            done = threads.map(lambda i: grade(problems[i], texts[i], reasons[i], rules), math)
            for i, g in zip(math, done, strict=True):
                grades[i] = g
    return [g for g in grades if g is not None]


__all__ = [
    "DEFAULT_RULES",
    "EVALUATORS",
    "EXTRACTION_KINDS",
    "GRADE_STATUSES",
    "Extraction",
    "Grade",
    "GradeStatus",
    "GradingRules",
    "answers_equivalent",
    "equivalence",
    "extract_answer",
    "grade",
    "grade_many",
    "math_equivalent",
]
