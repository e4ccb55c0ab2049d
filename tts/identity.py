"""Every identity of the product, computed here and only here, as named projections of a resolved config.

A resolved config is `dataclasses.asdict(TTSConfig)` (plain JSON-able data). Each id is the first hex chars of
sha256 over canonical JSON (sorted keys) of its projection, so it is stable across runs, machines, Python
versions and override order. The projections, with the fields each keeps:

  cell id           every field of the cell but the sweep-level ones (SWEEP_LEVEL_FIELDS: results_dir, sweep,
                    cluster; and the engine's resource fields, ENGINE_RESOURCE_FIELDS, which change where and how
                    fast a cell runs, never its rows); `difficulty` only when the cell is restricted to bins
                    (otherwise binning is an analysis-time choice); the data set's content hash when there is one.
                    The seed is included: two seeds are two cells.
  configuration id  the cell id's fields minus the repeat seeds (`seed`, `engine.seed`): the analysis groups
                    cells by it, so seeds pool and everything else (max_tokens, prompt template, prm.format,
                    dataset.levels, temperature, any strategy field) keeps configurations apart.
  pool id           what determines a stored sample pool's rows: the policy's model and prompt (not its name or
                    sampling knobs, which enter as the sampling settings), the scorer (PRM minus aggregation:
                    the pool stores per-step scores, any aggregation reads them), the data set, the sampling
                    settings, the seed, the engine, the problem ids, the pool size N_max and whether it is
                    scored. Not the strategy or N, so every pool-based cell of a group shares one pool.
  generation key    the pool id without the scorer: pools that differ only in their PRM share one generation.
  engine keys       which engine actor serves a cell: the policy's model and prompt fields plus the engine
                    settings (policy_key); the PRM's fields minus aggregation (prm_id) plus engine settings.

`configuration_id` of results written before it existed is recomputed from the stored config (tts.store).

Prompts and grading (results schema 5): the rendered prompt depends on the policy's prompt-format fields
(system_prompt, prompt_template, few_shot, chat_template, tokenizer, model), on the date a clock-reading chat
template renders (`policy.chat_template_date`, pinned: tts.engines.chat_template) and on the template text. All
of them are in every projection that keeps the policy's model fields (cell, configuration, pool, generation,
engine keys). The template text enters as `policy.chat_template_sha`, which tts.grid.resolved adds when the
tokenizer folder is local (a folder, a zoo model): hashing a file keeps the driver free of tokenizers and
downloads. A hub model's template is named by its model / tokenizer id only; loading it in the driver would
need its files (network, seconds per policy), so a hub revision that edits the template is not seen by the ids.
How answers are graded (`dataset.evaluator`, tts.grading.rules) is a data set field, so it is in every id too.
Neither field is neutral: schema-5 ids differ from schema-4 ids for the same settings, so rows graded or
prompted under the old rules are never found as finished cells or merged into a new configuration.

Fields added later: a config field added after results schema 4 with a neutral default (the behaviour from
before it existed) is listed in NEUTRAL_LATE_FIELDS and enters every projection only when set to another value.
A configuration that leaves it at its default keeps the ids it had before the field existed, so the cells and
pools a results folder already holds are found and not recomputed; one that sets it gets new ids, as for any
field. The SamplingSettings entry of the same name (top_k, min_p, the thinking markers: policy fields passed per
request) follows the same rule in the pool and generation keys. A field without a neutral default changes ids
and needs a results schema bump instead.

Endpoints (policy.backend openai; a PRM with base_url): the served model name (`policy.model`, `prm.model`) and,
where pinned, the server's revision or fingerprint (`policy.fingerprint`) are in every id; `base_url` and the
other transport fields (ENDPOINT_TRANSPORT_FIELDS) say where and how to send, a sweep-level setting in no id but
the engine keys.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

# Top-level fields that describe how a sweep runs, not what a cell computes. Sweeping one is rejected (tts.grid).
SWEEP_LEVEL_FIELDS = ("results_dir", "sweep", "cluster")
# Engine fields that never change a cell's rows: how many resources an engine gets.
ENGINE_RESOURCE_FIELDS = (
    "num_gpus",
    "num_cpus",
    "replicas",
    "gpu_memory_utilization",
    "max_num_seqs",
    "tensor_parallel_size",
    "enable_chunked_prefill",  # with per-request seeds, how prompts are split into steps changes no sample
    "max_num_batched_tokens",
)
# Policy fields that are per-request sampling knobs (they enter ids as the sampling settings).
POLICY_SAMPLING_FIELDS = (
    "name",
    "temperature",
    "top_p",
    "max_tokens",
    "step_delimiter",
    "step_max_tokens",
    "top_k",
    "min_p",
    "thinking_start",
    "thinking_end",
)
# Fields added after results schema 4, with their neutral defaults: left out of every projection at that value
# (see "Fields added later" above). (dotted path in the resolved config, default).
NEUTRAL_LATE_FIELDS: tuple[tuple[str, Any], ...] = (
    ("policy.top_k", None),
    ("policy.min_p", 0.0),
    ("policy.thinking_start", None),
    ("policy.thinking_end", None),
    ("engine.batch_invariant", False),
    ("policy.backend", "vllm"),
    ("policy.fingerprint", None),
    ("prm.tokenizer", None),
)
# Endpoint policies (policy.backend openai): where and how requests are sent, not what they compute. In no id but
# the engine key (which client actor serves the policy); the served model name and fingerprint are in every id.
ENDPOINT_TRANSPORT_FIELDS = ("base_url", "api_key_env", "max_concurrency", "timeout_s", "max_retries")
# Fields that are repeats of one configuration.
SEED_FIELDS = ("seed", "engine.seed")
# Where a data set's content hash sits in the projections (absent when the loader has none).
DATA_CONTENT_FIELD = "dataset_content"


def stable_hash(obj: Any, length: int = 16) -> str:
    """sha256 of canonical JSON (sorted keys), first `length` hex chars."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def without_neutral_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a resolved config without the NEUTRAL_LATE_FIELDS that hold their default and without the
    endpoint transport fields (ENDPOINT_TRANSPORT_FIELDS: sweep-level, in no id but the engine key)."""
    data = copy.deepcopy(dict(config))
    for group in ("policy", "prm"):
        if isinstance(data.get(group), dict):
            for key in ENDPOINT_TRANSPORT_FIELDS:
                data[group].pop(key, None)
    for path, default in NEUTRAL_LATE_FIELDS:
        group, _, key = path.partition(".")
        node = data.get(group)
        if isinstance(node, dict) and key in node and node[key] == default:
            del node[key]
    return data


def _sampling(sampling: Mapping[str, Any]) -> dict[str, Any]:
    """Sampling settings without the entries that mirror a NEUTRAL_LATE_FIELDS policy field at its default."""
    neutral = {path.removeprefix("policy."): default for path, default in NEUTRAL_LATE_FIELDS}
    return {k: v for k, v in sampling.items() if not (k in neutral and v == neutral[k])}


def cell_fields(config: Mapping[str, Any], data_hash: str | None = None) -> dict[str, Any]:
    """The cell id's projection of a resolved config."""
    data = without_neutral_fields(config)
    for key in SWEEP_LEVEL_FIELDS:
        data.pop(key, None)
    for key in ENGINE_RESOURCE_FIELDS:
        data.get("engine", {}).pop(key, None)
    if (data.get("difficulty") or {}).get("bins") is None:
        data.pop("difficulty", None)
    if data_hash is not None:
        data[DATA_CONTENT_FIELD] = data_hash
    return data


