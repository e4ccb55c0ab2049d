"""Typed config schemas (registered in Hydra's ConfigStore), validation, and builders.

Why here and only here: every config has a dataclass schema, and every check of a config value happens in
`validate()`, before Ray starts or a model loads, with a message that names the field, the bad value and the
allowed values. Library classes never receive a config object: the `build_*` functions at the bottom turn
config nodes into plain arguments.

Config groups (YAML under conf/<group>/, each option extending the schema registered here as `<group>/base_*`):
policy, prm, strategy, dataset, engine, cluster, difficulty; sweep presets live in sweeps/ (group `sweep`). A
strategy's schema is also registered under its own name, so a strategy needs no YAML (`register_configs`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from tts.engines import MODEL_PRM_KINDS
from tts.engines.aggregation import AGGREGATIONS
from tts.engines.chat_template import parse_date
from tts.grading.rules import EVALUATORS, GradingRules
from tts.registry import did_you_mean
from tts.schemas import (
    ConfigError,
    DatasetConfig,
    EngineConfig,
    FewShotExample,
    PolicyConfig,
    PRMConfig,
    StrategyConfig,
)

__all__ = [
    "ClusterConfig",
    "ConfigError",
    "DatasetConfig",
    "DifficultyConfig",
    "EngineConfig",
    "FewShotExample",
    "PolicyConfig",
    "PRMConfig",
    "StrategyConfig",
    "SweepConfig",
    "TTSConfig",
    "conf_dir",
    "grading_rules",
    "register_configs",
    "sampling_settings",
    "strategy_params",
    "validate",
]


# --------------------------------------------------------------------------------------------- schemas
@dataclass
class ClusterConfig:
    mode: str = "local"  # local: ray.init() here; ray: connect to an existing cluster
    address: str | None = None  # "auto" or ray://host:10001 in ray mode
    num_cpus: int | None = None  # local mode only
    num_gpus: int | None = None  # local mode only
    auth_mode: str = "disabled"  # RAY_AUTH_MODE for local clusters; clusters use "token"
    max_inflight_per_engine: int = 2
    max_tries: int = 3
    max_engine_restarts: int = 8  # Ray restarts a dead engine actor this many times (its work is requeued)
    gcs_timeout_s: float = 30.0  # ray mode: the GCS silent this long, the driver stops (saying how to resume)
    # ray mode: the cluster never grows (a Slurm allocation; `tts slurm` sets it): as on a local cluster, an
    # engine that cannot fit beside the others waits for room and idle engines are released to make it
    fixed_size: bool = False


@dataclass
class DifficultyConfig:
    method: str = "dataset_level"  # dataset_level | oracle_quantile | absolute | predicted
    num_bins: int = 5
    thresholds: list[float] = field(default_factory=lambda: [0.1, 0.5])  # absolute: pass@1 cut points
    samples: int = 8  # K samples per problem used to estimate pass@1 (oracle / absolute)
    bins: list[Any] | None = None  # restrict the sweep's cells to these bins


@dataclass
class SweepConfig:
    name: str = "default"
    axes: dict[str, str] = field(
        default_factory=dict
    )  # key -> Hydra sweep grammar, e.g. "1,4,16" or "range(1,5)"
    # optional named sub-grids, each crossed with `axes`; the sweep is their union (e.g. sampling strategies at
    # N in 1,2,4,8 and beam search at N in 2,4,8). Empty: the sweep is `axes` alone. See tts/grid.py.
    grids: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class TTSConfig:
    """The root config: one grid point (a cell) once the sweep axes are fixed."""

    policy: PolicyConfig = MISSING
    prm: PRMConfig = MISSING
    strategy: Any = MISSING  # the schema of a registered strategy (its StrategyEntry.schema)
    dataset: DatasetConfig = MISSING
    engine: EngineConfig = MISSING
    cluster: ClusterConfig = MISSING
    difficulty: DifficultyConfig = MISSING
    sweep: SweepConfig = field(default_factory=SweepConfig)
    n: int = 4
    seed: int = 0
    results_dir: str = "results"


def register_configs(strategy_yamls: Collection[str] = ()) -> None:
    """Register every schema in Hydra's ConfigStore (idempotent).

    A strategy's schema is stored twice in group `strategy`: as `<name>`, so `strategy=<name>` composes with no
    YAML (a plugin needs none), and as `base_<name>`, what a YAML option extends to set other defaults. A YAML
    option named `<name>` on the search path (`strategy_yamls`, listed by tts.grid once Hydra knows the path)
    takes that name: its `<name>` node is then not stored (Hydra would validate the YAML against a same-named
    schema, a deprecated behaviour). A name registered twice, or an entry whose functions do not take its
    schema's fields, fails here with one line (tts.registry.DuplicateNameError, tts.strategies.entry)."""
    from tts.registry import DuplicateNameError, PluginImportError
    from tts.strategies import STRATEGIES
    from tts.strategies.entry import RegistrationError

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=TTSConfig)
    cs.store(group="policy", name="base_policy", node=PolicyConfig)
    cs.store(group="prm", name="base_prm", node=PRMConfig)
    try:
        entries = list(STRATEGIES.items())
    except (DuplicateNameError, RegistrationError, PluginImportError) as exc:
        raise ConfigError(str(exc)) from exc
    stored = cs.repo.get("strategy", {})
    for name, entry in entries:
        cs.store(group="strategy", name=f"base_{name}", node=entry.schema)
        if name in strategy_yamls:
            stored.pop(f"{name}.yaml", None)  # stored by an earlier call, before that YAML was on the path
        else:
            cs.store(group="strategy", name=name, node=entry.schema)
    cs.store(group="dataset", name="base_dataset", node=DatasetConfig)
    cs.store(group="engine", name="base_engine", node=EngineConfig)
    cs.store(group="cluster", name="base_cluster", node=ClusterConfig)
    cs.store(group="difficulty", name="base_difficulty", node=DifficultyConfig)


