"""What every strategy takes and returns.

A strategy is a plain function registered by name in `tts.strategies.STRATEGIES`:

    def run(problems: Sequence[Problem], policy: PolicyEngine, prm: PRMScorer, *, n: int,
            sampling: SamplingSettings, seed: int, **params) -> list[StrategyResult]

`n` is the budget in generations (Snell et al.); `params` are the strategy's own options (beam_width,
max_steps, lookahead, ...), passed as plain keywords by the builder in `tts.config` and never a config object.
Results come back one per problem, in input order. Grading against the reference is the runtime's job:
a strategy picks an answer, it never sees `Problem.answer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tts.engines.protocols import Conversation, GenerationRequest


@dataclass(frozen=True)
class SamplingSettings:
    """Sampling knobs shared by every strategy (they come from the policy config, overridable per strategy)."""

    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 256  # for a whole solution (sampling strategies)
    step_delimiter: str = "\n\n"
    step_max_tokens: int = 96  # for one step (search strategies)
    aggregation: str = "last"  # how per-step PRM scores become a solution score
    top_k: int | None = None  # None = no top-k cut
    min_p: float = 0.0  # 0 = off
    thinking_start: str | None = None  # thinking models: what opens the thinking (None: the template does)
    thinking_end: str | None = None  # thinking models: the marker that closes it (None: not a thinking model)

    def request(
        self,
        prompt: Conversation | str,
        *,
        n: int = 1,
        max_tokens: int | None = None,
        stop: tuple[str, ...] = (),
        temperature: float | None = None,
    ) -> GenerationRequest:
        """A generate request with these sampling knobs (temperature, top_p, top_k, min_p): the one place a
        strategy turns its settings into a request, so a new knob reaches every strategy. max_tokens defaults
        to a whole solution's; temperature may be overridden (greedy rollouts)."""
        return GenerationRequest(
            prompt,
            n=n,
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            temperature=self.temperature if temperature is None else temperature,
            top_p=self.top_p,
            stop=stop,
            top_k=self.top_k,
            min_p=self.min_p,
        )


@dataclass(frozen=True)
class Candidate:
    """One complete (or abandoned) candidate solution with its verifier scores."""

    text: str
    steps: tuple[str, ...]
    step_scores: tuple[float, ...]
    score: float  # aggregate(step_scores, sampling.aggregation)
    answer: str | None  # extracted final answer, None if none could be extracted
    finish_reason: str  # "eos" | "stop_string" | "length"
    tokens_out: int = 0


@dataclass
class StrategyResult:
    """The outcome for one problem, with everything compute accounting needs.

    generations: completions sampled (Snell's budget unit; for search, the number of step-level samples / steps
      per beam, as documented by each strategy). tokens_in counts prompt tokens per generate request (prefill),
      tokens_cached the part of those served from the prefix cache, prm_tokens the tokens the PRM read.
    """

    problem_id: str
    answer: str | None
    text: str
    generations: int
    tokens_in: int
    tokens_out: int
    tokens_cached: int = 0
    prm_tokens: int = 0
    truncated: bool = False
    fallback_extraction: bool = False
    candidates: tuple[Candidate, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
