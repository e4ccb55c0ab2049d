"""Compute accounting of every PRM strategy against a hand count, on the tiny vLLM policy judged by itself.

What is counted: each result's generations, tokens_in, tokens_cached, tokens_out and prm_tokens. How: the
policy and the judge PRM (tts.engines.judge_prm, in the RLHFlow `chat_steps` format and in the plain `judge`
format) run over ONE recording wrapper of the session's `vllm.LLM`, which keeps every `llm.generate` call
(prompts, sampling params, raw outputs). The test replays that trace with nothing of the strategies' or the
engines' code:

    policy prompt  "<|im_start|>user\\n{question}<|im_end|>\\n<|im_start|>assistant\\n{partial}", tokenized here
                   (a trailing "\\n\\n" as it is when text follows it); the partial must be a beam of the step before
    child          partial + completion + "\\n\\n" when it stopped at the delimiter; a lookahead child is scored
                   with the greedy rollout of its text appended
    judge prompt   one per step prefix of every child, rendered from the judge's documented format; PRM tokens
                   read = its tokenized length, computed = read - what vLLM's prefix cache served
    generations    step-level samples / mean steps per group: N for beam search and DVTS (N samples per step),
                   (N x steps + rollouts) / steps for lookahead, N for a pool of N samples

Budgets are tiny (N = 4, 2 problems, at most 3 steps of 10 tokens) and the text is noise: only counts matter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from tts.data.problem import Problem
from tts.strategies import STRATEGIES
from tts.strategies.base import SamplingSettings

pytestmark = pytest.mark.integration
pytest.importorskip("vllm")

N = 4
DELIM = "\n\n"
SAMPLING = SamplingSettings(temperature=1.0, max_tokens=40, step_max_tokens=10, aggregation="min")
PROBLEMS = [
    Problem(id="c1", question="Compute 3 + 4", answer="7", dataset="t"),
    # ~300 tokens: whole KV blocks of shared prefix, so vLLM's prefix cache serves some prompts (policy and judge)
    Problem(
        id="c2", question="Compute " + " + ".join(str(i) for i in range(1, 150)), answer="11175", dataset="t"
    ),
]
RUNS = {
    "best_of_n": {},
    "weighted_best_of_n": {},
    "beam_search": {"beam_width": 2, "max_steps": 3},
    "dvts": {"beam_width": 2, "max_steps": 3},
    "lookahead": {"beam_width": 2, "max_steps": 3, "lookahead": 1},
}
JUDGES = {  # format -> (yes token, no token)
    "chat_steps": ("+", "-"),  # RLHFlow/Llama3.1-8B-PRM-Deepseek-Data
    "judge": ("Yes", "No"),
}


# ------------------------------------------------------------------------------------------- the trace
@dataclass
class Call:
    prompts: list[Any]  # policy: {"prompt_token_ids": [...]}; judge: prompt strings
    params: list[Any]  # one SamplingParams per prompt
    outputs: list[Any]  # vLLM RequestOutputs


@dataclass
class RecordingLLM:
    """Forwards to the session's `vllm.LLM` and keeps every generate call (not a fake: vLLM does the work)."""

    inner: Any
    calls: list[Call] = field(default_factory=list)

    def get_tokenizer(self) -> Any:
        return self.inner.get_tokenizer()

    def generate(self, prompts, sampling_params=None, *, use_tqdm=False, tokenization_kwargs=None):
        kwargs = {} if tokenization_kwargs is None else {"tokenization_kwargs": tokenization_kwargs}
        outputs = self.inner.generate(prompts, sampling_params, use_tqdm=use_tqdm, **kwargs)
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        self.calls.append(Call(list(prompts), list(params), list(outputs)))
        return outputs