def conf_dir() -> Path:
    """The config tree: $TTS_CONF_DIR, else conf/ beside the package (a source checkout / editable install)."""
    import os

    env = os.environ.get("TTS_CONF_DIR")
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "conf"
    if not (path / "config.yaml").is_file():
        raise ConfigError(
            f"conf dir: no config.yaml in {path}; set TTS_CONF_DIR to the project's conf/ folder"
        )
    return path


# ------------------------------------------------------------------------------------------ validation
DIFFICULTY_METHODS = ("dataset_level", "oracle_quantile", "absolute", "predicted")
CLUSTER_MODES = ("local", "ray")
ID_FILTER_DATASETS = ("humaneval", "mbpp", "code_jsonl")  # loaders that honour dataset.ids
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _fail(field_name: str, value: object, fix: str) -> ConfigError:
    return ConfigError(f"{field_name}: invalid value {value!r}; {fix}")


def _not_one_of(field_name: str, value: object, choices: Sequence[str]) -> ConfigError:
    """The error for a value outside a closed set: the allowed values and the closest one."""
    return _fail(field_name, value, f"allowed: {', '.join(choices)}{did_you_mean(value, choices)}")


def _check_model(field_name: str, model: str | None) -> None:
    """A model is a hub id (org/name), "embedded:<name>", or an existing local folder."""
    if model is None or model == "":
        raise _fail(field_name, model, "set it to a hub id (org/name), embedded:<name>, or a local folder")
    if model.startswith("embedded:"):
        from tts.engines.embedded import EMBEDDED_MODELS, ZOO_MODELS

        name = model.removeprefix("embedded:")
        allowed = sorted([*EMBEDDED_MODELS, *ZOO_MODELS])
        if name not in allowed:
            raise _fail(
                field_name,
                model,
                f"allowed embedded models: {', '.join(allowed)}{did_you_mean(name, allowed)}",
            )
        return
    looks_local = model.startswith(("/", ".", "~")) or Path(model).expanduser().exists()
    if looks_local:
        if not Path(model).expanduser().is_dir():
            raise _fail(
                field_name, model, "no such model folder; give an existing path or a hub id (org/name)"
            )
        return
    if not HUB_ID.match(model):
        raise _fail(field_name, model, "not a hub id (org/name), embedded:<name>, or an existing folder")


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_policy_backend(p: PolicyConfig) -> None:
    """policy.backend and its endpoint fields: an endpoint's `model` is the served model name (any text), its
    `tokenizer` a model folder / hub id / embedded name, its key the NAME of an environment variable."""
    from tts.engines import ENDPOINT_BACKENDS, POLICY_BACKENDS

    if p.backend not in POLICY_BACKENDS:
        raise ConfigError(POLICY_BACKENDS.unknown_message(p.backend, field="policy.backend"))
    if p.backend not in ENDPOINT_BACKENDS:
        _check_model("policy.model", p.model)
        if p.base_url is not None:
            raise _fail(
                "policy.base_url", p.base_url, "is for policy.backend=openai; remove it or set the backend"
            )
        return
    if not p.base_url or not str(p.base_url).startswith(("http://", "https://")):
        raise _fail(
            "policy.base_url",
            p.base_url,
            "policy.backend=openai needs the server's URL, e.g. http://127.0.0.1:8000/v1",
        )
    if not p.model:
        raise _fail("policy.model", p.model, "give the served model name (GET <base_url>/models lists it)")
    if p.tokenizer is not None:
        _check_model("policy.tokenizer", p.tokenizer)
    if p.api_key_env is not None and not ENV_NAME.match(p.api_key_env):
        raise ConfigError(
            "policy.api_key_env: invalid value (not shown: it may be a key); give the NAME of an environment "
            "variable that holds the key, e.g. OPENAI_API_KEY"
        )
    if p.max_concurrency < 1:
        raise _fail(
            "policy.max_concurrency", p.max_concurrency, "must be >= 1 (requests in flight per endpoint)"
        )
    if p.timeout_s <= 0:
        raise _fail("policy.timeout_s", p.timeout_s, "must be > 0 seconds")
    if p.max_retries < 0:
        raise _fail("policy.max_retries", p.max_retries, "must be >= 0")


