"""Deterministic fake engines for unit tests: `FakePolicy` (a PolicyEngine) and `FakePRM` (a PRMScorer).

Why in the package (tts.testing) and not in tests/: unit tests of the strategies, the runtime and the Ray actors
all need an engine that starts in microseconds, and Ray workers can only import what is installed. No
production module imports tts.testing (the import contract in pyproject.toml).

FakePolicy writes arithmetic-like step-by-step solutions. For the question "3 + 4 - 2" a sample looks like

    3 + 4 = 7.\\n\\n7 - 2 = 5.\\n\\nThe answer is \\boxed{5}.

Each step is wrong with probability `error_rate` (the claimed result is off by 1-3, and later steps build on
the wrong value, as a real model does). Everything is a pure function of (engine seed, prompt, partial solution,
sample index j within the request), so results never depend on batching; at temperature 0 the sample index is
ignored (greedy: all n samples agree). A request's conversation is rendered as "Question: ..." (plus any
history turns), a solution marker and the partial solution; the fake reads the state (steps done, last claimed value) back from the partial text
and solves the conversation's question only (history turns change the randomness, not the problem). Tokens are
whitespace-separated words. Stop strings and `max_tokens` behave as in vLLM: the stop string is not returned,
`finish_reason` is "stop_string" / "length" / "eos".

FakePRM scores a step "a op b = c" by checking the claim with the real verifier's arithmetic (near 1 when true,
near 0 when false, with a little deterministic noise that breaks ties), the final "\\boxed{}" step by whether
every earlier claim was true, other steps near 0.5. It judges each claim on its own, as FakePolicy computes left
to right ("9 - 3 + 8 * 2" is 28 here): a test that only needs arithmetic checked on real problems uses the real,
cheap `tts.engines.rule_prm.RuleArithmeticPRM` instead (it tracks the problem's state and operator precedence).
FakePRM is for what the real one lacks: noise, token counts, prefix caching, call counting, and `mode="hash"`,
where every score is a deterministic pseudo-random number. `PlantedPRM` gives the k-th request of every call
planted scores, so a test knows exactly the weights a search sees.

Both count calls, requests and tokens so that tests can assert lockstep batching and compute accounting.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Sequence
from fractions import Fraction

from tts.engines.protocols import (
    Completion,
    Conversation,
    FinishReason,
    Generation,
    GenerationRequest,
    ScoreRequest,
    StepScores,
)
from tts.engines.rule_prm import parse_expr

SOLUTION_MARKER = "\nSolution:\n"
_TOKEN = re.compile(r"\S+")
_OPS: dict[str, Callable[[int, int], int]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_EXPR = re.compile(r"(\d+)|([+\-*])")
_CLAIM = re.compile(r"(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*(-?\d+)")
_CLAIMED_VALUE = re.compile(r"=\s*(-?\d+)")


def count_tokens(text: str) -> int:
    """The fakes' tokenizer: whitespace-separated words."""
    return len(_TOKEN.findall(text))


