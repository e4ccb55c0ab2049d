"""budget_forcing through the real vLLM engine (the session's tiny random Qwen2 policy), with planted thinking
markers: thinking_end = "\\n", which the tiny model emits in about 3 tokens in 10 (tests/fixtures/models.py), so
chains reach the end of their thinking often, and short caps cut others.

Every request and Generation crossing the protocol is recorded, and the mechanics are checked against those
records rather than the strategy's own bookkeeping: each round's requests are exactly the transitions of the
previous round's completions (a chain that stopped at the marker or EOS with extensions and budget left gets
"Wait" and the budget left; one that used up B gets the marker forced; the others the marker), no chain
generates more than B thinking tokens, a forced chain generated exactly B, a chain holds min(W, times it
reached the end) extensions, the answer round starts only after W extensions or the cap, one generate call per
round for all chains, and the result's token counts are the records' sums.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from tts.data.problem import Problem
from tts.engines.protocols import Generation, GenerationRequest
from tts.strategies.base import SamplingSettings
from tts.strategies.budget_forcing import run
from tts.testing.fake_engines import FakePRM

pytestmark = pytest.mark.integration

OPEN, END, WAIT = "<think>\n", "\n", "Wait"
# s1's text after a forced end marker (the strategy's default forced_answer_prefix)
FORCED = "\nFinal Answer:"
ANSWER = 8
SAMPLING = SamplingSettings(temperature=1.0, thinking_start=OPEN, thinking_end=END)
PROBLEMS = [
    Problem(id="b1", question="Compute 3 + 4", answer="7", dataset="t"),
    # several KV blocks of question: later rounds find it (and the thinking so far) in the prefix cache
    Problem(id="b2", question=" ".join(f"{i} + {i + 1}" for i in range(100)), answer="0", dataset="t"),
]
CHAINS = 4


@dataclass
class Recorded:
    """Forwards to the real engine and keeps every call's requests and generations."""

    inner: object
    calls: list[tuple[list[GenerationRequest], list[Generation]]] = field(default_factory=list)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = self.inner.generate(requests)
        self.calls.append((list(requests), out))
        return out


def _key(req: GenerationRequest) -> tuple[str, str, int, tuple[str, ...]]:
    return req.prompt.question, req.prompt.partial, req.max_tokens, req.stop


def _check_against_records(policy: Recorded, results, b: int, w: int) -> dict[str, int]:
    """Replay the records: every round is the previous round's transitions. Returns what was seen."""
    seen = Counter()
    expected = Counter({(p.question, OPEN, b, (END,)): CHAINS for p in PROBLEMS})
    thinking_out = answer_out = 0
    for requests, generations in policy.calls:
        actual = Counter()
        for req in requests:
            actual[_key(req)] += req.n
        assert actual == expected  # lockstep: every live chain of every problem, in its expected state
        expected = Counter()
        for req, gen in zip(requests, generations, strict=True):
            assert len(gen.completions) == req.n
            question, partial = req.prompt.question, req.prompt.partial
            if not req.stop:  # an answer: the chain is done
                assert req.max_tokens == ANSWER and (partial.endswith(END) or partial.endswith(END + FORCED))
                waits = partial.count(WAIT)
                assert waits <= w
                seen["answers"] += req.n
                seen["chains_at_w"] += req.n * (waits == w)
                answer_out += sum(c.tokens_out for c in gen.completions)
                continue
            used = b - req.max_tokens
            waits = partial.count(WAIT)
            for c in gen.completions:
                thinking_out += c.tokens_out
                now = used + c.tokens_out
                assert now <= b, "a chain generated more than B thinking tokens"
                if c.finish_reason == "length":  # the cap: the marker is forced
                    assert now == b
                    seen["forced"] += 1
                    thought = partial + c.text  # s1: a newline unless the thinking ends with one
                    closing = ("" if thought.endswith("\n") else "\n") + END + FORCED
                    expected[(question, thought + closing, ANSWER, ())] += 1
                elif waits < w and now < b:  # reached the end with extensions left: suppressed
                    seen["extensions"] += 1
                    expected[(question, partial + c.text + WAIT, b - now, (END,))] += 1
                else:  # reached the end with none left (or exactly at B): answer
                    seen["ended"] += 1
                    expected[(question, partial + c.text + END, ANSWER, ())] += 1
    assert not expected, "chains were left without an answer"
    assert seen["answers"] == CHAINS * len(PROBLEMS)
    # the results carry exactly what the engine reported
    gens = [g for _, gs in policy.calls for g in gs]
    assert sum(r.tokens_in for r in results) == sum(g.prompt_tokens for g in gens)
    assert sum(r.tokens_cached for r in results) == sum(g.cached_prompt_tokens for g in gens)
    assert sum(r.tokens_out for r in results) == thinking_out + answer_out
    assert sum(sum(r.extra["thinking_tokens"]) for r in results) == thinking_out
    assert sum(sum(r.extra["answer_tokens"]) for r in results) == answer_out
    for r in results:
        assert r.generations == CHAINS and len(r.candidates) == CHAINS
        for t, e, f in zip(r.extra["thinking_tokens"], r.extra["extensions"], r.extra["forced"], strict=True):
            assert t <= b and e <= w and (not f or t == b)
        for c, e in zip(r.candidates, r.extra["extensions"], strict=True):
            assert c.text.startswith(OPEN) and c.text.count(WAIT) == e
    seen["calls"] = len(policy.calls)
    seen["thinking_tokens"] = thinking_out
    seen["answer_tokens"] = answer_out
    seen["tokens_in"] = sum(g.prompt_tokens for g in gens)
    seen["tokens_cached"] = sum(g.cached_prompt_tokens for g in gens)
    seen["cached_after_round_1"] = sum(g.cached_prompt_tokens for _, gs in policy.calls[1:] for g in gs)
    print(f"B={b} W={w}: {dict(seen)}")
    return seen


def _run(engine, b: int, w: int):
    policy = Recorded(engine)
    results = run(
        PROBLEMS,
        policy,
        FakePRM(),
        n=CHAINS,
        sampling=SAMPLING,
        seed=0,
        thinking_tokens=b,
        extensions=w,
        wait_text=WAIT,
        answer_max_tokens=ANSWER,
    )
    return policy, results


def test_extends_exactly_w_times_on_vllm(tiny_policy_engine):
    policy, results = _run(tiny_policy_engine, b=48, w=2)
    seen = _check_against_records(policy, results, b=48, w=2)
    assert seen["extensions"] > 0 and seen["chains_at_w"] > 0  # the suppression path ran, up to W
    assert seen["calls"] <= 2 + 2  # W + 2 rounds at most
    assert seen["cached_after_round_1"] > 0  # later rounds reuse the prefix cache


def test_caps_thinking_at_b_tokens_on_vllm(tiny_policy_engine):
    """W large: chains keep thinking until the cap cuts them at exactly B tokens."""
    policy, results = _run(tiny_policy_engine, b=12, w=100)
    seen = _check_against_records(policy, results, b=12, w=100)
    assert seen["forced"] > 0
    assert seen["calls"] <= 12 + 2  # each thinking round generates at least one token


def test_w_zero_only_caps_on_vllm(tiny_policy_engine):
    policy, results = _run(tiny_policy_engine, b=4, w=0)
    seen = _check_against_records(policy, results, b=4, w=0)
    assert seen["extensions"] == 0 and seen["calls"] == 2  # one thinking round, one answer round
    assert seen["forced"] + seen["ended"] == CHAINS * len(PROBLEMS)