def _check_prm_endpoint(r: PRMConfig) -> None:
    """A verifier on an endpoint: a kind that has an endpoint form, a URL, the served name, a tokenizer for
    pooling PRMs (prm.tokenizer, or prm.model as a folder / embedded name), bounds like the policy's."""
    from tts.engines import ENDPOINT_PRM_KINDS

    if r.kind not in ENDPOINT_PRM_KINDS:
        raise _not_one_of("prm.kind", r.kind, tuple(ENDPOINT_PRM_KINDS))
    if not str(r.base_url).startswith(("http://", "https://")):
        raise _fail("prm.base_url", r.base_url, "give the server's URL, e.g. http://127.0.0.1:8001/v1")
    if not r.model:
        raise _fail("prm.model", r.model, "give the served model name (GET <base_url>/models lists it)")
    if r.kind == "vllm_pooling":
        _check_model("prm.tokenizer" if r.tokenizer else "prm.model", r.tokenizer or r.model)
    if r.api_key_env is not None and not ENV_NAME.match(r.api_key_env):
        raise ConfigError(
            "prm.api_key_env: invalid value (not shown: it may be a key); give the NAME of an environment "
            "variable that holds the key"
        )
    if r.max_concurrency < 1:
        raise _fail("prm.max_concurrency", r.max_concurrency, "must be >= 1")
    if r.timeout_s <= 0 or r.max_retries < 0:
        raise _fail("prm.timeout_s / prm.max_retries", (r.timeout_s, r.max_retries), "must be > 0 / >= 0")


def _reject_unknown_keys(cfg: DictConfig) -> None:
    """Hydra's `+group.key=value` can add a key a schema does not have, and `to_object` would then drop it
    silently (a typo like `+strategy.beam_widht=4` must not pass as the default)."""
    from dataclasses import fields

    for group in ("policy", "prm", "strategy", "dataset", "engine", "cluster", "difficulty", "sweep"):
        node = cfg.get(group)
        schema = OmegaConf.get_type(node) if OmegaConf.is_config(node) else None
        if schema is None or schema is dict:
            continue
        allowed = {f.name for f in fields(schema)}
        for key in node:
            if key not in allowed:
                raise ConfigError(
                    f"{group}.{key}: unknown field; allowed: {', '.join(sorted(allowed))}"
                    + did_you_mean(key, allowed)
                )


