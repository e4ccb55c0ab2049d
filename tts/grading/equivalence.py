"""Are two final answers the same? math-verify with thread-safe settings, behind a hang guard, a time bound and
caches.

Why these choices:
- math-verify (`parse` + `verify`) knows that `\\frac{1}{2}` = `0.5`, `3\\sqrt{13}` = `\\sqrt{117}`, `\\{1,2\\}` =
  `\\{2,1\\}`, `x = 2` = `2`. Its default timeouts use SIGALRM, which raises "doesn't support threaded
  environment" inside Ray async actors and thread pools, so we pass `parsing_timeout=None` and
  `timeout_seconds=None` and bound the time ourselves:
  1. `is_risky` sends answers whose evaluation is known to explode (exponent towers, huge exponents,
     factorials / binomials / Gamma of big numbers, nested factorials, overlong answers) to a plain string
     comparison before sympy ever sees them (status "guarded");
  2. everything else runs in a killable worker process (tts.grading.bounded) with a deadline (status
     "timeout" when it was killed). So `equivalence()` returns within a fixed time on any input.
- Unicode math that models write (`90°`, `√2`, `3×4`, `−5`, `π`) is rewritten to LaTeX first
  (`unicode_to_latex`), so `90°` = `90^\\circ` and `√2` = `\\sqrt{2}`.
- Majority vote compares every pair of N answers, and answers repeat: verdicts are cached per unordered pair
  (a thread-safe LRU), parses per string inside each worker.
- `verify` is not symmetric (gold vs prediction); `answers_equivalent(a, b)` accepts either direction, so it
  is a usable equality for clustering answers as well as for grading against a reference.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

from tts.grading import bounded

MAX_MATH_CHARS = 400  # longer answers are compared as normalised strings only

_BIG = r"\d{5,}|\d+\s*\^|10\s*\^"  # an operand that is a 5+ digit number or a power
_RISKY = re.compile(
    r"\^\s*\{[^{}]*\^"  # exponent inside an exponent: 9^{9^{9}}
    r"|\^\s*\(?\s*\d+\s*\)?\s*\^"  # 9^9^9
    r"|\^\s*\{?\s*\(?\s*\d{6,}"  # exponent with six or more digits
    r"|\d{4,}\s*!"  # factorial of a number >= 1000
    r"|!\s*\)*\s*\}*\s*!"  # factorial of a factorial: 5!!, (5!)!, {(3!)!}!
    r"|[)}]\s*!"  # factorial of a bracketed expression: (10^5)!, {20}!
    r"|\^\s*\{?[^{}]*!"  # a factorial in an exponent: {(10!)}^{(10!)}
    r"|\\(?:d|t)?binom\s*\{?\s*(?:" + _BIG + r")"  # \binom{10^9}{...}, \binom{123456}{7}
    r"|\\binom\s*\{[^{}]*\}\s*\{\s*(?:" + _BIG + r")"
    r"|\\choose\s*\{?\s*(?:" + _BIG + r")"
    r"|(?:" + _BIG + r")[^{}]*\\choose"
    r"|\\(?:Gamma|operatorname\{Gamma\})\s*(?:\\left)?\s*[({]\s*(?:" + _BIG + r")"  # \Gamma(10^6)
)
_STRIP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\$|\s")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_UNICODE = {
    "°": "^\\circ",
    "×": "\\times ",
    "·": "\\cdot ",
    "÷": "\\div ",
    "−": "-",
    "–": "-",
    "π": "\\pi ",
    "∞": "\\infty ",
    "≤": "\\le ",
    "≥": "\\ge ",
    "≠": "\\ne ",
    "±": "\\pm ",
    "½": "\\frac{1}{2}",
    "¼": "\\frac{1}{4}",
    "¾": "\\frac{3}{4}",
    "²": "^2",
    "³": "^3",
}
_ROOT = re.compile(r"(√|∛)\s*(\{[^{}]*\}|\([^()]*\)|\d+(?:\.\d+)?|\\?[A-Za-z]+)")


def unicode_to_latex(answer: str) -> str:
    """`90°` -> `90^\\circ`, `√2` -> `\\sqrt{2}`, `∛(x+1)` -> `\\sqrt[3]{x+1}`, `3×4` -> `3\\times 4`, `−5` -> `-5`,
    `π` -> `\\pi`, ... (the symbols in `_UNICODE`); other text is unchanged."""
    if answer.isascii():
        return answer
    s = _ROOT.sub(_root, answer)
    for symbol, latex in _UNICODE.items():
        s = s.replace(symbol, latex)
    return s.strip()


def _root(match: re.Match[str]) -> str:
    arg = match.group(2)
    if arg[0] in "({":
        arg = arg[1:-1]
    return ("\\sqrt{" if match.group(1) == "√" else "\\sqrt[3]{") + arg + "}"


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
    () when it does not parse. Cached: the same answer string is parsed once per process. Unbounded: call it
    only through `symbolic_equivalent` in a bounded worker, or on trusted strings."""
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


