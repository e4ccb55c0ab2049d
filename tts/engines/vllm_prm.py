"""PRMs served by vLLM's pooling runner: per-token classification read at step-boundary tokens.

Why pooling: a PRM scores every step of a solution in ONE forward pass over the whole text; vLLM's pooling
runner (`LLM(runner="pooling")`, `llm.encode(prompts, pooling_task="token_classify")`) returns the per-token
outputs, batched and prefix-cached like generation. `score` sends every candidate of every problem in ONE
`encode` call. Two input formats:

"qwen_math_prm" (Qwen/Qwen2.5-Math-PRM-7B, -72B; architecture Qwen2ForProcessRewardModel, a 2-label head):
    chat template with system "Please reason step by step, and put your final answer within \\boxed{}.",
    user = question, assistant = steps joined by "<extra_0>" plus a trailing "<extra_0>";
    score of step i = softmax(logits)[1] at the i-th "<extra_0>" token.

"step_tag" (peiyi9979/math-shepherd-mistral-7b-prm: a plain causal LM):
    "{question} {step_1} ки\\n{step_2} ки..."; score of step i = P(good) / (P(good) + P(bad)) for the NEXT
    token at the i-th tag, good/bad = " +" / " -". A causal LM has no classification head, so the pooling
    runner gets one from its LM head: `convert="classify"` with `hf_overrides={"classifier_from_token":
    [bad, good], "method": "no_post_processing"}` makes vLLM build a 2-label head from exactly those two LM-head
    rows, and softmax over those two logits is the Math-Shepherd score. Only the two rows are computed, never
    the vocabulary. Limitation: the tag, " +" and " -" must each be one token in the PRM's vocabulary
    (checked at start-up), as they are for Math-Shepherd.

Not served here: PRMs whose head is neither of these, e.g. Skywork-o1-Open-PRM (a custom `v_head` value head,
architecture Qwen2ForPrmModel, which vLLM does not register; it needs a vLLM model plugin), and chat-turn PRMs
such as RLHFlow/Llama3.1-8B-PRM-Deepseek-Data, which are next-token judges: use `kind: judge` with
`format: chat_steps` (tts.engines.judge_prm).
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

FORMATS = ("qwen_math_prm", "step_tag")
QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_PRM_SEP = "<extra_0>"


def single_token(tokenizer: Any, text: str, *, after_space: bool) -> int:
    """The id of `text` as ONE token, as it appears after a space in running text (after_space) or alone.

    Raises ValueError naming the text when the tokenizer splits it."""
    if after_space:
        base = tokenizer.encode("a", add_special_tokens=False)
        ids = tokenizer.encode("a " + text, add_special_tokens=False)
        suffix = ids[len(base) :] if ids[: len(base)] == base else ids[-1:]
        if len(suffix) != 1:
            suffix = tokenizer.encode(" " + text, add_special_tokens=False)
    else:
        suffix = tokenizer.encode(text, add_special_tokens=False)
    if len(suffix) != 1:
        raise ValueError(f"{text!r} is not a single token in this PRM's vocabulary (got ids {suffix})")
    return int(suffix[0])


def _softmax_pair(row: Sequence[float]) -> float:
    """P(label 1) from two logits."""
    a, b = float(row[0]), float(row[1])
    m = max(a, b)
    ea, eb = math.exp(a - m), math.exp(b - m)
    return eb / (ea + eb)


class VLLMPoolingPRM:
    """A `PRMScorer` on a vLLM pooling model. See the module docstring for the two formats."""

    def __init__(
        self,
        model: str,
        *,
        format: str = "qwen_math_prm",
        step_tag: str = "ки",
        good_token: str = "+",
        bad_token: str = "-",
        params: int | None = None,
        engine: EngineSettings | None = None,
        llm: Any = None,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"prm.format: invalid value {format!r}; allowed: {', '.join(FORMATS)}")
        self.model_path = model
        self.format = format
        self.step_tag = step_tag
        self.engine = engine or EngineSettings()
        self.start_seconds = 0.0
        tokenizer = _load_tokenizer(model) if llm is None else llm.get_tokenizer()
        if format == "qwen_math_prm":
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError(f"prm.model: {model!r} has no chat template; qwen_math_prm needs one")
            self.tag_id = single_token(tokenizer, QWEN_PRM_SEP, after_space=False)
            overrides: dict[str, Any] = {}
        else:
            self.tag_id = single_token(tokenizer, step_tag, after_space=True)
            good = single_token(tokenizer, good_token, after_space=True)
            bad = single_token(tokenizer, bad_token, after_space=True)
            labels = tokenizer.convert_ids_to_tokens([bad, good])
            overrides = {
                "runner": "pooling",
                "convert": "classify",
                "hf_overrides": {"classifier_from_token": labels, "method": "no_post_processing"},
                "pooler_config": _pooler_config("token_classify"),
            }
        if llm is None:
            kwargs = {"runner": "pooling", **self.engine.llm_kwargs(), **overrides}
            if kwargs.get("pooler_config") is None:
                kwargs.pop("pooler_config", None)
            start = time.perf_counter()
            llm = make_llm(model, **kwargs)
            self.start_seconds = time.perf_counter() - start
            log.info("PRM %s ready in %.1f s", model, self.start_seconds)
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.param_count = int(params) if params else param_count_of(model)
        self._raw = struct_has_field(_vllm_pooling_params(), "use_activation")
        self._pooling_params = _pooling_params(self.tag_id if format == "qwen_math_prm" else None)

    # ------------------------------------------------------------------------------------------- inputs
    def render(self, question: str, steps: Sequence[str]) -> str:
        """The text the PRM reads for one candidate (separators stripped from the steps themselves)."""
        if self.format == "qwen_math_prm":
            clean = [s.replace(QWEN_PRM_SEP, "") for s in steps]
            messages = [
                {"role": "system", "content": QWEN_PRM_SYSTEM},
                {"role": "user", "content": question},
                {"role": "assistant", "content": QWEN_PRM_SEP.join(clean) + QWEN_PRM_SEP},
            ]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        clean = [s.replace(self.step_tag, "").strip() for s in steps]
        return f"{question} " + "\n".join(f"{s} {self.step_tag}" for s in clean)

    # -------------------------------------------------------------------------------------------- score
    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        """Per-step scores for every request, from ONE `encode` call."""
        todo = [i for i, r in enumerate(requests) if r.steps]
        results = [StepScores(scores=(), tokens=0) for _ in requests]
        if not todo:
            return results
        prompts = [self.render(requests[i].question, requests[i].steps) for i in todo]
        kwargs: dict[str, Any] = {"pooling_task": "token_classify", "use_tqdm": False}
        if self._pooling_params is not None:
            kwargs["pooling_params"] = self._pooling_params
        if self.format == "qwen_math_prm" and accepts_kwarg(self.llm.encode, "tokenization_kwargs"):
            kwargs["tokenization_kwargs"] = {"add_special_tokens": False}  # the chat template holds them
        outputs = self.llm.encode(prompts, **kwargs)
        for i, out in zip(todo, outputs, strict=True):
            results[i] = self._step_scores(requests[i], out)
        return results

    def _step_scores(self, req: ScoreRequest, out: Any) -> StepScores:
        ids = list(out.prompt_token_ids)
        data = out.outputs.data
        rows = data.tolist() if hasattr(data, "tolist") else list(data)
        if len(rows) == len(ids):  # one row per token: keep the tag positions
            rows = [rows[p] for p, t in enumerate(ids) if t == self.tag_id]
        if len(rows) != len(req.steps):
            raise RuntimeError(
                f"PRM {self.model_path}: found {len(rows)} step tags for {len(req.steps)} steps; the input "
                f"was probably truncated at max_model_len={self.engine.max_model_len}"
            )
        scores = tuple(_to_prob(r, self._raw) for r in rows)
        cached = int(getattr(out, "num_cached_tokens", None) or 0)  # a re-scored prefix (search), if cached
        return StepScores(scores=scores, tokens=len(ids), cached_tokens=min(cached, len(ids)))

    def shutdown(self) -> None:
        shutdown_llm(self.llm)
        self.llm = None


def _to_prob(row: Any, raw: bool) -> float:
    """P(correct) from one token's output: 2 raw logits -> softmax; already-activated probabilities as is."""
    row = list(row) if not isinstance(row, list) else row
    if len(row) == 1:  # a single logit (sigmoid head)
        return 1.0 / (1.0 + math.exp(-float(row[0]))) if raw else float(row[0])
    if raw or not (abs(sum(row) - 1.0) < 1e-3 and min(row) >= 0):
        return _softmax_pair(row[-2:])
    return float(row[1])


