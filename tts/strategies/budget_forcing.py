"""Budget forcing for thinking models (Muennighoff et al. 2025, "s1: Simple test-time scaling"): the budget is the
length of the thinking, and the control is at decode time.

Why: a thinking model (DeepSeek-R1 distills, Qwen3 in thinking mode) spends its test-time compute on one long
thinking before it answers, so the axis to scale is how long it thinks, not how many solutions it samples. s1
controls that length directly: cap the thinking at B tokens (then force the end-of-thinking marker, so the model
answers from what it has thought so far), or, when the model ends its thinking, suppress the end marker and append
"Wait" so it goes on thinking (up to W times). Budget axis: `thinking_tokens` (B, the cap on tokens generated
while thinking) and `extensions` (W). Compare it with parallel majority vote / best-of-N at matched generated
tokens (`tokens_out`) and FLOPs, not at matched generations.

Mechanics, per chain (N = n parallel chains per problem, each forced on its own; n = 1 is s1's setting), through
the PolicyEngine protocol only (the partial assistant turn is continued verbatim):

  opening  the partial turn starts with `policy.thinking_start` (Qwen3: "<think>\\n"), or with nothing when the
           chat template opened the thinking already (R1 distills: their generation prompt ends in "<think>\\n").
  think    generate with max_tokens = B - thinking tokens so far and stop = (policy.thinking_end,) (vLLM drops
           the stop string from the text). The chain then
           - stopped at the end marker (or at EOS) with extensions and budget left: `wait_text` is appended to the
             partial turn verbatim (the end is suppressed) and the chain thinks again;
           - stopped there with no extension left (or exactly at B): its thinking ended on its own;
           - used up B (finish "length"): its thinking is cut, and the end marker is forced.
  answer   the partial turn gets the end of the thinking, then `answer_prefix` (default ""), and is generated up
           to `answer_max_tokens`, no stop. The end, as s1's harness writes it (simplescaling/s1,
           eval/lm-evaluation-harness/lm_eval/models/vllm_causallms.py, `VLLM._model_generate`): after a
           thinking that ended on its own, `thinking_end`; after one the cap cut, a newline (unless the thinking
           already ends with one), `thinking_end` and `forced_answer_prefix` (default "\\nFinal Answer:", s1's
           `thinking_end_max = thinking_end + "\\nFinal Answer:"`, so the model answers instead of thinking on in
           its answer). `forced_answer_prefix: ""` writes the marker alone (no newline either), this module's
           rule before it followed s1.

All chains of all problems advance in lockstep: one generate call per round, holding every chain still thinking and
every chain starting its answer (a chain answers in the round after its thinking closes), so a cell takes at most
W + 2 calls. Chains in the same state (all of a problem's chains in round 1) share one request with n = their
count, so their prompt is prefilled once; every later prompt is an earlier prompt plus the text since, which
vLLM's prefix cache serves (reported as tokens_cached). Tokens are what the Generation records report: tokens_in
= prompt tokens of every request (the wait_text, the end of the thinking and the prefixes are prompt text: prefilled, never
counted as generated or as thinking), tokens_cached = of those served from the prefix cache, tokens_out = every
generated token (thinking + answers). `policy.max_tokens` is not used: B and answer_max_tokens bound a chain.

The answer: the majority over the chains' answers (tts.strategies.voting; ties to the earlier chain; n = 1: the
chain's), each extracted from the whole chain text (opening, thinking, marker, answer). Candidates are the chains,
in order. Per problem `StrategyResult.extra` holds, one entry per chain, `thinking_tokens` (generated while
thinking, <= B), `extensions` (wait_text appended), `forced` (the cap cut the thinking) and `answer_tokens`; like
every `extra` field they are not result-row columns.

Budget: generations = n chains (whole solutions; a chain's cost is its length, hence tokens/FLOPs matching);
`tts sweep --dry-run` bounds one problem at n x (B + answer_max_tokens) generated tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tts.data.problem import Problem
from tts.engines.protocols import Completion, Conversation, GenerationRequest, PolicyEngine, PRMScorer
from tts.grading import extract_answer
from tts.schemas import ConfigError, StrategyConfig
from tts.strategies.base import Candidate, SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.voting import answer_groups, majority_choice

NAME = "budget_forcing"


@dataclass
class BudgetForcingConfig(StrategyConfig):
    name: str = NAME
    thinking_tokens: int = 2048  # B: the cap on tokens generated while thinking (the budget axis)
    extensions: int = 0  # W: times the end of the thinking is suppressed and wait_text appended
    wait_text: str = "Wait"  # appended verbatim to the thinking at each extension
    answer_max_tokens: int = 1024  # the answer after the thinking
    answer_prefix: str = ""  # written after the end of the thinking, before the answer, forced or not
    forced_answer_prefix: str = "\nFinal Answer:"  # after a FORCED end marker (s1's); "" = the marker alone

    def check(self, n: int) -> None:
        super().check(n)
        for fname in ("thinking_tokens", "answer_max_tokens"):
            value = getattr(self, fname)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"strategy.{fname}: invalid value {value!r}; must be a positive integer")
        w = self.extensions
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ConfigError(
                f"strategy.extensions: invalid value {w!r}; must be an integer >= 0 (0 = only cap the thinking)"
            )
        if w > 0 and not self.wait_text:
            raise ConfigError(
                f"strategy.wait_text: invalid value {self.wait_text!r}; extensions={w} append it to the "
                'thinking, so give the text (e.g. "Wait")'
            )


@dataclass
class _Chain:
    """One chain's state: its thinking so far, tokens generated while thinking, extensions, and its answer."""

    problem: int
    thinking: str = ""
    thinking_tokens: int = 0
    extensions: int = 0
    forced: bool = False
    answering: bool = False
    answer: Completion | None = None


