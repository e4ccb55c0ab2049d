"""Reference-answer parsing shared by the data loaders and the grader: GSM8K's `#### N` and answer cleaning.

Why in data: reference answers are parsed when a data set is loaded (a GSM8K solution "... #### 1,234" becomes
"1234"), so this belongs to the data layer; the grader (tts.grading.extract) imports it to read the same
marker in model completions. Keeping it here means tts.data never imports tts.grading (layers import only
downwards). Every function accepts any string and never raises.

    >>> gsm8k_answer("Janet sells 16 - 3 - 4 = 9 duck eggs a day. ... #### 18")
    '18'
    >>> clean_answer(" $42$. ")
    '42'
"""

from __future__ import annotations

import re

GSM8K_WINDOW = 20_000  # the `####` marker is looked for in the tail of the text only

_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
_THOUSANDS = re.compile(r"-?\$?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def gsm8k_answer(text: str) -> str | None:
    """The answer after the last GSM8K `#### ` marker ("#### $1,234." -> "1234"), or None when there is none."""
    if not isinstance(text, str) or "####" not in text:
        return None
    for match in reversed(list(_GSM8K.finditer(text[-GSM8K_WINDOW:]))):
        cleaned = clean_answer(match.group(1))
        if _THOUSANDS.fullmatch(cleaned) or cleaned.startswith("$"):
            cleaned = cleaned.replace(",", "").replace("$", "").strip()
        if cleaned:
            return cleaned
    return None


def clean_answer(answer: str) -> str:
    """Strip what surrounds an answer but is not part of it: whitespace, `$...$`, a trailing period/comma."""
    s = answer.strip()
    for _ in range(3):
        before = s
        if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
            s = s.strip("$").strip()
        s = s.rstrip(".,;: ").strip()
        if s == before:
            break
    return s