# ---------------------------------------------------------------------------------- the hand renderings
def head(question: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def steps_of(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(DELIM) if p.strip())


def judge_prompt(fmt: str, question: str, steps: tuple[str, ...]) -> str:
    if fmt == "chat_steps":
        turns = ""
        for i, step in enumerate(steps):
            turns += f"<|im_start|>user\n{f'{question} {step}' if i == 0 else step}<|im_end|>\n"
            if i < len(steps) - 1:
                turns += "<|im_start|>assistant\n+<|im_end|>\n"
        return turns + "<|im_start|>assistant\n"
    body = f"Problem: {question}\n\nSolution so far:\n{DELIM.join(steps)}\n\nIs the last step correct? Answer Yes or No."
    return head(body)


def as_written(tok: Any, text: str) -> list[int]:
    """Token ids of a prompt, a trailing "\\n\\n" tokenized as it is when the model writes a next step."""
    ids = tok.encode(text + "The", add_special_tokens=False)
    probe = tok.encode("The", add_special_tokens=False)
    if text == text.rstrip() or ids[-len(probe) :] != probe:
        return tok.encode(text, add_special_tokens=False)
    return ids[: -len(probe)]


@dataclass
class Count:
    samples: int = 0  # completions sampled, rollouts included
    rollouts: int = 0  # of those, greedy lookahead rollouts
    tokens_in: int = 0
    tokens_cached: int = 0
    tokens_out: int = 0
    prm_read: int = 0
    prm_cached: int = 0
    subtree_steps: int = 0  # groups live per sampling step, summed (DVTS: samples / M per step)
    steps: int = 0  # sampling calls the problem took part in


def replay(rec: RecordingLLM, fmt: str, width: int) -> list[Count]:
    """The hand count per problem from the trace; asserts on the way that every prompt is what it must be.
    width: children per group per step (M for DVTS, N otherwise), to count live groups per step."""
    tok = rec.get_tokenizer()
    questions = [p.question for p in PROBLEMS]
    counts = [Count() for _ in PROBLEMS]
    # (problem, text) pairs the policy may continue: the empty solution, then the children of the step before
    beams: set[tuple[int, str]] = {(i, "") for i in range(len(PROBLEMS))}
    children: list[list[Any]] = []  # [problem, own text, scored text] of the current step
    for call in rec.calls:
        if isinstance(call.prompts[0], str):  # the judge: every step prefix of every child, nothing else
            expected = [
                (i, judge_prompt(fmt, questions[i], steps_of(scored)[: k + 1]))
                for i, _, scored in children
                for k in range(len(steps_of(scored)))
            ]
            assert Counter(call.prompts) == Counter(p for _, p in expected)
            owner = {p: i for i, p in expected}
            for prompt, params, out in zip(call.prompts, call.params, call.outputs, strict=True):
                assert params.max_tokens == 1 and params.temperature == 0.0
                read = len(tok.encode(prompt, add_special_tokens=False))
                assert read == len(out.prompt_token_ids)
                cached = int(out.num_cached_tokens or 0)
                assert 0 <= cached <= read
                counts[owner[prompt]].prm_read += read
                counts[owner[prompt]].prm_cached += cached
            beams = {(i, own) for i, own, _ in children}  # the next step continues the kept ones
            continue
        rollout = call.params[0].temperature == 0.0
        if not rollout:
            children = []
            seen = set()
        extend: dict[tuple[int, str], str] = {}
        for prompt, params, out in zip(call.prompts, call.params, call.outputs, strict=True):
            ids = list(prompt["prompt_token_ids"])
            text = tok.decode(ids)
            (i,) = [i for i, q in enumerate(questions) if text.startswith(head(q))]
            partial = text[len(head(questions[i])) :]
            assert ids == as_written(tok, head(questions[i]) + partial)
            assert len(out.outputs) == params.n
            c = counts[i]
            c.tokens_in += len(ids)
            c.tokens_cached += int(out.num_cached_tokens or 0)
            c.samples += params.n
            c.rollouts += params.n if rollout else 0
            for o in out.outputs:
                c.tokens_out += len(o.token_ids)
                at_delim = o.finish_reason == "stop" and isinstance(o.stop_reason, str)
                grown = o.text + (DELIM if at_delim else "")
                if rollout:
                    assert params.n == 1  # identical prefixes are rolled out once
                    extend[(i, partial)] = grown
                else:
                    assert (i, partial) in beams  # a kept beam of the step before
                    children.append([i, partial + grown, partial + grown])
            if not rollout and i not in seen:
                seen.add(i)
                c.steps += 1
        if rollout:
            for child in children:
                child[2] += extend.get((child[0], child[2]), "")
        else:
            for i in seen:
                n_children = sum(1 for ch in children if ch[0] == i)
                assert n_children % width == 0
                counts[i].subtree_steps += n_children // width
    return counts


@pytest.fixture(params=sorted(JUDGES))
def traced(request, tiny_policy_engine):
    """A policy and a judge PRM on the session's engine, both through one RecordingLLM."""
    from tts.config import EngineConfig, PRMConfig
    from tts.engines.judge_prm import build
    from tts.engines.vllm_policy import VLLMPolicy

    fmt = request.param
    yes, no = JUDGES[fmt]
    rec = RecordingLLM(tiny_policy_engine.llm)
    policy = VLLMPolicy(tiny_policy_engine.model_path, params=tiny_policy_engine.param_count, llm=rec)
    cfg = PRMConfig(
        name=f"judge-{fmt}", kind="judge", model=policy.model_path, format=fmt, yes_token=yes, no_token=no
    )
    judge = build(cfg, EngineConfig(), policy=policy)
    assert judge.llm is rec and judge.format == fmt  # the judge shares the policy's engine (and the trace)
    return fmt, rec, policy, judge


@pytest.mark.parametrize("name", sorted(RUNS))
def test_generations_tokens_and_prm_tokens_equal_a_hand_count(traced, name):
    fmt, rec, policy, judge = traced
    params = RUNS[name]
    results = STRATEGIES.get(name).run(PROBLEMS, policy, judge, n=N, sampling=SAMPLING, seed=0, **params)
    width = params["beam_width"] if name == "dvts" else N
    counts = replay(rec, fmt, width)

    judge_calls = sum(isinstance(c.prompts[0], str) for c in rec.calls)
    steps = max(c.steps for c in counts)
    assert judge_calls == steps and 1 <= steps <= params.get("max_steps", 1)
    if counts[1].steps >= 2:  # a later step re-sends the long question's prompts: served by the prefix cache
        assert counts[1].prm_cached > 0 and counts[1].tokens_cached > 0
    for r, c in zip(results, counts, strict=True):
        groups = N // width  # DVTS: N/M subtrees; beam search, lookahead and a pool: one group of N
        if name == "dvts":
            assert c.steps <= c.subtree_steps <= groups * c.steps  # each step, the subtrees still searching
        else:
            assert c.subtree_steps == c.steps  # N children every step
        assert c.samples - c.rollouts == width * c.subtree_steps
        hand_generations = round(c.samples / (c.subtree_steps / groups))  # samples / mean steps per group
        if name == "lookahead":
            assert 0 <= c.rollouts <= N * c.steps * params["lookahead"]
        else:
            assert c.rollouts == 0 and hand_generations == N
        if "max_steps" in params:  # the tree searches report their step-level samples and depth
            assert r.extra["step_samples"] == c.samples and r.extra["steps"] == c.steps
        assert 0 <= c.prm_cached < c.prm_read and c.tokens_out > 0
        assert (r.generations, r.tokens_in, r.tokens_cached, r.tokens_out, r.prm_tokens) == (
            hand_generations,
            c.tokens_in,
            c.tokens_cached,
            c.tokens_out,
            c.prm_read - c.prm_cached,
        )
