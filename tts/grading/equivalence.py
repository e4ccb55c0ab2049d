"""Are two final answers the same? math-verify with thread-safe settings, behind caches and a hang guard.

Why these choices:
- math-verify (`parse` + `verify`) knows that `\\frac{1}{2}` = `0.5`, `3\\sqrt{13}` = `\\sqrt{117}`, `\\{1,2\\}` =
  `\\{2,1\\}`, `x = 2` = `2`. Its default timeouts use SIGALRM, which raises "doesn't support threaded
  environment" inside Ray async actors and thread pools, so we pass `parsing_timeout=None` and
  `timeout_seconds=None`.
- Without timeouts a model answer such as `9^{9^{9^{9}}}` would make sympy evaluate a gigantic number for
  ever, so `is_risky` sends exponent towers, huge exponents/factorials and overlong answers to a plain string
  comparison instead.
- Majority vote compares every pair of N answers, and answers repeat: parses are cached per string and
  verdicts per pair (both LRU caches are thread-safe).
- `verify` is not symmetric (gold vs prediction); `answers_equivalent(a, b)` accepts either direction, so it
  is a usable equality for clustering answers as well as for grading against a reference.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

MAX_MATH_CHARS = 400  # longer answers are compared as normalised strings only

_RISKY = re.compile(
    r"\^\s*\{[^{}]*\^"  # exponent inside an exponent: 9^{9^{9}}
    r"|\^\s*\(?\s*\d+\s*\)?\s*\^"  # 9^9^9
    r"|\^\s*\{?\s*\(?\s*\d{6,}"  # exponent with six or more digits
    r"|\d{4,}\s*!"  # factorial of a number >= 1000
    r"|!\s*!"  # factorial of a factorial
)
_STRIP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\$|\s")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")


def is_risky(answer: str) -> bool:
    """True when symbolic comparison could run (nearly) for ever or blow up memory: compare as strings."""
    return len(answer) > MAX_MATH_CHARS or _RISKY.search(answer) is not None


def normalize(answer: str) -> str:
    """A canonical string form for the fast path and the fallback comparison: no spacing/sizing commands,
    no `$`, `\\text{x}` -> `x`, `\\dfrac` -> `\\frac`, no trailing period."""
    s = _TEXT.sub(r"\1", answer)
    s = _STRIP.sub("", s).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return s.rstrip(".")


@lru_cache(maxsize=16_384)
def parse_answer(answer: str) -> tuple[Any, ...]:
    """math-verify's parse of a bare answer (wrapped as `\\boxed{...}` so LaTeX and plain forms both parse);
    () when it does not parse. Cached: the same answer string is parsed once per process."""
    from math_verify import parse

    try:
        return tuple(parse(f"\\boxed{{{answer}}}", parsing_timeout=None))
    except Exception:  # math-verify/sympy/antlr errors on malformed model output
        return ()


def _verify(gold: tuple[Any, ...], pred: tuple[Any, ...]) -> bool:
    from math_verify import verify

    try:
        return bool(verify(list(gold), list(pred), timeout_seconds=None))
    except Exception:
        return False


def math_equivalent(a: str, b: str) -> bool:
    """math-verify's verdict alone (no string fast path); unparsable or risky answers fall back to comparing
    normalised strings. Never raises."""
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    a, b = a.strip(), b.strip()
    if not a or not b:
        return False
    if is_risky(a) or is_risky(b):
        return normalize(a) == normalize(b)
    pa, pb = parse_answer(a), parse_answer(b)
    if not pa or not pb:
        return normalize(a) == normalize(b)
    return _verify(pa, pb) or _verify(pb, pa)


@lru_cache(maxsize=65_536)
def _equivalent_cached(a: str, b: str) -> bool:
    if normalize(a) == normalize(b):
        return True
    return math_equivalent(a, b)


def answers_equivalent(a: str, b: str) -> bool:
    """True when answers `a` and `b` (bare answer strings, e.g. a reference and an extracted answer) denote the
    same mathematical object. Thread-safe, cached, never raises; False when either is missing or empty."""
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    a, b = a.strip(), b.strip()
    if not a or not b:
        return False
    if a > b:  # one cache entry per unordered pair
        a, b = b, a
    try:
        return _equivalent_cached(a, b)
    except Exception:  # defensive: a grader must not take a sweep down
        return False


def _quiet_timeout_warning() -> None:
    """math-verify logs a warning the first time timeouts are disabled; we disable them on purpose."""

    class _DropTimeoutWarning(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Timeout is disabled" not in record.getMessage()

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_DropTimeoutWarning())


_quiet_timeout_warning()