def _think(chain: _Chain, done: Completion, budget: int, extensions: int, wait_text: str) -> None:
    chain.thinking += done.text
    chain.thinking_tokens += done.tokens_out
    if done.finish_reason == "length":  # the cap: force the end marker
        chain.forced, chain.answering = True, True
    elif chain.extensions < extensions and chain.thinking_tokens < budget:  # suppress the end: think on
        chain.thinking += wait_text
        chain.extensions += 1
    else:  # ended on its own
        chain.answering = True


def run(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    thinking_tokens: int = 2048,
    extensions: int = 0,
    wait_text: str = "Wait",
    answer_max_tokens: int = 1024,
    answer_prefix: str = "",
    forced_answer_prefix: str = "\nFinal Answer:",
) -> list[StrategyResult]:
    """n budget-forced chains per problem, all in lockstep (one generate call per round). `prm` and `seed` are
    accepted for the strategy signature: nothing is scored, and sampling randomness is the engine's."""
    end = sampling.thinking_end
    if not end:
        raise ValueError(
            f"sampling.thinking_end: invalid value {end!r}; {NAME} needs a thinking model's end marker "
            "(policy.thinking_end, e.g. </think>)"
        )
    opening = sampling.thinking_start or ""
    chains = [_Chain(i) for i in range(len(problems)) for _ in range(n)]
    tokens_in = [0] * len(problems)
    tokens_cached = [0] * len(problems)
    tokens_out = [0] * len(problems)

    def closing(chain: _Chain) -> str:
        """What follows the thinking: s1's forced end (a newline unless the thinking ends with one, the marker,
        forced_answer_prefix) when the cap cut it, else the marker; then answer_prefix."""
        if chain.forced and forced_answer_prefix:
            newline = "" if (opening + chain.thinking).endswith("\n") else "\n"
            return newline + end + forced_answer_prefix + answer_prefix
        return end + answer_prefix

    def request(chain: _Chain) -> GenerationRequest:
        thinking = opening + chain.thinking
        if chain.answering:
            partial, max_tokens, stop = thinking + closing(chain), answer_max_tokens, ()
        else:
            partial, max_tokens, stop = thinking, thinking_tokens - chain.thinking_tokens, (end,)
        return sampling.request(
            Conversation(problems[chain.problem].question, partial=partial), max_tokens=max_tokens, stop=stop
        )

    while live := [c for c in chains if c.answer is None]:
        groups: dict[tuple[int, GenerationRequest], list[_Chain]] = {}  # same state: one request
        for chain in live:
            groups.setdefault((chain.problem, request(chain)), []).append(chain)
        requests = [replace(r, n=len(g)) for (_, r), g in groups.items()]
        generations = policy.generate(requests)
        if len(generations) != len(requests):
            raise RuntimeError(f"policy returned {len(generations)} generations for {len(requests)} requests")
        for members, gen in zip(groups.values(), generations, strict=True):
            if len(gen.completions) != len(members):
                raise RuntimeError(
                    f"policy returned {len(gen.completions)} completions for a request of n={len(members)}"
                )
            i = members[0].problem
            tokens_in[i] += gen.prompt_tokens
            tokens_cached[i] += gen.cached_prompt_tokens
            tokens_out[i] += sum(c.tokens_out for c in gen.completions)
            for chain, done in zip(members, gen.completions, strict=True):
                if chain.answering:
                    chain.answer = done
                else:
                    _think(chain, done, thinking_tokens, extensions, wait_text)
    return [
        _result(
            problem,
            chains[i * n : (i + 1) * n],
            (opening, [closing(c) for c in chains[i * n : (i + 1) * n]]),
            (tokens_in[i], tokens_cached[i], tokens_out[i]),
        )
        for i, problem in enumerate(problems)
    ]