def symbolic_equivalent(a: str, b: str) -> bool:
    """math-verify in this process, either direction; unparsable answers compare as normalised strings.
    UNBOUNDED: this is what a tts.grading.bounded worker runs; everyone else calls `equivalence`."""
    pa, pb = parse_answer(a), parse_answer(b)
    if not pa or not pb:
        return normalize(a) == normalize(b)
    return _verify(pa, pb) or _verify(pb, pa)


def _prepare(a: object, b: object) -> tuple[str, str] | None:
    if not isinstance(a, str) or not isinstance(b, str):
        return None
    a, b = unicode_to_latex(a.strip()), unicode_to_latex(b.strip())
    return (a, b) if a and b else None


def math_equivalent(a: str, b: str, timeout_s: float | None = None) -> bool:
    """math-verify's verdict alone (no string fast path), bounded like `equivalence`; risky answers compare as
    normalised strings. Never raises."""
    pair = _prepare(a, b)
    if pair is None:
        return False
    if is_risky(pair[0]) or is_risky(pair[1]):
        return normalize(pair[0]) == normalize(pair[1])
    return bounded.compare(*pair, timeout_s or bounded.TIMEOUT_S)[0]


def equivalence(a: str, b: str, timeout_s: float | None = None) -> tuple[bool, str]:
    """(equal, status) for answers a and b. status: "ok" (decided by the string fast path or math-verify),
    "guarded" (a risky answer: decided by normalised strings only), "timeout" (math-verify was killed after
    `timeout_s`, default tts.grading.bounded.TIMEOUT_S: not equal), "error" (its worker died or could not
    start: not equal), "malformed" (a or b missing, empty or not a string: not equal). Thread-safe, cached per
    unordered pair, never raises, returns within the time bound (module docstring)."""
    pair = _prepare(a, b)
    if pair is None:
        return False, "malformed"
    a, b = sorted(pair)  # one cache entry per unordered pair
    try:
        return _equivalence_cached(a, b, timeout_s or bounded.TIMEOUT_S)
    except Exception:  # defensive: a grader must not take a sweep down
        return False, "error"


@lru_cache(maxsize=65_536)
def _equivalence_cached(a: str, b: str, timeout_s: float) -> tuple[bool, str]:
    if normalize(a) == normalize(b):
        return True, "ok"
    if is_risky(a) or is_risky(b):
        return False, "guarded"
    return bounded.compare(a, b, timeout_s)


def answers_equivalent(a: str, b: str) -> bool:
    """True when answers `a` and `b` (bare answer strings, e.g. a reference and an extracted answer) denote the
    same mathematical object. Thread-safe, cached, bounded in time, never raises; False when either is missing
    or empty. `equivalence` also says how the verdict was reached."""
    return equivalence(a, b)[0]


def _quiet_timeout_warning() -> None:
    """math-verify logs a warning the first time timeouts are disabled; we disable them on purpose."""

    class _DropTimeoutWarning(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Timeout is disabled" not in record.getMessage()

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_DropTimeoutWarning())


_quiet_timeout_warning()
