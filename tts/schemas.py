"""The typed schemas of the config groups that library layers consume: policy, PRM, strategy base, data set,
engine. Plain dataclasses with defaults, no behaviour.

Why here, at the bottom of the package: the engines, data loaders and strategies each take their own group's
schema, and none of them may import `tts.config` (which validates a whole cell and therefore imports them).
Each strategy's own schema (a `StrategyConfig` subclass) lives in its module; `tts.config` composes them into
the root `TTSConfig` and registers everything in Hydra's ConfigStore.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


class ConfigError(ValueError):
    """An invalid config value. The message names the field, the bad value and the fix."""


@dataclass
class FewShotExample:
    question: str = MISSING
    answer: str = MISSING


@dataclass
class PolicyConfig:
    """A policy model and how it is prompted. `model` is a hub id, a local folder, or "embedded:<name>"."""

    name: str = MISSING
    model: str = MISSING
    tokenizer: str | None = None
    params: int | None = None  # parameter count; None = read from the model config
    chat_template: bool = True  # apply the tokenizer's chat template
    system_prompt: str | None = None
    prompt_template: str = "{question}"  # the user turn; must contain {question}
    few_shot: list[FewShotExample] = field(default_factory=list)  # earlier user/assistant turns
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 256
    step_delimiter: str = "\n\n"
    step_max_tokens: int = 96
    # Added after results schema 4 with neutral defaults: at their defaults they leave every id unchanged
    # (tts.identity.NEUTRAL_LATE_FIELDS). top_k / min_p are per-request sampling knobs like temperature.
    top_k: int | None = None  # sample among the k most likely tokens; None = no cut (vLLM's default)
    min_p: float = 0.0  # drop tokens below min_p x the most likely token's probability; 0 = off
    # Thinking models (DeepSeek-R1 distills, Qwen3 in thinking mode), read by strategies that control the
    # thinking (budget forcing). thinking_end: the marker that closes the thinking ("</think>"); None = not a
    # thinking model. thinking_start: the text that opens it, written at the start of the assistant turn (Qwen3:
    # "<think>\n"); None when the chat template's generation prompt opens it already (R1 distills end theirs
    # with "<think>\n").
    thinking_start: str | None = None
    thinking_end: str | None = None
    # The date a chat template that reads the clock (Llama 3.2's `strftime_now("%d %b %Y")` -> "Today Date: ...")
    # renders, ISO YYYY-MM-DD: pinned so a prompt never changes with the day it runs (tts.engines.chat_template).
    chat_template_date: str = "2024-07-26"
    # Where the policy runs (tts.engines.POLICY_BACKENDS): "vllm", an in-process engine in a Ray actor, or "openai",
    # an OpenAI-compatible endpoint (`vllm serve`, SGLang, an API model; tts.engines.openai_policy) whose `model`
    # is the served model name and whose `tokenizer` (optional) renders prompts as the served model's chat
    # template does. base_url / api_key_env / max_concurrency / timeout_s / max_retries say where and how to send
    # (sweep-level: in no id, tts.identity.ENDPOINT_TRANSPORT_FIELDS); api_key_env is the NAME of the environment
    # variable holding the key, never the key. fingerprint: the server's revision or system_fingerprint, pinned
    # (it enters the ids; a server reporting another one is refused at start).
    backend: str = "vllm"
    base_url: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4
    fingerprint: str | None = None


@dataclass
class PRMConfig:
    """A process reward model / verifier. `kind` selects the implementation (see tts.engines.PRM_KINDS)."""

    name: str = MISSING
    kind: str = MISSING  # none | rule_arithmetic | vllm_pooling | judge | likelihood
    model: str | None = None
    params: int | None = None
    aggregation: str = "last"  # last | min | prod | mean
    # vllm_pooling: "qwen_math_prm" (steps joined by <extra_0>) or "step_tag" (Math-Shepherd style)
    format: str = "qwen_math_prm"
    step_tag: str = "ки"
    good_token: str = "+"
    bad_token: str = "-"
    # judge: a causal LM asked whether each step is correct; score = P(yes_token) / (P(yes) + P(no))
    judge_prompt: str | None = None
    yes_token: str = "Yes"
    no_token: str = "No"
    # An endpoint verifier (tts.engines.openai_prm): with base_url set, `model` is the served model name and
    # `tokenizer` (pooling PRMs; default: `model` when that is a folder / embedded name) renders its input; kind
    # vllm_pooling reads the server's /pooling (vllm serve --runner pooling), kind judge a chat endpoint. The
    # transport fields are sweep-level, in no id (tts.identity.ENDPOINT_TRANSPORT_FIELDS), as the policy's.
    tokenizer: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4


@dataclass
class StrategyConfig:
    """Fields every strategy has. Each strategy's YAML extends its own schema below (no flat option bag)."""

    name: str = MISSING
    temperature: float | None = None  # None = the policy's

    def check(self, n: int) -> None:
        """Raise ConfigError (field, value, fix) if this strategy cannot run at budget `n` with these values.
        Subclasses extend it with their own fields and call `super().check(n)`."""
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError(
                f"strategy.temperature: invalid value {self.temperature!r}; must be >= 0 (0 = greedy)"
            )

    def verifier_needed(self) -> bool:
        """True when these values rank by verifier scores although the strategy's traits do not always (e.g. a
        selection option): `prm=none` is then rejected as for a `needs_verifier` strategy."""
        return False

    def params(self) -> dict[str, object]:
        """The strategy's own options as plain keywords for its `run` (every field but name/temperature)."""
        from dataclasses import asdict

        out = asdict(self)
        out.pop("name")
        out.pop("temperature")
        return out


@dataclass
class DatasetConfig:
    """A problem set. `name` selects the loader (see tts.data.DATASETS)."""

    name: str = MISSING
    path: str | None = None  # local JSONL/Parquet (loader "local")
    hub_id: str | None = None
    split: str = "test"
    columns: dict[str, str] = field(default_factory=dict)  # record field -> source column
    levels: list[int] | None = None  # keep only these levels
    limit: int | None = None  # first K problems (after the level filter), per level when per_level is set
    per_level: int | None = None  # built-in set: problems generated per level
    seed: int = 0  # built-in set: generator seed
    ids: list[str] | None = None  # keep only these problem ids, in this order (code loaders: tts.data.code)
    evaluator: str = "tts"  # whose answer-extraction rules grade it (tts.grading.rules.EVALUATORS)


@dataclass
class EngineConfig:
    """vLLM engine settings and Ray resources per model replica."""

    dtype: str = "auto"
    enforce_eager: bool = False
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = 4096
    max_num_seqs: int = 256
    enable_prefix_caching: bool = True
    tensor_parallel_size: int = 1
    num_gpus: float = 1.0  # per replica; 0.5 co-locates a policy and a PRM on one GPU
    num_cpus: float = 1.0
    replicas: int = 1
    seed: int = 0  # the engine's own stream: only requests without a seed of their own draw from it
    # Reproducibility (tts.engines.vllm_common): every request carries its own seed. vLLM on CPU needs chunked
    # prefill off for that (conf/engine/cpu.yaml); null keeps vLLM's default.
    enable_chunked_prefill: bool | None = None
    max_num_batched_tokens: int | None = None  # null: vLLM's; max_model_len when chunked prefill is off
    batch_invariant: bool = False  # GPU: VLLM_BATCH_INVARIANT=1, identical numerics whatever the batch shape
