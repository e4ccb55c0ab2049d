"""Final-answer extraction from a completion, recording HOW the answer was found (`Extraction.kind`).

Kinds, in the order the project's own evaluator ("tts", tts.grading.rules) tries them:
  boxed        the last `\\boxed{...}` / `\\fbox{...}` (or `\\boxed 5`);
  answer_is    "the answer is X" / "final answer is X" (the last one; X up to the end of its sentence): the marker
               Qwen2.5-Math's evaluation (`evaluation/parser.py: extract_answer`, used by search-and-learn) and
               most few-shot math prompts accept;
  gsm8k        GSM8K's `#### N`;
  last_number  the last number in the text: a FALLBACK, flagged (the report shows accuracy without it);
  none         nothing found, a malformed or empty last box, or an answer inside unfinished thinking.
`gsm8k_answer` and `clean_answer` live in tts.data.answers, shared with the loaders.

A malformed last box (`\\boxed}`, `\\boxed\\fbox`, `\\boxed{\\frac{1}{2` cut off, a runaway box) and an EMPTY last box
(`\\boxed{}`, `\\boxed{ }`, `\\boxed{{}}`, `\\boxed{\\boxed{}}`: nothing once nested boxes and wrapping braces are
removed) give NO answer, flagged `malformed`: the model meant to box an answer and botched it, so neither an
earlier box nor a stray number is taken in its place. A box that only wraps another (`\\boxed{\\boxed{5}}`) gives
the inner answer.

Thinking models: with `thinking_end` given (the policy's end-of-thinking marker), only the text after the last
marker is read; a completion without the marker never finished thinking (no end marker, or cut off by the
token limit inside the thinking) and has no answer (`unfinished_thinking=True`) unless the evaluator reads
answers there (tts.grading.rules).

Why a hand-written scanner and not a regex: boxed answers nest braces (`\\boxed{\\frac{1}{2}}`), escape them
(`\\boxed{\\{1, 2\\}}`) and are cut off mid-way when a completion hits its token limit. A brace-counting scan
handles all three in linear time, and an unclosed box is reported rather than swallowing the rest of the text.
Model output is untrusted: every function here accepts any string (empty, huge, malformed) and never raises.

    >>> extract_answer("5 + 2 = 7.\\n\\nThe answer is \\\\boxed{7}.")
    Extraction(answer='7', kind='boxed', malformed=False, unfinished_thinking=False)
    >>> extract_answer("so she has 18 dollars").kind
    'last_number'
    >>> extract_answer("<think>\\\\boxed{3}", thinking_end="</think>").answer is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from tts.data.answers import clean_answer, gsm8k_answer

BOX_COMMANDS = ("\\boxed", "\\fbox")
MAX_BOXES_TRIED = 32  # box-like commands (\boxedfoo) skipped from the end before giving up on \boxed
MAX_BOX_CHARS = 4_000  # a box longer than this is treated as unclosed (a runaway, not an answer)
FALLBACK_WINDOW = 20_000  # the last-number and "answer is" searches look at the tail of the text only

ExtractionKind = Literal["boxed", "answer_is", "gsm8k", "last_number", "none"]
EXTRACTION_KINDS: tuple[str, ...] = ("boxed", "answer_is", "gsm8k", "last_number", "none")
# Markers a rule may try, in its own order ("minerva": Minerva's "final answer is $X$. I hope", kind answer_is).
MARKERS: tuple[str, ...] = ("boxed", "minerva", "answer_is", "gsm8k", "last_number")
DEFAULT_ORDER: tuple[str, ...] = ("boxed", "answer_is", "gsm8k", "last_number")

_NUMBER = re.compile(r"(?<![\d.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?(?!\d)")
_ANSWER_IS = re.compile(r"(?:\bthe|\bfinal) answer is\b[ \t]*:?", re.IGNORECASE)
_MINERVA = re.compile(r"final answer is \$(.*?)\$\. I hope", re.DOTALL)
_LEADING_NUMBER = re.compile(r"(-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?)\s+[A-Za-z]")


@dataclass(frozen=True)
class Extraction:
    """The extracted final answer (None when the text has none) and how it was found (`kind`)."""

    answer: str | None
    kind: str = "none"  # one of EXTRACTION_KINDS
    malformed: bool = False  # the last box command has no well-formed, non-empty argument: no answer
    unfinished_thinking: bool = False  # a thinking policy's completion that never closed its thinking

    @property
    def fallback(self) -> bool:
        """The answer is the text's last number, not an explicit answer marker."""
        return self.kind == "last_number"


NONE = Extraction(None)


