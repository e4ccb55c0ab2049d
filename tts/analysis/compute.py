"""Compute accounting: parameter counts from model configs, and FLOPs per row.

Why: budgets are compared three ways (generations, tokens, FLOPs) and the FLOPs one must be the same everywhere.
We follow Liu et al. (2025) and Kaplan et al.: a forward pass costs ~2 x params FLOPs per token, so

    policy FLOPs = 2 x P_policy x (uncached prefill tokens + generated tokens)
    PRM FLOPs    = 2 x P_prm    x (tokens the PRM read)

Prefix-cached prompt tokens are not recomputed, so they are not charged. Parameter counts are read from the
model's config (never from a hand-typed table): `param_count_from_config` computes them for decoder-only
transformers (Llama / Qwen2 / Mistral family fields), falling back to the safetensors index when present.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def policy_flops(params: int, prompt_tokens: int, cached_prompt_tokens: int, generated_tokens: int) -> float:
    """2 x params x (uncached prefill + decode tokens)."""
    return 2.0 * params * (max(prompt_tokens - cached_prompt_tokens, 0) + generated_tokens)


def prm_flops(params: int, scored_tokens: int) -> float:
    """2 x params x tokens the PRM read."""
    return 2.0 * params * scored_tokens


def param_count_from_config(config: dict[str, Any]) -> int:
    """Parameters of a decoder-only transformer from its HF config dict (embeddings included, counted once
    when tied). Covers the fields Llama, Qwen2, Mistral and SmolLM configs use."""
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
    mlp = 3 * h * inter
    norms = 2 * h
    per_layer = attn + mlp + norms
    embed = vocab * h
    head = 0 if cfg.get("tie_word_embeddings", False) else vocab * h
    n_labels = int(cfg.get("num_labels", 0)) if cfg.get("architectures", [""])[0].endswith(
        ("ForProcessRewardModel", "ForTokenClassification", "ForRewardModel")
    ) else 0
    if n_labels:  # classification head (Qwen2ForProcessRewardModel: a 2-layer MLP to num_labels)
        head = h * h + h + h * n_labels + n_labels
    return layers * per_layer + embed + head + h


def param_count(model_dir: str | Path) -> int:
    """Parameter count of a local model folder: its config.json, via `param_count_from_config`."""
    path = Path(model_dir) / "config.json"
    return param_count_from_config(json.loads(path.read_text()))
