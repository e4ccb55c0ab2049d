"""Answer extraction against the evaluators the presets name (tts.grading.rules).

Reference: huggingface/search-and-learn, `src/sal/utils/qwen_math_parser.py`, function `extract_answer(pred_str,
data_name, use_last_number=True)`, called as `extract_answer(completion, "math")` from `src/sal/utils/math.py`
(`extract_completion_answers`). The same function is QwenLM/Qwen2.5-Math's `evaluation/parser.py: extract_answer`
and RyanLiu112/compute-optimal-tts's `src/envs/MATH/parse_utils_qwen.py: extract_answer` (reached through
`src/envs/MATH/env.py: extract_answer`, data_name "math"). Its branches, in order:
  1. "final answer is $" and "$. I hope" in the text: the text between them (Minerva's format);
  2. "boxed" in the text: after the LAST "boxed", a brace-matched argument (or up to the next "$");
  3. "he answer is": everything after the last occurrence; 4. "final answer is": likewise;
  5. otherwise the last match of `-?\\d*\\.?\\d+` (commas removed), `use_last_number=True`.
Each worked example below is traced by hand through those branches; the evaluator `qwen25_math` must give the
same answer (compared after our own cleaning), and `tts`'s difference, where there is one, is stated.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tts.data import Problem
from tts.grading import GradingRules, grade

QWEN = GradingRules(evaluator="qwen25_math")
TTS = GradingRules()


def _extract(rules: GradingRules, text: str) -> tuple[str | None, str]:
    e = rules.extract(text)
    return e.answer, e.kind


def test_search_and_learn_prompt_format_is_read_from_the_box() -> None:
    """search-and-learn's system prompt asks for "Therefore, the final answer is: $\\boxed{answer}$. I hope it is
    correct." Trace: branch 1 needs "final answer is $" (the colon breaks it: "is: $") -> no; branch 2: the text
    after the last "boxed" is "{\\frac{1}{2}}$. I hope it is correct.", brace matching gives "\\frac{1}{2}"."""
    text = "Therefore, the final answer is: $\\boxed{\\frac{1}{2}}$. I hope it is correct."
    assert _extract(QWEN, text) == ("\\frac{1}{2}", "boxed")
    assert _extract(TTS, text) == ("\\frac{1}{2}", "boxed")


def test_minerva_format_comes_before_any_box() -> None:
    """Trace: "So the final answer is $3$. I hope it is correct. \\boxed{4}" has both markers of branch 1:
    split on "final answer is $" -> "3$. I hope it is correct. \\boxed{4}", split on "$. I hope" -> "3". The parser
    answers 3 although a box follows; the project's own rules read the last box, 4."""
    text = "So the final answer is $3$. I hope it is correct. \\boxed{4}"
    assert _extract(QWEN, text) == ("3", "answer_is")
    assert _extract(TTS, text) == ("4", "boxed")


def test_the_answer_is_marker() -> None:
    """Trace: no "boxed"; branch 3 splits on "he answer is" and strips: "7". Both rules take it as an explicit
    answer (kind answer_is), not a fallback; before results schema 5 this project took it as the last number."""
    text = "We get 3 + 4 = 7.\nThe answer is 7"
    assert _extract(QWEN, text) == ("7", "answer_is")
    assert _extract(TTS, text) == ("7", "answer_is")


def test_last_number_fallback_counts_but_is_flagged() -> None:
    """Trace: no marker; branch 5: findall(-?\\d*\\.?\\d+) on "She has 18 apples and 2 pears left" -> ["18", "2"],
    the last is "2". Both rules give "2" and flag it last_number: the report shows accuracy without it."""
    text = "She has 18 apples and 2 pears left"
    assert _extract(QWEN, text) == ("2", "last_number")
    g = grade(_problem("2"), text, rules=QWEN)
    assert (g.correct, g.fallback_extraction, g.extraction) == (True, True, "last_number")


@pytest.mark.parametrize(
    ("text", "trace"),
    [
        ("\\boxed{}", 'after the last "boxed": "{}"; "}" closes at once: a = ""'),
        ("\\boxed{\\boxed{}}", 'after the last "boxed": "{}}"; a = ""'),
        ("x = 5, so \\boxed{ }", 'after the last "boxed": "{ }"; a = " ", stripped ""'),
    ],
)
def test_empty_boxes_are_no_answer(text: str, trace: str) -> None:
    """The parser returns "" (no answer) for an empty last box; so do both rules (before schema 5 this project
    answered "\\boxed{}" for `\\boxed{\\boxed{}}`, and "{}" for `\\boxed{{}}`)."""
    for rules in (QWEN, TTS):
        assert _extract(rules, text) == (None, "none"), trace
        assert grade(_problem("5"), text, rules=rules).no_answer


def test_a_box_inside_a_box_gives_the_inner_answer() -> None:
    """Trace: `\\boxed{\\boxed{5}}`: after the last "boxed": "{5}}"; brace matching gives "5"."""
    assert _extract(QWEN, "\\boxed{\\boxed{5}}") == ("5", "boxed")


def test_gsm8k_marker_is_ours_only() -> None:
    """Trace: "9 * 2 = 18\\n#### 18" has no marker the parser knows; branch 5 takes the last number, "18". The
    answer is the same; the kind differs (our `tts` rules read `####` as an explicit answer)."""
    text = "9 * 2 = 18\n#### 18"
    assert _extract(QWEN, text) == ("18", "last_number")
    assert _extract(TTS, text) == ("18", "gsm8k")


def test_the_parser_reads_unfinished_thinking_and_our_default_does_not() -> None:
    """The parser knows no thinking: a completion cut off inside "<think>" is read whole (branch 2 finds the box).
    The project's rules (`tts`) give no answer for it; `qwen25_math` follows the parser."""
    text = "<think>\nso x = 4, \\boxed{4}. Wait, let me check"
    assert QWEN.extract(text).answer == "4"
    assert GradingRules("qwen25_math", thinking_end="</think>").extract(text).answer == "4"
    assert GradingRules("tts", thinking_end="</think>").extract(text).answer is None


def test_deliberate_difference_a_cut_off_box_is_no_answer() -> None:
    """Trace: "\\boxed{\\frac{1}{2" (cut at the token limit): after the last "boxed", "{\\frac{1}{2"; the brace
    loop ends without closing, so the parser keeps the partial text "\\frac{1}{2". We give no answer (malformed)
    under every evaluator: a cut-off box is not the answer the model meant (tts.grading.extract)."""
    for rules in (QWEN, TTS):
        e = rules.extract("\\boxed{\\frac{1}{2")
        assert (e.answer, e.malformed) == (None, True)


def test_every_preset_names_its_evaluator() -> None:
    """Each sweep preset states whose rules grade it (`dataset.evaluator`); the ones that name a reference
    built on Qwen2.5-Math's parser (search-and-learn, compute-optimal-tts) use qwen25_math."""
    sweeps = Path(__file__).resolve().parents[2] / "sweeps"
    named = {}
    for path in sorted(sweeps.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        named[path.stem] = (data.get("dataset") or {}).get("evaluator")
    assert all(named.values()), {k: v for k, v in named.items() if not v}
    assert named["snell_prm_search"] == named["liu_compute_optimal"] == "qwen25_math"
    assert named["humaneval_repeated_sampling"] == "human_eval"


def _problem(answer: str) -> Problem:
    return Problem(id="t/1", question="q", answer=answer, dataset="t", kind="math")