def cell_id(config: Mapping[str, Any], data_hash: str | None = None) -> str:
    return stable_hash(cell_fields(config, data_hash))


def configuration_fields(config: Mapping[str, Any], data_hash: str | None = None) -> dict[str, Any]:
    """The configuration id's projection: the cell's fields minus the repeat seeds."""
    data = cell_fields(config, data_hash)
    data.pop("seed", None)
    data.get("engine", {}).pop("seed", None)
    return data


def configuration_id(config: Mapping[str, Any], data_hash: str | None = None) -> str:
    return stable_hash(configuration_fields(config, data_hash))


def dataset_key(config: Mapping[str, Any]) -> str:
    """The data set's settings (which problems a loader returns)."""
    return stable_hash(config["dataset"])


def _policy_model_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    policy = without_neutral_fields({"policy": config["policy"]})["policy"]
    return {k: v for k, v in policy.items() if k not in POLICY_SAMPLING_FIELDS}


def _engine_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """All engine fields, resources included: engines of different shape are different actors."""
    return dict(config["engine"])


def policy_key(config: Mapping[str, Any]) -> str:
    """The policy engine's key: its model, prompt and engine settings (sampling knobs are per request)."""
    name = config["policy"]["name"]
    fields = _policy_model_fields(config)
    transport = {
        k: config["policy"][k] for k in ENDPOINT_TRANSPORT_FIELDS if config["policy"].get(k) is not None
    }
    if transport.get("base_url"):  # an endpoint: one client actor per server and bounds
        fields = {**fields, "endpoint": transport}
    return f"policy:{name}:{stable_hash([fields, _engine_settings(config)], 8)}"