def _unit(*parts: object) -> float:
    """A deterministic pseudo-random number in [0, 1) from the parts."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _parse_question(question: str) -> tuple[list[int], list[str]]:
    """Operands and operators of a left-to-right arithmetic chain; a made-up chain when there is none."""
    operands: list[int] = []
    ops: list[str] = []
    for number, op in _EXPR.findall(question):
        if number and len(operands) == len(ops):
            operands.append(int(number))
        elif op and len(operands) == len(ops) + 1:
            ops.append(op)
    if len(ops) == len(operands):  # trailing operator
        ops = ops[:-1]
    if not operands:
        operands = [1 + int(9 * _unit("operand", question, i)) for i in range(3)]
        ops = ["+", "+"]
    return operands, ops


class FakePolicy:
    """A PolicyEngine whose samples are scripted arithmetic solutions (see the module docstring).

    error_rate: probability that a step's claimed result is wrong. unboxed_rate: probability that the final step
    states the answer without \\boxed{} (exercises the grader's fallback). prefix_cache: report prompt tokens
    already seen as a prefix of an earlier prompt as cached. record: keep every call's requests in `history`.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        error_rate: float = 0.3,
        unboxed_rate: float = 0.0,
        prefix_cache: bool = False,
        record: bool = False,
        param_count: int = 1_000_000,
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate: invalid value {error_rate!r}; must be in [0, 1]")
        if not 0.0 <= unboxed_rate <= 1.0:
            raise ValueError(f"unboxed_rate: invalid value {unboxed_rate!r}; must be in [0, 1]")
        self.seed = seed
        self.error_rate = error_rate
        self.unboxed_rate = unboxed_rate
        self.prefix_cache = prefix_cache
        self.record = record
        self.param_count = param_count
        self.model_path = "fake://policy"
        self.calls = 0
        self.requests = 0
        self.completions = 0
        self.prompt_tokens = 0
        self.cached_prompt_tokens = 0
        self.tokens_out = 0
        self.history: list[list[GenerationRequest]] = []
        self._seen: set[str] = set()

    def render(self, prompt: Conversation | str) -> str:
        """The prompt text of a request (raw text as given)."""
        if isinstance(prompt, str):
            return prompt
        turns = "".join(f"\n[{m.role}] {m.content}" for m in prompt.history)
        return f"Question: {prompt.question}{turns}{SOLUTION_MARKER}{prompt.partial}"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.calls += 1
        self.requests += len(requests)
        if self.record:
            self.history.append(list(requests))
        out = []
        for req in requests:
            if req.n < 1 or req.max_tokens < 1:
                raise ValueError(
                    f"GenerationRequest: n={req.n}, max_tokens={req.max_tokens}; both must be >= 1"
                )
            text = self.render(req.prompt)
            prompt_tokens = count_tokens(text)
            cached = self._cached(text)
            completions = tuple(self._complete(req, j) for j in range(req.n))
            self.completions += req.n
            self.prompt_tokens += prompt_tokens
            self.cached_prompt_tokens += cached
            self.tokens_out += sum(c.tokens_out for c in completions)
            out.append(Generation(completions, prompt_tokens=prompt_tokens, cached_prompt_tokens=cached))
        return out

    def _cached(self, prompt: str) -> int:
        if not self.prefix_cache:
            return 0
        best = max((count_tokens(p) for p in self._seen if prompt.startswith(p)), default=0)
        self._seen.add(prompt)
        return best

    def _complete(self, req: GenerationRequest, j: int) -> Completion:
        rendered = self.render(req.prompt)
        question, _, partial = rendered.partition(SOLUTION_MARKER)
        if not _:  # not one of our prompts: the whole prompt is the question
            question, partial = rendered, ""
        salt = ""
        if isinstance(req.prompt, Conversation) and req.prompt.history:
            # earlier turns change the sample (a revision differs from the attempt it revises) but are not
            # part of the question the fake solves
            question, partial = f"Question: {req.prompt.question}", req.prompt.partial
            salt = self.render(Conversation("", req.prompt.history))
        sample = j if req.temperature > 0 else -1
        text = self._continue(question, partial, sample, delimiter="\n\n", salt=salt)
        reason: FinishReason = "eos"
        cuts = [(text.find(s), s) for s in req.stop if s and s in text]
        if cuts:
            text, reason = text[: min(cuts)[0]], "stop_string"
        words = list(_TOKEN.finditer(text))
        if len(words) > req.max_tokens:
            text, reason = text[: words[req.max_tokens - 1].end()], "length"
            words = words[: req.max_tokens]
        return Completion(
            text=text, tokens_out=len(words), finish_reason=reason, cumulative_logprob=-float(len(words))
        )

    def _continue(self, question: str, partial: str, sample: int, delimiter: str, salt: str = "") -> str:
        """The rest of the solution after `partial`: remaining steps joined by the delimiter, then the answer.
        `salt` (the rendered history) enters the randomness only."""
        operands, ops = _parse_question(question)
        question += salt
        if "boxed" in partial or "answer is" in partial:
            return ""
        done = len(_CLAIMED_VALUE.findall(partial))
        values = _CLAIMED_VALUE.findall(partial)
        current = int(values[-1]) if values else operands[0]
        steps = []
        prefix = partial
        for k in range(done, len(ops)):
            b = operands[k + 1]
            result = _OPS[ops[k]](current, b)
            if _unit(self.seed, "err", question, prefix, sample) < self.error_rate:
                delta = 1 + int(3 * _unit(self.seed, "delta", question, prefix, sample))
                result += delta if _unit(self.seed, "sign", question, prefix, sample) < 0.5 else -delta
            step = f"{current} {ops[k]} {b} = {result}."
            steps.append(step)
            prefix += step + delimiter
            current = result
        if _unit(self.seed, "box", question, prefix, sample) < self.unboxed_rate:
            steps.append(f"The answer is {current}.")
        else:
            steps.append(f"The answer is \\boxed{{{current}}}.")
        lead = " " if partial and not partial[-1].isspace() else ""  # after a step cut by max_tokens
        return lead + delimiter.join(steps)


class FakePRM:
    """A PRMScorer with deterministic scores (see the module docstring). mode: "check" (claims are verified) or
    "hash" (pseudo-random). noise: how far scores stray from 0 / 0.5 / 1 in "check" mode. prefix_cache: report
    the tokens of the longest step prefix scored before (same question) as cached, as vLLM's prefix cache does
    for a re-scored partial solution."""

    def __init__(
        self,
        seed: int = 0,
        *,
        mode: str = "check",
        noise: float = 0.1,
        param_count: int = 0,
        prefix_cache: bool = False,
    ) -> None:
        if mode not in ("check", "hash"):
            raise ValueError(f"mode: invalid value {mode!r}; allowed: check, hash")
        if not 0.0 <= noise <= 0.5:
            raise ValueError(f"noise: invalid value {noise!r}; must be in [0, 0.5]")
        self.seed = seed
        self.mode = mode
        self.noise = noise
        self.param_count = param_count
        self.prefix_cache = prefix_cache
        self._seen: set[tuple[str, ...]] = set()
        self.calls = 0
        self.requests = 0
        self.tokens = 0

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        self.calls += 1
        self.requests += len(requests)
        out = []
        for req in requests:
            scores = tuple(self._step_score(req.question, req.steps[: i + 1]) for i in range(len(req.steps)))
            tokens = count_tokens(req.question) + sum(count_tokens(s) for s in req.steps) if req.steps else 0
            self.tokens += tokens
            out.append(StepScores(scores=scores, tokens=tokens, cached_tokens=self._cached(req)))
        return out

    def _cached(self, req: ScoreRequest) -> int:
        """Tokens of the longest prefix (question + first k steps) seen before; records every prefix."""
        if not self.prefix_cache or not req.steps:
            return 0
        cached = 0
        for k in range(len(req.steps), 0, -1):
            if (req.question, *req.steps[:k]) in self._seen:
                cached = count_tokens(req.question) + sum(count_tokens(s) for s in req.steps[:k])
                break
        self._seen.update((req.question, *req.steps[: k + 1]) for k in range(len(req.steps)))
        return cached

    def _step_score(self, question: str, prefix: tuple[str, ...]) -> float:
        u = _unit(self.seed, "prm", question, *prefix)
        if self.mode == "hash":
            return u
        step = prefix[-1]
        claim = _CLAIM.search(step)
        if claim:
            return self._judge(_claim_true(claim), u)
        if "boxed" in step or "answer is" in step:
            claims = [m for s in prefix for m in _CLAIM.finditer(s)]
            return self._judge(bool(claims) and all(_claim_true(m) for m in claims), u)
        return 0.5 + self.noise * (u - 0.5)

    def _judge(self, ok: bool, u: float) -> float:
        return 1.0 - self.noise * u if ok else self.noise * u


class PlantedPRM(FakePRM):
    """A FakePRM whose scores are planted by position: every step of the k-th request of a call scores
    `scores[k % len(scores)]` (token counting and call counting as FakePRM's)."""

    def __init__(self, scores: Sequence[float], *, seed: int = 0, prefix_cache: bool = False) -> None:
        super().__init__(seed, prefix_cache=prefix_cache)
        if not scores or not all(0.0 <= x <= 1.0 for x in scores):
            raise ValueError(
                f"scores: invalid value {scores!r}; must be a non-empty list of values in [0, 1]"
            )
        self.planted = tuple(float(x) for x in scores)

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        out = super().score(requests)
        return [
            StepScores(
                scores=(self.planted[k % len(self.planted)],) * len(r.scores),
                tokens=r.tokens,
                cached_tokens=r.cached_tokens,
            )
            for k, r in enumerate(out)
        ]


def _claim_true(m: re.Match[str]) -> bool:
    """Whether "a op b = c" holds, by the real rule-based verifier's arithmetic (tts.engines.rule_prm)."""
    a, op, b, c = m.groups()
    return parse_expr(f"{a} {op} {b}").value() == Fraction(c)
