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

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tts.engines.protocols import Conversation, GenerationRequest

SEED_SPACE = 2**31  # request seeds are non-negative int32s: vLLM, torch and OpenAI servers take them


def request_seed(seed: int, prompt: Conversation | str, salt: Sequence[object] = ()) -> int:
    """The random seed of one generate request, derived from what is sampled and nothing else.

    Why from the content: a request's identity is the cell's seed plus what the policy is asked to continue (the
    question, the earlier turns, the partial assistant turn: for a pool, the problem; for a search, the node; for
    a revision, the chain's history) plus `salt` for what the text does not tell apart (a revision chain's index).
    Then the same request gets the same samples wherever it runs, in whatever batch, after whatever else the
    engine generated (issue "seeded means reproducible"). Requests that ask the same thing under the same seed
    share their random stream on purpose (common random numbers: a pool of 8 is the first 8 samples of a pool of
    16; beam search's first step draws the pool's first samples' opening steps), which leaves every
    configuration's own estimate unbiased and makes comparisons between configurations less noisy.
    """
    if isinstance(prompt, str):
        parts: list[object] = ["text", prompt]
    else:
        parts = [prompt.question, [[m.role, m.content] for m in prompt.history], prompt.partial]
    blob = json.dumps([int(seed), parts, [str(x) for x in salt]], ensure_ascii=False)
    digest = hashlib.blake2b(blob.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SEED_SPACE


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
    seed: int | None = None  # the cell's seed: each request's own seed derives from it (None: engine's)

    def request(
        self,
        prompt: Conversation | str,
        *,
        n: int = 1,
        max_tokens: int | None = None,
        stop: tuple[str, ...] = (),
        temperature: float | None = None,
        salt: Sequence[object] = (),
    ) -> GenerationRequest:
        """A generate request with these sampling knobs (temperature, top_p, top_k, min_p) and, when the settings
        carry a seed, its own seed (`request_seed` of the prompt and `salt`): the one place a strategy turns its
        settings into a request, so a new knob reaches every strategy. max_tokens defaults to a whole
        solution's; temperature may be overridden (greedy rollouts)."""
        return GenerationRequest(
            prompt,
            n=n,
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            temperature=self.temperature if temperature is None else temperature,
            top_p=self.top_p,
            stop=stop,
            top_k=self.top_k,
            min_p=self.min_p,
            seed=None if self.seed is None else request_seed(self.seed, prompt, salt),
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