def validate(cfg: DictConfig | TTSConfig) -> TTSConfig:
    """Check one composed cell config and return it as a typed TTSConfig. Raises ConfigError on the first
    problem found. Imports only registries (names), never model backends."""
    from tts.data import DATASETS
    from tts.engines import PRM_KINDS
    from tts.strategies import STRATEGIES

    if isinstance(cfg, DictConfig):
        _reject_unknown_keys(cfg)
        try:
            obj = OmegaConf.to_object(cfg)
        except Exception as exc:  # missing mandatory value, type mismatch
            raise ConfigError(f"config: {exc}") from exc
    else:
        obj = cfg
    if not isinstance(obj, TTSConfig):
        raise ConfigError("config: root is not a TTSConfig; compose it from conf/config.yaml")

    s = obj.strategy
    name = s.get("name") if isinstance(s, dict) else getattr(s, "name", None)
    if name not in STRATEGIES:
        raise ConfigError(STRATEGIES.unknown_message(name, field="strategy.name"))
    entry = STRATEGIES.get(name)
    if isinstance(s, dict) or not isinstance(s, entry.schema):  # composed without its schema: type it now
        try:
            raw = s if isinstance(s, dict) else OmegaConf.structured(s)
            s = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(entry.schema), raw))
        except Exception as exc:
            raise ConfigError(f"strategy: {exc}") from exc
        obj.strategy = s
    if obj.prm.kind not in PRM_KINDS:
        raise ConfigError(PRM_KINDS.unknown_message(obj.prm.kind, field="prm.kind"))
    if obj.dataset.name not in DATASETS:
        raise ConfigError(DATASETS.unknown_message(obj.dataset.name, field="dataset.name"))

    if not isinstance(obj.n, int) or isinstance(obj.n, bool) or obj.n <= 0:
        raise _fail("n", obj.n, "the budget N must be a positive integer")
    if obj.seed < 0:
        raise _fail("seed", obj.seed, "must be >= 0")
    s.check(obj.n)
    if (entry.traits.needs_verifier or s.verifier_needed()) and obj.prm.kind == "none":
        raise _fail(
            "prm",
            obj.prm.name,
            f"strategy {name} ranks by verifier scores; choose a PRM other than none"
            + ("" if entry.traits.needs_verifier else " (or a selection that reads no scores)"),
        )

    p = obj.policy
    _check_policy_backend(p)
    if "{question}" not in p.prompt_template:
        raise _fail("policy.prompt_template", p.prompt_template, "must contain the placeholder {question}")
    if p.temperature < 0:
        raise _fail("policy.temperature", p.temperature, "must be >= 0")
    if not 0 < p.top_p <= 1:
        raise _fail("policy.top_p", p.top_p, "must be in (0, 1]")
    for fname in ("max_tokens", "step_max_tokens"):
        if getattr(p, fname) <= 0:
            raise _fail(f"policy.{fname}", getattr(p, fname), "must be a positive integer")
    if not p.step_delimiter:
        raise _fail("policy.step_delimiter", p.step_delimiter, 'must be non-empty, e.g. "\\n\\n"')
    if p.params is not None and p.params <= 0:
        raise _fail("policy.params", p.params, "must be positive, or null to read it from the model config")
    if p.top_k is not None and (isinstance(p.top_k, bool) or p.top_k < 1):
        raise _fail("policy.top_k", p.top_k, "must be a positive integer, or null for no top-k cut")
    if not 0 <= p.min_p <= 1:
        raise _fail("policy.min_p", p.min_p, "must be in [0, 1] (0 = off)")
    for fname in ("thinking_start", "thinking_end"):
        if getattr(p, fname) == "":
            raise _fail(f"policy.{fname}", "", "give the marker (e.g. </think>), or null")
    try:
        parse_date(p.chat_template_date)
    except ValueError:
        raise _fail(
            "policy.chat_template_date", p.chat_template_date, "give an ISO date YYYY-MM-DD, e.g. 2024-07-26"
        ) from None
    if entry.traits.thinking and p.thinking_end is None:
        raise _fail(
            "policy.thinking_end",
            None,
            f"strategy {name} controls a thinking model's thinking; choose a thinking policy "
            "(e.g. policy=qwen3_1_7b_thinking) or set policy.thinking_end to its end marker",
        )

    r = obj.prm
    if r.aggregation not in AGGREGATIONS:
        raise _not_one_of("prm.aggregation", r.aggregation, AGGREGATIONS)
    if r.base_url is not None:
        _check_prm_endpoint(r)
    elif r.kind in MODEL_PRM_KINDS:
        _check_model("prm.model", r.model)
    if r.kind == "vllm_pooling" and r.format not in ("qwen_math_prm", "step_tag"):
        raise _not_one_of("prm.format", r.format, ("qwen_math_prm", "step_tag"))

    d = obj.dataset
    if d.evaluator not in EVALUATORS:
        raise _not_one_of("dataset.evaluator", d.evaluator, tuple(EVALUATORS))
    if d.limit is not None and d.limit <= 0:
        raise _fail("dataset.limit", d.limit, "must be a positive integer or null")
    if d.per_level is not None and d.per_level <= 0:
        raise _fail("dataset.per_level", d.per_level, "must be a positive integer or null")
    if d.name == "local" and not d.path:
        raise _fail("dataset.path", d.path, "dataset=local needs dataset.path=<file.jsonl|file.parquet>")
    if d.path is not None and not Path(d.path).expanduser().exists():
        raise _fail("dataset.path", d.path, "no such file; give a JSONL or Parquet file")
    if d.ids is not None and (d.name not in ID_FILTER_DATASETS or not d.ids):
        raise _fail(
            "dataset.ids",
            d.ids,
            f"a non-empty list of problem ids, for datasets {', '.join(ID_FILTER_DATASETS)}",
        )

    e = obj.engine
    if not 0 < e.gpu_memory_utilization <= 1:
        raise _fail("engine.gpu_memory_utilization", e.gpu_memory_utilization, "must be in (0, 1]")
    if e.tensor_parallel_size < 1:
        raise _fail("engine.tensor_parallel_size", e.tensor_parallel_size, "must be >= 1")
    if e.num_gpus < 0 or (e.num_gpus > 1 and e.num_gpus != int(e.num_gpus)):
        raise _fail("engine.num_gpus", e.num_gpus, "must be a fraction in [0, 1] or a whole number")
    if e.replicas < 1:
        raise _fail("engine.replicas", e.replicas, "must be >= 1")
    if e.dtype not in ("auto", "float32", "float16", "bfloat16"):
        raise _not_one_of("engine.dtype", e.dtype, ("auto", "float32", "float16", "bfloat16"))

    c = obj.cluster
    if c.mode not in CLUSTER_MODES:
        raise _not_one_of("cluster.mode", c.mode, CLUSTER_MODES)
    if c.max_tries < 1:
        raise _fail("cluster.max_tries", c.max_tries, "must be >= 1")
    if c.max_inflight_per_engine < 1:
        raise _fail("cluster.max_inflight_per_engine", c.max_inflight_per_engine, "must be >= 1")
    if not c.gcs_timeout_s > 0:
        raise _fail("cluster.gcs_timeout_s", c.gcs_timeout_s, "must be > 0 seconds")

    k = obj.difficulty
    if k.method not in DIFFICULTY_METHODS:
        raise _not_one_of("difficulty.method", k.method, DIFFICULTY_METHODS)
    if k.num_bins < 1:
        raise _fail("difficulty.num_bins", k.num_bins, "must be >= 1")
    if list(k.thresholds) != sorted(k.thresholds) or any(not 0 <= t <= 1 for t in k.thresholds):
        raise _fail(
            "difficulty.thresholds", list(k.thresholds), "must be increasing pass@1 cut points in [0, 1]"
        )
    if k.samples < 1:
        raise _fail("difficulty.samples", k.samples, "must be >= 1")
    return obj


