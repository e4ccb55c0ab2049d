"""A policy's own likelihood as a verifier: each step scored by the probability a (larger) causal LM gives its tokens.

Why: on the zoo's chain arithmetic, a trained PRM head learned to read little of what its body knows (step AUROC
~0.8 however it was trained, FIELD_NOTES and tts/zoo/recipe.py), while the probability zoo-policy-l itself gives
each token of a sampled step separates right steps from wrong ones almost perfectly (held-out step AUROC 0.999
on zoo-policy-m's samples). This kind serves that signal as a verifier, named for what it is: it is not a
trained PRM, it is a policy's likelihood (kind `likelihood`, e.g. conf/prm/zoo_judge_l.yaml).

For a candidate of `question` with steps s_1..s_K the model reads, as ONE prompt, the question rendered as the
policy engine renders it (tts.engines.vllm_policy: chat template, no system prompt, "{question}"), then
s_1 + delimiter + s_2 + delimiter + ... + s_K + delimiter, and vLLM returns the logprob of every prompt token
(`SamplingParams(prompt_logprobs=...)`, the model's raw distribution, one forward pass). Step k's own
probability is the smallest probability of its tokens and of the first token of the delimiter that ends it (so
a result cut short is caught: "224-46=17" then a delimiter is improbable); after the LAST step the text could as
well have ended, so that ending counts P(delimiter) + P(EOS). A step's score is the smallest of its own and every
earlier step's (a solution is as good as its worst step so far: `aggregation: last` is then the min over the
solution). The same rule in torch, for the model cards: tts.zoo.train.likelihood_scores.

The delimiter is "\n\n", the policies' step delimiter in every zoo and chain config (PRMConfig has no field
for it). With `policy=` an already-built VLLMPolicy on the same model, its engine is reused (one load).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from tts.engines.embedded import resolve_model
from tts.engines.protocols import Conversation, ScoreRequest, StepScores
from tts.engines.vllm_common import EngineSettings

log = logging.getLogger(__name__)
TOP_LOGPROBS = 5  # logprobs returned per prompt position besides the token's own: where EOS is looked up


class LikelihoodPRM:
    """A `PRMScorer` from a causal LM's prompt logprobs. See the module docstring."""

    def __init__(
        self,
        model: str,
        *,
        step_delimiter: str = "\n\n",
        params: int | None = None,
        engine: EngineSettings | None = None,
        policy: Any = None,
    ) -> None:
        from tts.engines.vllm_policy import VLLMPolicy

        self.model_path = model
        self.delimiter = step_delimiter
        self.shared = policy is not None
        start = time.perf_counter()
        self.policy = policy or VLLMPolicy(model, params=params, engine=engine, logprobs=False)
        self.start_seconds = 0.0 if self.shared else time.perf_counter() - start
        self.engine = self.policy.engine
        self.llm = self.policy.llm
        self.tokenizer = self.policy.tokenizer
        self.param_count = self.policy.param_count
        self.eos_id = self.tokenizer.eos_token_id
        self._delimiter_ids = self.tokenizer.encode(step_delimiter, add_special_tokens=False)
        if not self._delimiter_ids:
            raise ValueError(f"prm step delimiter {step_delimiter!r} has no tokens in {model!r}'s vocabulary")

    def _ids(self, request: ScoreRequest) -> tuple[list[int], list[tuple[int, int]]]:
        """The prompt's token ids and, per step, the [start, end) range of the positions that decide it."""
        ids = list(self.policy.encode_prompt(self.policy.render(Conversation(request.question))))
        spans = []
        for step in request.steps:
            start = len(ids)
            ids += self.tokenizer.encode(step, add_special_tokens=False)
            spans.append((start, len(ids) + 1))  # the step's tokens and the delimiter's first token
            ids += self._delimiter_ids
        return ids, spans

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        """Per-step scores for every request, from ONE `generate` call (one prompt per candidate)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        todo = [i for i, r in enumerate(requests) if r.steps]
        results = [StepScores(scores=(), tokens=0) for _ in requests]
        if not todo:
            return results
        built = [self._ids(requests[i]) for i in todo]
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=TOP_LOGPROBS)
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids, _ in built], params, use_tqdm=False
        )
        for i, (ids, spans), out in zip(todo, built, outputs, strict=True):
            probs = _token_probs(ids, out.prompt_logprobs, self.eos_id, last_end=spans[-1][1] - 1)
            scores, worst = [], 1.0
            for start, end in spans:
                worst = min(worst, *probs[start:end])
                scores.append(worst)
            cached = int(getattr(out, "num_cached_tokens", None) or 0)
            results[i] = StepScores(
                scores=tuple(scores), tokens=len(ids), cached_tokens=min(cached, len(ids))
            )
        return results

    def shutdown(self) -> None:
        """Stop the engine, unless it belongs to the policy this verifier shares it with."""
        if not self.shared:
            self.policy.shutdown()
        self.llm = None


def _token_probs(ids: Sequence[int], prompt_logprobs: Any, eos_id: int | None, last_end: int) -> list[float]:
    """P(token | everything before it) for every prompt position (1.0 for the first, which has no context); at
    `last_end` (the ending of the last step) P(that token) + P(EOS) when EOS is among the returned logprobs."""
    probs = [1.0] * len(ids)
    for pos in range(1, len(ids)):
        entry = prompt_logprobs[pos] if prompt_logprobs and pos < len(prompt_logprobs) else None
        if not entry:
            continue
        p = _prob(entry, ids[pos])
        if pos == last_end and eos_id is not None and eos_id != ids[pos]:
            p += _prob(entry, eos_id)
        probs[pos] = min(1.0, p)
    return probs


def _prob(entry: Any, token: int) -> float:
    item = entry.get(token) if hasattr(entry, "get") else None
    if item is None:
        return 0.0
    lp = getattr(item, "logprob", item)
    return math.exp(lp) if lp is not None and math.isfinite(lp) else 0.0


def build(prm_cfg: Any, engine_cfg: Any, policy: Any = None) -> LikelihoodPRM:
    """Build a LikelihoodPRM from a `PRMConfig` (kind likelihood); reuse `policy`'s engine on the same model."""
    model = resolve_model(prm_cfg.model)
    if policy is not None and getattr(policy, "llm", None) is not None and policy.model_path == model:
        log.info("likelihood verifier %s shares the policy's engine", model)
        return LikelihoodPRM(model, policy=policy)
    return LikelihoodPRM(
        model,
        params=prm_cfg.params,
        engine=EngineSettings.from_config(engine_cfg),
    )
