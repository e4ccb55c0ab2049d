"""Compute accounting: parameter counts from model configs, and FLOPs per row.

Why: budgets are compared three ways (generations, tokens, FLOPs) and the FLOPs one must be the same everywhere.
We follow Kaplan et al. (2020), as Snell et al. (2024) and Liu et al. (2025) do: a forward pass costs ~2 x N
FLOPs per token, N the NON-EMBEDDING parameter count, so

    policy FLOPs = 2 x N_policy x (uncached prefill tokens + generated tokens)
    PRM FLOPs    = 2 x N_prm    x (tokens the PRM read, prefix-cache hits excluded)
    N = layers x (attention + MLP + 2 norms) + final norm + any task head (PRM / classifier)
      attention = h x (heads x d) + 2 h x (kv_heads x d) + (heads x d) x h  (+ q/k/v biases for Qwen2)
      MLP       = 3 x h x intermediate (gate, up, down; + biases when mlp_bias)

The token embedding and the LM head (tied or not) are left out: a lookup costs no matmul FLOPs, and Kaplan's
N excludes both, so small-vocabulary and large-vocabulary models compare on the same footing. Prefix-cached
prompt tokens are not recomputed, so they are not charged. Parameter counts are read from the model's config
(never from a hand-typed table): `param_count_from_config` computes them for decoder-only transformers (Llama /
Qwen2 / Mistral family fields; `embeddings=True` gives the total, as `model.parameters()` counts);
`param_count` reads a local folder's config.json.

Vectorised forms (`flops_arrays`, `add_flops`) apply the same formulas to whole result columns, and
`compute_by_cell` reports the three budget measures per cell (per problem and in total).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def policy_flops(params: int, prompt_tokens: int, cached_prompt_tokens: int, generated_tokens: int) -> float:
    """2 x params x (uncached prefill + decode tokens)."""
    return 2.0 * params * (max(prompt_tokens - cached_prompt_tokens, 0) + generated_tokens)


def prm_flops(params: int, scored_tokens: int) -> float:
    """2 x params x tokens the PRM read."""
    return 2.0 * params * scored_tokens


def param_count_from_config(config: dict[str, Any], *, embeddings: bool = False) -> int:
    """Non-embedding parameters of a decoder-only transformer from its HF config dict (the N of the FLOPs
    formula); `embeddings=True`: every parameter (embeddings once when tied, an untied LM head). Covers the
    fields Llama, Qwen2, Mistral and SmolLM configs use."""
    cfg = config.get("text_config", config)
    h = int(cfg["hidden_size"])
    layers = int(cfg["num_hidden_layers"])
    vocab = int(cfg["vocab_size"])
    inter = int(cfg.get("intermediate_size", 4 * h))
    heads = int(cfg["num_attention_heads"])
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or h // heads)
    attn = h * heads * head_dim + 2 * h * kv_heads * head_dim + heads * head_dim * h
    if cfg.get("attention_bias", cfg.get("model_type") == "qwen2"):
        attn += heads * head_dim + 2 * kv_heads * head_dim
    mlp = 3 * h * inter + (2 * inter + h if cfg.get("mlp_bias") else 0)
    norms = 2 * h
    per_layer = attn + mlp + norms
    embed = vocab * h
    head = 0 if cfg.get("tie_word_embeddings", False) else vocab * h
    arch = (cfg.get("architectures") or config.get("architectures") or [""])[0]
    n_labels = int(cfg.get("num_labels") or len(cfg.get("id2label") or {}) or 2)
    if arch.endswith(("ForProcessRewardModel", "ForRewardModel")):
        # Qwen2.5-Math-PRM style head: Linear(h, h) + ReLU + Linear(h, num_labels), both with bias; no LM head
        labels = 1 if arch.endswith("ForRewardModel") and not cfg.get("id2label") else n_labels
        head = h * h + h + h * labels + labels
    elif arch.endswith("ForTokenClassification"):  # Linear(h, num_labels) with bias
        head = h * n_labels + n_labels
    elif arch.endswith("ForSequenceClassification"):  # Linear(h, num_labels), no bias
        head = h * n_labels
    lm_head = head if not arch.endswith(_TASK_HEADS) else 0
    body = layers * per_layer + h + (head - lm_head)
    return body + embed + lm_head if embeddings else body


_TASK_HEADS = (
    "ForProcessRewardModel",
    "ForRewardModel",
    "ForTokenClassification",
    "ForSequenceClassification",
)


def param_count(model_dir: str | Path) -> int:
    """Non-embedding parameter count of a local model folder: its config.json, via `param_count_from_config`."""
    path = Path(model_dir) / "config.json"
    return param_count_from_config(json.loads(path.read_text()))


def flops_arrays(
    policy_params: Any, tokens_in: Any, tokens_cached: Any, tokens_out: Any, prm_params: Any, prm_tokens: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(policy FLOPs, PRM FLOPs) for whole columns: the formulas of `policy_flops` and `prm_flops`."""
    uncached = np.maximum(np.asarray(tokens_in, float) - np.asarray(tokens_cached, float), 0.0)
    f_policy = 2.0 * np.asarray(policy_params, float) * (uncached + np.asarray(tokens_out, float))
    f_prm = 2.0 * np.asarray(prm_params, float) * np.asarray(prm_tokens, float)
    return f_policy, f_prm


def add_flops(rows: pd.DataFrame, *, overwrite: bool = True) -> pd.DataFrame:
    """Rows with flops_policy, flops_prm and flops (re)computed from their token counts and parameter counts.

    Missing token columns count as 0 (tokens_cached, prm_tokens); missing prm_params as 0 (no PRM)."""
    need = ("policy_params", "tokens_in", "tokens_out")
    missing = [c for c in need if c not in rows.columns]
    if missing:
        raise KeyError(
            f"add_flops: rows lack column(s) {missing}; they come from tts.results_schema.CELL_COLUMNS"
        )
    out = rows.copy()
    if not overwrite and {"flops_policy", "flops_prm", "flops"} <= set(out.columns):
        return out

    def col(name: str) -> Any:
        return out[name].fillna(0).to_numpy(float) if name in out.columns else 0.0

    f_pol, f_prm = flops_arrays(
        col("policy_params"),
        col("tokens_in"),
        col("tokens_cached"),
        col("tokens_out"),
        col("prm_params"),
        col("prm_tokens"),
    )
    out["flops_policy"], out["flops_prm"] = f_pol, np.broadcast_to(f_prm, f_pol.shape).copy()
    out["flops"] = out["flops_policy"] + out["flops_prm"]
    return out


def compute_by_cell(rows: pd.DataFrame) -> pd.DataFrame:
    """Per cell: problems, and generations / tokens / FLOPs both per problem (mean) and in total (sum).

    Tokens = uncached prefill + generated + PRM-read tokens, the quantity FLOPs are proportional to."""
    df = add_flops(rows, overwrite=False)
    df = df.assign(
        tokens=df["tokens_in"].fillna(0)
        - df.get("tokens_cached", 0)
        + df["tokens_out"].fillna(0)
        + df.get("prm_tokens", 0)
    )
    measures = ["generations", "tokens", "flops_policy", "flops_prm", "flops"]
    grouped = df.groupby("cell_id", sort=True)[measures]
    out = grouped.mean().add_suffix("_per_problem").join(grouped.sum().add_suffix("_total"))
    out.insert(0, "problems", df.groupby("cell_id", sort=True).size())
    return out.reset_index()
