"""Final-answer extraction from a completion: the last `\\boxed{...}`, then GSM8K's `#### N`, then a flagged
last-number fallback (`gsm8k_answer` and `clean_answer` live in tts.data.answers, shared with the loaders). A malformed last box (`\\boxed}`, `\\boxed\\fbox`, `\\boxed{\\frac{1}{2` cut off, a runaway
box) gives NO answer, flagged `malformed`: the model meant to box an answer and botched it, so neither an
earlier box nor a stray number is taken in its place.

Why a hand-written scanner and not a regex: boxed answers nest braces (`\\boxed{\\frac{1}{2}}`), escape them
(`\\boxed{\\{1, 2\\}}`) and are cut off mid-way when a completion hits its token limit. A brace-counting scan
handles all three in linear time, and an unclosed box is reported rather than swallowing the rest of the text.
Model output is untrusted: every function here accepts any string (empty, huge, malformed) and never raises.

    >>> extract_answer("5 + 2 = 7.\\n\\nThe answer is \\\\boxed{7}.")
    Extraction(answer='7', fallback=False)
    >>> extract_answer("so she has 18 dollars")
    Extraction(answer='18', fallback=True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tts.data.answers import clean_answer, gsm8k_answer

BOX_COMMANDS = ("\\boxed", "\\fbox")
MAX_BOXES_TRIED = 32  # unclosed boxes tried from the end before giving up on \boxed
MAX_BOX_CHARS = 4_000  # a box longer than this is treated as unclosed (a runaway, not an answer)
FALLBACK_WINDOW = 20_000  # the last-number fallback looks at the tail of the text only

_NUMBER = re.compile(r"(?<![\d.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?(?!\d)")


@dataclass(frozen=True)
class Extraction:
    """The extracted final answer (None when the text has none) and whether it came from the last-number
    fallback rather than an explicit answer marker."""

    answer: str | None
    fallback: bool = False
    malformed: bool = False  # the last box command has no well-formed argument: no answer


def extract_answer(text: str) -> Extraction:
    """The final answer of a completion: last `\\boxed{}` / `\\fbox{}`, else the last GSM8K `#### N`, else the
    last number in the text (flagged `fallback=True`), else `Extraction(None, False)`. Never raises."""
    if not isinstance(text, str) or not text:
        return Extraction(None, False)
    boxed, malformed = _last_box(text)
    if malformed:
        return Extraction(None, False, True)
    if boxed is not None:
        return Extraction(boxed, False)
    marked = gsm8k_answer(text)
    if marked is not None:
        return Extraction(marked, False)
    number = last_number(text)
    if number is not None:
        return Extraction(number, True)
    return Extraction(None, False)


def last_boxed(text: str) -> str | None:
    """The content of the last non-empty `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`), cleaned; None when
    there is none or the last box is malformed."""
    return _last_box(text)[0]


def _last_box(text: str) -> tuple[str | None, bool]:
    """(answer, malformed) from the last box command: empty boxes are skipped, a malformed one stops the
    search (answer None, malformed True)."""
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
        cleaned = clean_answer(content)
        if cleaned:
            return cleaned, False
        end = start
    return None, False


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


def last_number(text: str) -> str | None:
    """The last number written in the text ("1,234" -> "1234", "-2.5", "3/4"), or None."""
    if not isinstance(text, str):
        return None
    found = _NUMBER.findall(text[-FALLBACK_WINDOW:])
    return found[-1].replace(",", "") if found else None


__all__ = ["Extraction", "clean_answer", "extract_answer", "gsm8k_answer", "last_boxed", "last_number"]