# -------------------------------------------------------------------------------------------- builders
def sampling_settings(cfg: TTSConfig) -> Any:
    """The SamplingSettings a strategy runs with: the policy's knobs, the strategy's temperature override,
    the PRM's aggregation, and the cell's seed (every request's own seed derives from it)."""
    from tts.strategies.base import SamplingSettings

    p, s = cfg.policy, cfg.strategy
    return SamplingSettings(
        temperature=p.temperature if s.temperature is None else s.temperature,
        top_p=p.top_p,
        max_tokens=p.max_tokens,
        step_delimiter=p.step_delimiter,
        step_max_tokens=p.step_max_tokens,
        aggregation=cfg.prm.aggregation,
        top_k=p.top_k,
        min_p=p.min_p,
        thinking_start=p.thinking_start,
        thinking_end=p.thinking_end,
        seed=cfg.seed,
    )


def grading_rules(cfg: TTSConfig) -> GradingRules:
    """The rules a cell's completions are graded by: the data set's evaluator and the policy's end-of-thinking
    marker (tts.grading.rules)."""
    return GradingRules(evaluator=cfg.dataset.evaluator, thinking_end=cfg.policy.thinking_end)


def strategy_params(cfg: TTSConfig) -> dict[str, Any]:
    """The strategy's own options as plain keywords (everything in its schema but `name`/`temperature`)."""
    return cfg.strategy.params()