def prm_id(config: Mapping[str, Any]) -> str:
    """The scorer's name inside its actor: the PRM's name and a hash of everything but its aggregation."""
    prm = without_neutral_fields({"prm": config["prm"]})["prm"]
    model_fields = {k: v for k, v in prm.items() if k != "aggregation"}
    return f"{config['prm']['name']}:{stable_hash(model_fields, 8)}"


def prm_engine_key(config: Mapping[str, Any]) -> str:
    """The key of a PRM engine of its own (a PRM served by the policy's engine uses policy_key)."""
    transport = {
        k: config["prm"].get(k) for k in ENDPOINT_TRANSPORT_FIELDS if config["prm"].get(k) is not None
    }
    extra = [transport] if transport.get("base_url") else []  # an endpoint: one client actor per server
    return f"prm:{prm_id(config)}:{stable_hash([_engine_settings(config), *extra] if extra else _engine_settings(config), 8)}"


def _engine_for_samples(config: Mapping[str, Any]) -> dict[str, Any]:
    """The engine fields in the pool keys: all of them (as before results schema 5), less the late fields that
    change no sample at their defaults (NEUTRAL_LATE_FIELDS) and the scheduling ones added with per-request seeds
    (chunked prefill, tokens per step), so pools stored before those fields existed are still found."""
    engine = without_neutral_fields({"engine": config["engine"]})["engine"]
    return {k: v for k, v in engine.items() if k not in ("enable_chunked_prefill", "max_num_batched_tokens")}


def pool_group_key(config: Mapping[str, Any], sampling: Mapping[str, Any]) -> str:
    """Cells with the same key share a pool: same policy, PRM (any aggregation), data set, sampling, seed."""
    return stable_hash(
        [
            _policy_model_fields(config),
            prm_id(config),
            dataset_key(config),
            _sampling(sampling),
            config["seed"],
            _engine_for_samples(config),
        ]
    )


def generation_group_key(config: Mapping[str, Any], sampling: Mapping[str, Any]) -> str:
    """Pools with the same key share one generation (whatever their PRM)."""
    return stable_hash(
        [
            _policy_model_fields(config),
            dataset_key(config),
            _sampling(sampling),
            config["seed"],
            _engine_for_samples(config),
        ]
    )


def pool_id(
    config: Mapping[str, Any],
    sampling: Mapping[str, Any],
    problem_ids: Sequence[str],
    n_max: int,
    scored: bool,
) -> str:
    return stable_hash([pool_group_key(config, sampling), list(problem_ids), n_max, scored])


def generation_key(
    config: Mapping[str, Any], sampling: Mapping[str, Any], problem_ids: Sequence[str], n_max: int
) -> str:
    """The engine actor caches one generation under this key and serves it to every PRM's pool."""
    return stable_hash([policy_key(config), list(problem_ids), n_max, _sampling(sampling), config["seed"]])