def _pooling_params(step_tag_id: int | None) -> Any:
    """PoolingParams asking for raw logits (we apply the softmax ourselves) and, for Qwen2ForProcessRewardModel,
    this tokenizer's step separator id (vLLM defaults it to Qwen's 151651); None where unsupported."""
    from vllm import PoolingParams

    kwargs: dict[str, Any] = {}
    if struct_has_field(PoolingParams, "use_activation"):
        kwargs["use_activation"] = False
    if step_tag_id is not None and struct_has_field(PoolingParams, "step_tag_id"):
        kwargs["step_tag_id"] = step_tag_id
    return PoolingParams(**kwargs) if kwargs else None


def _vllm_pooling_params() -> type:
    from vllm import PoolingParams

    return PoolingParams


def _pooler_config(task: str) -> Any:
    """A PoolerConfig selecting `task`, or None where this vLLM version has no such field."""
    try:
        from vllm.config import PoolerConfig

        return PoolerConfig(task=task)
    except (ImportError, TypeError, ValueError):
        return None


def _load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def build(prm_cfg: Any, engine_cfg: Any, policy: Any = None) -> VLLMPoolingPRM:
    """Build a VLLMPoolingPRM from a `PRMConfig` (kind vllm_pooling) and an `EngineConfig`. `policy` is unused:
    a pooling PRM cannot share a generation engine."""
    return VLLMPoolingPRM(
        resolve_model(prm_cfg.model),
        format=prm_cfg.format,
        step_tag=prm_cfg.step_tag,
        good_token=prm_cfg.good_token,
        bad_token=prm_cfg.bad_token,
        params=prm_cfg.params,
        engine=EngineSettings.from_config(engine_cfg),
    )
