"""A generative judge as a PRM: ask a causal LM whether each step is correct and read P(yes) off its next token.

Why: any instruct model becomes a (weak) process verifier with no extra weights, which lets the embedded
SmolLM2 judge its own steps on a machine with nothing else, and serves chat-turn PRMs that are trained to
answer a token per step (RLHFlow/Llama3.1-8B-PRM-Deepseek-Data: "+" / "-"). For step k of a candidate the judge
renders the prefix steps[:k+1] and scores

    P(yes) / (P(yes) + P(no))    over the next-token distribution after the prompt,

where P(yes) sums the yes token's spellings ("Yes", " Yes", "yes", " yes"; likewise no). Every prefix of every
candidate goes into ONE `generate` call with `max_tokens=1`; the probabilities come from
`SamplingParams(logprob_token_ids=[...])` (exactly those tokens, raw model distribution) where this vLLM has
it, else from the top-20 logprobs (a spelling outside the top 20 counts 0; both missing scores 0.5).

Formats (PRMConfig.format; the pooling formats do not apply to a judge and mean "judge"):
  judge       one user turn: the question, the solution so far, "Is the last step correct? Answer Yes or No."
              (`judge_prompt` overrides it: a template with {question} and {steps}).
  chat_steps  RLHFlow style: user turns carry the steps (the first one prefixed with the question), earlier
              assistant turns answer the yes token, and the model answers the last one.

With `policy=` an already-built VLLMPolicy on the same model, the judge reuses its `vllm.LLM` (one load).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from tts.engines.embedded import resolve_model
from tts.engines.protocols import ScoreRequest, StepScores
from tts.engines.vllm_common import (
    EngineSettings,
    accepts_kwarg,
    make_llm,
    param_count_of,
    shutdown_llm,
    struct_has_field,
)

log = logging.getLogger(__name__)

DEFAULT_JUDGE_PROMPT = (
    "Problem: {question}\n\nSolution so far:\n{steps}\n\nIs the last step correct? Answer Yes or No."
)
TOP_K = 20


def spellings(tokenizer: Any, word: str) -> list[int]:
    """Ids of the single-token spellings of `word` (as is, after a space, lower-cased), deduplicated."""
    variants = [word, " " + word]
    if word.lower() != word:
        variants += [word.lower(), " " + word.lower()]
    ids: list[int] = []
    for v in variants:
        enc = tokenizer.encode(v, add_special_tokens=False)
        if len(enc) == 1 and enc[0] not in ids:
            ids.append(int(enc[0]))
    if not ids:
        raise ValueError(f"prm.yes_token/no_token: {word!r} is not a single token in the judge's vocabulary")
    return ids


class JudgePRM:
    """A `PRMScorer` that asks a causal LM about each step. See the module docstring."""

    def __init__(
        self,
        model: str,
        *,
        format: str = "judge",
        judge_prompt: str | None = None,
        yes_token: str = "Yes",
        no_token: str = "No",
        params: int | None = None,
        engine: EngineSettings | None = None,
        llm: Any = None,
    ) -> None:
        self.model_path = model
        self.format = "chat_steps" if format == "chat_steps" else "judge"
        self.judge_prompt = judge_prompt or DEFAULT_JUDGE_PROMPT
        for key in ("{question}", "{steps}"):
            if self.format == "judge" and key not in self.judge_prompt:
                raise ValueError(f"prm.judge_prompt: {self.judge_prompt!r} must contain {key}")
        self.yes_token = yes_token
        self.engine = engine or EngineSettings()
        self.start_seconds = 0.0
        self.shared = llm is not None
        if llm is None:
            start = time.perf_counter()
            llm = make_llm(model, **self.engine.llm_kwargs())
            self.start_seconds = time.perf_counter() - start
            log.info("judge %s ready in %.1f s", model, self.start_seconds)
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.use_chat = bool(getattr(self.tokenizer, "chat_template", None))
        if self.format == "chat_steps" and not self.use_chat:
            raise ValueError(f"prm.format: chat_steps needs a chat template; {model!r} has none")
        self.yes_ids = spellings(self.tokenizer, yes_token)
        self.no_ids = spellings(self.tokenizer, no_token)
        self.param_count = int(params) if params else param_count_of(model)
        self._params = self._sampling_params()
        self._tok_kwargs = (
            {"tokenization_kwargs": {"add_special_tokens": False}}
            if self.use_chat and accepts_kwarg(llm.generate, "tokenization_kwargs")
            else {}
        )

    def _sampling_params(self) -> Any:
        from vllm import SamplingParams

        if struct_has_field(SamplingParams, "logprob_token_ids"):
            return SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=self.yes_ids + self.no_ids)
        return SamplingParams(max_tokens=1, temperature=0.0, logprobs=TOP_K)

    # ------------------------------------------------------------------------------------------ prompts
    def render(self, question: str, steps: Sequence[str]) -> str:
        """The prompt asking about the LAST of `steps`."""
        if self.format == "chat_steps":
            messages: list[dict[str, str]] = []
            for i, step in enumerate(steps):
                messages.append({"role": "user", "content": f"{question} {step}" if i == 0 else step})
                if i < len(steps) - 1:
                    messages.append({"role": "assistant", "content": self.yes_token})
        else:
            text = self.judge_prompt.replace("{steps}", "\n\n".join(steps)).replace("{question}", question)
            if not self.use_chat:
                return text + "\nAnswer:"
            messages = [{"role": "user", "content": text}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    # -------------------------------------------------------------------------------------------- score
    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        """Per-step scores for every request: every step prefix of every request in ONE generate call."""
        index = [(i, k) for i, r in enumerate(requests) for k in range(len(r.steps))]
        if not index:
            return [StepScores(scores=(), tokens=0) for _ in requests]
        prompts = [self.render(requests[i].question, requests[i].steps[: k + 1]) for i, k in index]
        outputs = self.llm.generate(prompts, self._params, use_tqdm=False, **self._tok_kwargs)
        scores: list[list[float]] = [[] for _ in requests]
        tokens = [0] * len(requests)
        cached = [0] * len(requests)
        for (i, _k), out in zip(index, outputs, strict=True):
            scores[i].append(self._p_yes(out.outputs[0].logprobs))
            tokens[i] += len(out.prompt_token_ids or ())
            cached[i] += int(getattr(out, "num_cached_tokens", None) or 0)  # the earlier prefixes, mostly
        return [
            StepScores(scores=tuple(s), tokens=t, cached_tokens=c)
            for s, t, c in zip(scores, tokens, cached, strict=True)
        ]

    def _p_yes(self, logprobs: Any) -> float:
        if not logprobs:
            return 0.5
        first = logprobs[0]

        def mass(ids: list[int]) -> float:
            total = 0.0
            for tid in ids:
                entry = first.get(tid) if hasattr(first, "get") else None
                if entry is not None:
                    lp = getattr(entry, "logprob", entry)
                    if lp is not None and math.isfinite(lp):
                        total += math.exp(lp)
            return total

        yes, no = mass(self.yes_ids), mass(self.no_ids)
        return 0.5 if yes + no <= 0.0 else yes / (yes + no)

    def shutdown(self) -> None:
        """Stop the engine, unless it belongs to the policy this judge shares it with."""
        if not self.shared:
            shutdown_llm(self.llm)
        self.llm = None


def build(prm_cfg: Any, engine_cfg: Any, policy: Any = None) -> JudgePRM:
    """Build a JudgePRM from a `PRMConfig` (kind judge); reuse `policy`'s engine when it runs the same model."""
    model = resolve_model(prm_cfg.model)
    llm = None
    params = prm_cfg.params
    if policy is not None and getattr(policy, "llm", None) is not None and policy.model_path == model:
        llm = policy.llm
        params = params or getattr(policy, "param_count", None)
        log.info("judge %s shares the policy's engine", model)
    return JudgePRM(
        model,
        format=prm_cfg.format,
        judge_prompt=prm_cfg.judge_prompt,
        yes_token=prm_cfg.yes_token,
        no_token=prm_cfg.no_token,
        params=params,
        engine=EngineSettings.from_config(engine_cfg),
        llm=llm,
    )