def _result(
    problem: Problem, chains: list[_Chain], frame: tuple[str, list[str]], tokens: tuple[int, int, int]
) -> StrategyResult:
    """The majority over a problem's chains, with its token counts and per-chain thinking record. frame: the
    text before the thinking, and per chain the text between its thinking and its answer."""
    candidates = []
    for chain, between in zip(chains, frame[1], strict=True):
        assert chain.answer is not None
        text = frame[0] + chain.thinking + between + chain.answer.text
        candidates.append(
            Candidate(
                text=text,
                steps=(text,),
                step_scores=(),
                score=0.0,
                answer=extract_answer(text).answer,
                finish_reason=chain.answer.finish_reason,
                tokens_out=chain.thinking_tokens + chain.answer.tokens_out,
            )
        )
    chosen = majority_choice(answer_groups([c.answer for c in candidates]))
    best = candidates[0 if chosen is None else chosen]
    extra: dict[str, Any] = {
        "chosen": 0 if chosen is None else chosen,
        "thinking_tokens": [c.thinking_tokens for c in chains],
        "extensions": [c.extensions for c in chains],
        "forced": [c.forced for c in chains],
        "answer_tokens": [c.answer.tokens_out for c in chains if c.answer is not None],
    }
    tokens_in, tokens_cached, tokens_out = tokens
    return StrategyResult(
        problem_id=problem.id,
        answer=best.answer,
        text=best.text,
        generations=len(chains),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        tokens_cached=tokens_cached,
        truncated=best.finish_reason == "length",
        fallback_extraction=extract_answer(best.text).fallback,
        candidates=tuple(candidates),
        extra=extra,
    )


def budget(config: BudgetForcingConfig, n: int, max_tokens: int, step_max_tokens: int) -> tuple[int, int]:
    """n chains of at most B thinking tokens and answer_max_tokens answer tokens each."""
    return n, n * (config.thinking_tokens + config.answer_max_tokens)


ENTRY = StrategyEntry(
    name=NAME, schema=BudgetForcingConfig, run=run, traits=Traits(thinking=True), budget=budget
)
