"""The two small protocols every strategy talks to, and the records that cross them.

Why protocols: strategies are pure search logic. They see a `PolicyEngine` (conversations in, completions out)
and a `PRMScorer` (question + steps in, per-step scores out) and know nothing of vLLM, Ray or files. The same
strategy code runs against a vLLM engine in-process, a Ray actor proxy, or a fake engine in unit tests.

Why conversations, not prompt strings: the engine owns the prompt format (system prompt, few-shot turns, prompt
template, chat template), so a strategy says only *what* the policy is asked: the question, any earlier turns
(a revision strategy's previous attempts and the feedback on them) and the start of the assistant turn being
written (step search continues a partial solution). The engine renders it; a partial assistant turn that ends
at the step delimiter is tokenized as the model itself would have produced it (tts.engines.vllm_policy).

Both protocols are batched on purpose: beam search and DVTS advance every beam of every problem in lockstep with
one `generate` and one `score` call per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["eos", "stop_string", "length"]


@dataclass(frozen=True)
class Message:
    """One earlier turn of a conversation."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Conversation:
    """What the policy is asked to continue.

    question: the problem's question (the engine wraps it in the policy's prompt template as the first user turn,
      after the system prompt and few-shot turns).
    history: turns after that first user turn, in order (e.g. assistant: an attempt, user: feedback on it); the
      policy then writes the next assistant turn.
    partial: the start of that assistant turn, continued verbatim (step search's partial solution).
    """

    question: str
    history: tuple[Message, ...] = ()
    partial: str = ""

    def continued(self, text: str) -> Conversation:
        """The same conversation with `text` appended to the partial assistant turn."""
        return Conversation(self.question, self.history, self.partial + text) if text else self


@dataclass(frozen=True)
class GenerationRequest:
    """Sample `n` continuations of `prompt`: a Conversation (rendered by the engine with the policy's prompt
    format) or, for raw completion, text the engine uses verbatim.

    stop: strings that end a continuation (e.g. the step delimiter "\\n\\n"); the stop string is NOT included
    in the returned text, and `finish_reason == "stop_string"` says one was hit.
    top_k: sample among the k most likely tokens (None: no cut); min_p: drop tokens below min_p x the most likely
    token's probability (0: off).
    seed: this request's own random seed (None: the engine's stream). With a seed, the request's samples depend on
    nothing else in the batch: completion i is drawn with seed + i (vLLM's rule for n > 1), so the same request
    gives the same samples whatever was generated before it or beside it (tts.strategies.base.request_seed).
    """

    prompt: Conversation | str
    n: int = 1
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    top_k: int | None = None
    min_p: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    """One sampled continuation."""

    text: str
    tokens_out: int
    finish_reason: FinishReason
    cumulative_logprob: float | None = None


@dataclass(frozen=True)
class Generation:
    """The completions for one request, with the prompt's token counts (the prompt is prefilled once for all n).

    prompt_tokens: tokens in the prompt; cached_prompt_tokens: of those, tokens served from the prefix cache
    (FLOPs accounting charges only the uncached ones).
    """

    completions: tuple[Completion, ...]
    prompt_tokens: int
    cached_prompt_tokens: int = 0


@runtime_checkable
class PolicyEngine(Protocol):
    """Generates text. Implementations: `VLLMPolicy` (tts.engines.vllm_policy), the Ray proxy, `FakePolicy`.
    Engines that render conversations themselves also offer `render(prompt) -> str` (the exact prompt text)."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """One Generation per request, in order."""
        ...


@dataclass(frozen=True)
class ScoreRequest:
    """Score each step of one candidate solution of `question`. `steps` are the step texts without delimiters."""

    question: str
    steps: tuple[str, ...]


@dataclass(frozen=True)
class StepScores:
    """Per-step scores in [0, 1] (probability the step is correct), one per step, and the tokens the PRM read.

    cached_tokens: of those, tokens its prefix cache served (a PRM that scores each step prefix as a prompt of
    its own, like the judge, re-reads the shared prefix for every step). FLOPs are charged on `computed_tokens`,
    as the policy is charged on uncached prefill."""

    scores: tuple[float, ...]
    tokens: int = 0
    cached_tokens: int = 0

    @property
    def computed_tokens(self) -> int:
        return max(self.tokens - self.cached_tokens, 0)


@runtime_checkable
class PRMScorer(Protocol):
    """Scores solution steps. Implementations: vLLM pooling PRMs, the generative judge, the rule-based
    arithmetic verifier, and `none`. Aggregate with `tts.engines.aggregation.aggregate`."""

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        """One StepScores per request, in order, with len(scores) == len(request.steps)."""
        ...