def extract_answer(
    text: str,
    *,
    thinking_end: str | None = None,
    order: Sequence[str] = DEFAULT_ORDER,
    read_unfinished_thinking: bool = False,
) -> Extraction:
    """The final answer of a completion: the first marker of `order` (default: boxed, answer_is, gsm8k,
    last_number) that finds one, read after the last `thinking_end` when one is given (a completion without it
    has no answer unless `read_unfinished_thinking`). Never raises."""
    if not isinstance(text, str) or not text:
        return NONE
    if thinking_end:
        cut = text.rfind(thinking_end)
        if cut < 0 and not read_unfinished_thinking:
            return Extraction(None, "none", False, True)
        if cut >= 0:
            text = text[cut + len(thinking_end) :]
    for marker in order:
        found = _FINDERS[marker](text)
        if found is not None:
            return found
    return NONE


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`), cleaned; None when there is
    none or the last box is malformed or empty."""
    return _last_box(text)[0]


def _boxed(text: str) -> Extraction | None:
    answer, malformed = _last_box(text)
    if malformed:
        return Extraction(None, "none", True)
    return Extraction(answer, "boxed") if answer is not None else None


def _last_box(text: str) -> tuple[str | None, bool]:
    """(answer, malformed) from the last box command: a malformed or empty one stops the search (answer None,
    malformed True); `\\boxedfoo` (another command) is skipped."""
    end = len(text)
    for _ in range(MAX_BOXES_TRIED):
        start, command = max((text.rfind(c, 0, end), c) for c in BOX_COMMANDS)
        if start < 0:
            return None, False
        content = _box_content(text, start + len(command))
        if content is _NOT_A_BOX:
            end = start
            continue
        if content is None:
            return None, True
        cleaned = clean_answer(_unwrap(content))
        return (cleaned, False) if cleaned else (None, True)
    return None, False


def _unwrap(content: str) -> str:
    """`{x}` -> `x` and `\\boxed{x}` -> `x` while one of them wraps the whole content (so `\\boxed{\\boxed{}}` and
    `\\boxed{{}}` are empty)."""
    for _ in range(16):
        s = content.strip()
        inner = None
        if s.startswith("{") and _box_content(s, 0) == s[1:-1]:
            inner = s[1:-1]
        else:
            for command in BOX_COMMANDS:
                if s.startswith(command + "{") and _box_content(s, len(command)) == s[len(command) + 1 : -1]:
                    inner = s[len(command) + 1 : -1]
        if inner is None:
            return s
        content = inner
    return content.strip()


_NOT_A_BOX = "\0not a box"
_BARE = re.compile(r"-?[A-Za-z0-9][A-Za-z0-9.,/]*")  # "\boxed 5", "\boxed -3", "\boxed x"


def _box_content(text: str, i: int) -> str | None:
    """The argument of a box command whose name ends at `i`; None when it is missing, unclosed or not an
    argument (`\\boxed}`, `\\boxed\\fbox`, `\\boxed` at the end); _NOT_A_BOX for `\\boxedfoo` (another command)."""
    n = len(text)
    if i < n and text[i].isalpha():  # \boxedfoo is another command
        return _NOT_A_BOX
    while i < n and text[i] in " \t":
        i += 1
    if i >= n:
        return None
    if text[i] != "{":  # "\boxed 5": the next token, if it is a bare number or symbol
        match = _BARE.match(text, i, min(n, i + 64))
        return match.group(0) if match else None
    depth, j, stop = 0, i, min(n, i + MAX_BOX_CHARS)
    while j < stop:
        ch = text[j]
        if ch == "\\":  # \{ and \} are literal braces; skip the escaped character
            j += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
        j += 1
    return None


def _answer_is(text: str) -> Extraction | None:
    """X of the last "the answer is X" / "final answer is X", up to the end of its sentence or line."""
    tail = text[-FALLBACK_WINDOW:]
    matches = list(_ANSWER_IS.finditer(tail))
    for match in reversed(matches):
        rest = tail[match.end() :].split("\n", 1)[0]
        rest = re.split(r"(?<!\d)\.(?:\s|$)|\.\s", rest, maxsplit=1)[0]
        leading = _LEADING_NUMBER.match(rest.strip())  # "18 dollars" -> "18"
        answer = clean_answer(leading.group(1) if leading else rest)
        answer = answer.replace("$", "") if re.fullmatch(r"-?\$[\d,.]+", answer) else answer
        if answer:
            return Extraction(answer.replace(",", "") if _NUMBER.fullmatch(answer) else answer, "answer_is")
    return None


def _minerva(text: str) -> Extraction | None:
    """Minerva's "final answer is $X$. I hope it is correct." (first occurrence, as Qwen2.5-Math's parser)."""
    match = _MINERVA.search(text)
    answer = clean_answer(match.group(1)) if match else ""
    return Extraction(answer, "answer_is") if answer else None


def _gsm8k(text: str) -> Extraction | None:
    answer = gsm8k_answer(text)
    return Extraction(answer, "gsm8k") if answer is not None else None


def _last_number(text: str) -> Extraction | None:
    number = last_number(text)
    return Extraction(number, "last_number") if number is not None else None


_FINDERS: dict[str, Callable[[str], Extraction | None]] = {
    "boxed": _boxed,
    "minerva": _minerva,
    "answer_is": _answer_is,
    "gsm8k": _gsm8k,
    "last_number": _last_number,
}


def last_number(text: str) -> str | None:
    """The last number written in the text ("1,234" -> "1234", "-2.5", "3/4"), or None."""
    if not isinstance(text, str):
        return None
    found = _NUMBER.findall(text[-FALLBACK_WINDOW:])
    return found[-1].replace(",", "") if found else None


__all__ = [
    "EXTRACTION_KINDS",
    "MARKERS",
    "Extraction",
    "ExtractionKind",
    "clean_answer",
    "extract_answer",
    "gsm8k_answer",
    "last_boxed",
    "last_number",
]
