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

Incremental scoring (tree search re-scores every beam's prefix each step): both formats are served with
token-wise "ALL" pooling (one output row per token; the step rows are picked here), and the requests READ vLLM's
prefix cache (`PoolingParams(skip_reading_prefix_cache=False)`; vLLM 0.32 defaults token-wise tasks to
skipping it). A request that hits the cache gets rows only for the tokens it computed, so the scores of the
steps inside the cached prefix come from the scores this engine computed before (tts.engines.step_memo, keyed
by the exact tokens up to each tag: a causal PRM's step score depends on nothing after its tag). Measured on
vLLM 0.32 CPU against transformers: the suffix rows of a cache hit match a full forward pass to 1e-6. A step
with no remembered score is re-scored in full with the cache unread. StepScores.cached_tokens is what the
prefix cache served, so `computed_tokens` is exactly what was computed. "STEP" pooling (the default of
Qwen2ForProcessRewardModel) cannot read the cache: vLLM 0.32 crashes the engine on a hit (it indexes the
suffix's rows with the whole prompt's tag positions), and `incremental=False` scores every text in full.
Hits are whole KV blocks (vLLM's block_size: 128 tokens on CPU by default, 16 on GPU).

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
from tts.engines.step_memo import StepMemo
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


def prm_text(tokenizer: Any, format: str, step_tag: str, question: str, steps: Sequence[str]) -> str:
    """The text a pooling PRM reads for one candidate, in-process or behind an endpoint: the Qwen2.5-Math-PRM
    chat layout (steps joined by its separator) or Math-Shepherd's (each step followed by the step tag), with
    separators stripped from the steps themselves."""
    if format == "qwen_math_prm":
        clean = [s.replace(QWEN_PRM_SEP, "") for s in steps]
        messages = [
            {"role": "system", "content": QWEN_PRM_SYSTEM},
            {"role": "user", "content": question},
            {"role": "assistant", "content": QWEN_PRM_SEP.join(clean) + QWEN_PRM_SEP},
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    clean = [s.replace(step_tag, "").strip() for s in steps]
    return f"{question} " + "\n".join(f"{s} {step_tag}" for s in clean)


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
        incremental: bool = True,
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
            overrides: dict[str, Any] = {"pooler_config": _pooler_config("token_classify")}
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
        pooling = _token_pooling_type(llm)
        self._token_rows = pooling == "ALL"  # one output row per computed token (else per step, or unknown)
        self._pooling_params = _pooling_params(self.tag_id if pooling == "STEP" else None)
        self._reading_params = _pooling_params(None, read_cache=True) if self._token_rows else None
        self.memo = StepMemo()
        self.incremental = incremental  # False: every text in full (the prefix cache is never read)

    # ------------------------------------------------------------------------------------------- inputs
    def render(self, question: str, steps: Sequence[str]) -> str:
        """The text the PRM reads for one candidate (separators stripped from the steps themselves)."""
        return prm_text(self.tokenizer, self.format, self.step_tag, question, steps)

    # -------------------------------------------------------------------------------------------- score
    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        """Per-step scores for every request, from ONE `encode` call (plus one for any text whose cached
        prefix holds a step this engine has no score for)."""
        todo = [i for i, r in enumerate(requests) if r.steps]
        results = [StepScores(scores=(), tokens=0) for _ in requests]
        if not todo:
            return results
        prompts = [self.render(requests[i].question, requests[i].steps) for i in todo]
        incremental = self.incremental and self._reading_params is not None
        outputs = self._encode(prompts, self._reading_params if incremental else self._pooling_params)
        reads = [self._read(requests[i], out) for i, out in zip(todo, outputs, strict=True)]
        if incremental:
            for read in reads:  # every step computed in this call, before any is looked up
                read.remember(self.memo)
            missing = [k for k, read in enumerate(reads) if not read.recall(self.memo)]
            if missing:
                again = self._encode([prompts[k] for k in missing], self._pooling_params)
                for k, out in zip(missing, again, strict=True):
                    full = self._read(requests[todo[k]], out)
                    full.remember(self.memo)
                    full.tokens += reads[k].tokens
                    full.cached += reads[k].cached
                    reads[k] = full
        for i, read in zip(todo, reads, strict=True):
            results[i] = read.result()
        return results

    def _encode(self, prompts: list[str], pooling_params: Any) -> list[Any]:
        kwargs: dict[str, Any] = {"pooling_task": "token_classify", "use_tqdm": False}
        if pooling_params is not None:
            kwargs["pooling_params"] = pooling_params
        if self.format == "qwen_math_prm" and accepts_kwarg(self.llm.encode, "tokenization_kwargs"):
            kwargs["tokenization_kwargs"] = {"add_special_tokens": False}  # the chat template holds them
        return self.llm.encode(prompts, **kwargs)

    def _read(self, req: ScoreRequest, out: Any) -> _Read:
        """The step scores one output carries: all of them (one row per step, or per token), or, after a
        prefix-cache hit, those of the steps after the cached prefix (its rows are the computed suffix's)."""
        ids = list(out.prompt_token_ids)
        data = out.outputs.data
        rows = data.tolist() if hasattr(data, "tolist") else list(data)
        tags = [p for p, t in enumerate(ids) if t == self.tag_id]
        if len(tags) != len(req.steps):
            raise RuntimeError(
                f"PRM {self.model_path}: found {len(tags)} step tags for {len(req.steps)} steps; the input "
                f"was probably truncated at max_model_len={self.engine.max_model_len}"
            )
        read = _Read(ids, tags, tokens=len(ids))
        if not self._token_rows and len(rows) != len(ids):  # STEP pooling: one row per step, never cached
            read.scores = [_to_prob(r, self._raw) for r in rows]
            return read
        start = len(ids) - len(rows)  # rows of the last len(rows) tokens; the prefix cache served the rest
        if start < 0:
            raise RuntimeError(f"PRM {self.model_path}: {len(rows)} output rows for {len(ids)} tokens")
        read.cached = start
        read.scores = [_to_prob(rows[p - start], self._raw) if p >= start else None for p in tags]
        return read

    def shutdown(self) -> None:
        shutdown_llm(self.llm)
        self.llm = None


class _Read:
    """One text's tokens, tag positions and step scores (None: inside the cached prefix, not yet recalled)."""

    def __init__(self, ids: list[int], tags: list[int], tokens: int) -> None:
        self.ids, self.tags, self.tokens, self.cached = ids, tags, tokens, 0
        self.scores: list[float | None] = []
        self._keys: list[bytes] | None = None

    def keys(self) -> list[bytes]:
        if self._keys is None:
            self._keys = StepMemo.keys(self.ids, self.tags)
        return self._keys

    def remember(self, memo: StepMemo) -> None:
        for key, score in zip(self.keys(), self.scores, strict=True):
            if score is not None:
                memo.put(key, score)

    def recall(self, memo: StepMemo) -> bool:
        """Fill the cached prefix's scores from `memo`; False when one is missing."""
        for k, key in enumerate(self.keys()):
            if self.scores[k] is None:
                self.scores[k] = memo.get(key)
        return all(s is not None for s in self.scores)

    def result(self) -> StepScores:
        scores = tuple(float(s) for s in self.scores if s is not None)
        return StepScores(scores=scores, tokens=self.tokens, cached_tokens=min(self.cached, self.tokens))


def _to_prob(row: Any, raw: bool) -> float:
    """P(correct) from one token's output: 2 raw logits -> softmax; already-activated probabilities as is."""
    row = list(row) if not isinstance(row, list) else row
    if len(row) == 1:  # a single logit (sigmoid head)
        return 1.0 / (1.0 + math.exp(-float(row[0]))) if raw else float(row[0])
    if raw or not (abs(sum(row) - 1.0) < 1e-3 and min(row) >= 0):
        return _softmax_pair(row[-2:])
    return float(row[1])


def _pooling_params(step_tag_id: int | None, read_cache: bool = False) -> Any:
    """PoolingParams asking for raw logits (we apply the softmax ourselves), for STEP pooling this tokenizer's
    step separator id (vLLM defaults it to Qwen's 151651), and with `read_cache` the prefix cache read (token-wise
    tasks skip it by default). None where unsupported (read_cache: where this vLLM cannot be told)."""
    from vllm import PoolingParams

    kwargs: dict[str, Any] = {}
    if struct_has_field(PoolingParams, "use_activation"):
        kwargs["use_activation"] = False
    if step_tag_id is not None and struct_has_field(PoolingParams, "step_tag_id"):
        kwargs["step_tag_id"] = step_tag_id
    if read_cache:
        if not struct_has_field(PoolingParams, "skip_reading_prefix_cache"):
            return None
        kwargs["skip_reading_prefix_cache"] = False
    return PoolingParams(**kwargs) if kwargs else None


def _token_pooling_type(llm: Any) -> str | None:
    """The engine's token-wise pooling type ("ALL", "STEP"), or None where it cannot be read."""
    config = getattr(getattr(llm, "llm_engine", None), "vllm_config", None)
    pooler = getattr(getattr(config, "model_config", None), "pooler_config", None)
    kind = getattr(pooler, "tok_pooling_type", None) or getattr(pooler, "pooling_type", None)
    return str(kind) if kind is not None else None


def _vllm_pooling_params() -> type:
    from vllm import PoolingParams

    return PoolingParams


def _pooler_config(task: str) -> Any:
    """A PoolerConfig selecting `task` with one output row per token ("ALL" pooling), or None where this vLLM
    version has no such fields."""
    try:
        from vllm.config import PoolerConfig
    except ImportError:
        return None
    for kwargs in ({"task": task, "tok_pooling_type": "ALL"}, {"task": task}):
        try:
            return PoolerConfig(**kwargs)
        except (TypeError, ValueError):
            continue
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
