"""Evaluators: whose answer-extraction rules a sweep's grading follows (`dataset.evaluator`), and the rules a
grader applies to one completion (`GradingRules`: the evaluator plus the policy's end-of-thinking marker).

Why named evaluators: the same completion is "correct" under one paper's evaluation and "no answer" under
another's (a last number taken as the answer, an answer written inside unfinished thinking). A preset that
reproduces a paper names the evaluator whose rules it follows, the name enters every id (tts.identity: it is
a config field), and every row records how its answer was found (`extraction`, tts.grading.extract).

  tts          the project's own rules (default): boxed > "the answer is" > `####` > last number (flagged as a
               fallback); an answer inside unfinished thinking is no answer; an empty or malformed last box is
               no answer.
  qwen25_math  Qwen2.5-Math's evaluation, as search-and-learn runs it (huggingface/search-and-learn,
               `src/sal/utils/qwen_math_parser.py: extract_answer(pred, "math")`, called from
               `src/sal/utils/math.py`; the same parser as QwenLM/Qwen2.5-Math `evaluation/parser.py`): Minerva's
               "final answer is $X$. I hope" > the last `boxed` > "he answer is" / "final answer is" > the last
               number (`use_last_number=True`); no `####` marker; the parser knows no thinking, so it reads
               the whole completion. Deliberate differences (tests/conformance/test_grading_evaluators.py): a
               cut-off box is no answer here (the parser keeps the cut-off text), answers are compared with
               math-verify (tts.grading.equivalence), not its `strip_string` + `math_equal`.
  human_eval   code: run the problem's tests in the sandbox (openai/human-eval `execution.py:
               check_correctness`, tts.grading.code); math rows under it follow `tts`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tts.grading.extract import DEFAULT_ORDER, Extraction, extract_answer


@dataclass(frozen=True)
class Evaluator:
    """One evaluator's extraction rules: the markers tried, in order, and whether an answer written inside
    unfinished thinking counts."""

    name: str
    order: tuple[str, ...]
    read_unfinished_thinking: bool
    reference: str  # repository, file, function it follows


EVALUATORS: dict[str, Evaluator] = {
    "tts": Evaluator("tts", DEFAULT_ORDER, False, "this project (tts.grading.extract)"),
    "qwen25_math": Evaluator(
        "qwen25_math",
        ("minerva", "boxed", "answer_is", "last_number"),
        True,
        "huggingface/search-and-learn src/sal/utils/qwen_math_parser.py extract_answer "
        "(= QwenLM/Qwen2.5-Math evaluation/parser.py extract_answer)",
    ),
    "human_eval": Evaluator(
        "human_eval", DEFAULT_ORDER, False, "openai/human-eval human_eval/execution.py check_correctness"
    ),
}
DEFAULT_EVALUATOR = "tts"


@dataclass(frozen=True)
class GradingRules:
    """How one sweep cell grades a completion: its evaluator and its policy's end-of-thinking marker (None: not
    a thinking policy). Built from a config by tts.config.grading_rules."""

    evaluator: str = DEFAULT_EVALUATOR
    thinking_end: str | None = None

    def __post_init__(self) -> None:
        if self.evaluator not in EVALUATORS:
            raise ValueError(f"evaluator: invalid value {self.evaluator!r}; allowed: {', '.join(EVALUATORS)}")

    def extract(self, text: str) -> Extraction:
        """The final answer of `text` under these rules (tts.grading.extract.extract_answer)."""
        e = EVALUATORS[self.evaluator]
        return extract_answer(
            text,
            thinking_end=self.thinking_end,
            order=e.order,
            read_unfinished_thinking=e.read_unfinished_thinking,
        )


DEFAULT_RULES = GradingRules()

__all__ = ["DEFAULT_EVALUATOR", "DEFAULT_RULES", "EVALUATORS", "Evaluator", "GradingRules"]
