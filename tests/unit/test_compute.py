"""Compute accounting: FLOPs per row against hand computations, parameter counts against real models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tts.compute import (
    add_flops,
    compute_by_cell,
    flops_arrays,
    param_count,
    param_count_from_config,
    policy_flops,
    prm_flops,
)

TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 100,
}


def test_flops_formulas_match_hand_computation() -> None:
    # 2 x 1000 x ((100 - 30) + 50) = 240,000 ; cached tokens are free ; PRM: 2 x 500 x 80
    assert policy_flops(1000, 100, 30, 50) == 240_000
    assert policy_flops(1000, 10, 30, 5) == 10_000  # more cached than prompt never goes negative
    assert prm_flops(500, 80) == 80_000
    f_pol, f_prm = flops_arrays(np.array([1000, 2000]), [100, 10], [30, 0], [50, 5], [500, 0], [80, 99])
    assert f_pol.tolist() == [240_000, 60_000]
    assert f_prm.tolist() == [80_000, 0]


def test_add_flops_and_compute_by_cell() -> None:
    rows = pd.DataFrame(
        {
            "cell_id": ["a", "a", "b"],
            "policy_params": [1000, 1000, 10],
            "prm_params": [500, 500, 0],
            "tokens_in": [100, 100, 7],
            "tokens_cached": [30, 0, 0],
            "tokens_out": [50, 20, 3],
            "prm_tokens": [80, 80, 0],
            "generations": [4, 4, 1],
        }
    )
    out = add_flops(rows)
    assert out["flops_policy"].tolist() == [240_000, 240_000, 200]
    assert out["flops_prm"].tolist() == [80_000, 80_000, 0]
    assert out["flops"].tolist() == [320_000, 320_000, 200]
    cells = compute_by_cell(rows).set_index("cell_id")
    assert cells.loc["a", "problems"] == 2
    assert cells.loc["a", "flops_total"] == 640_000
    assert cells.loc["a", "flops_per_problem"] == 320_000
    # tokens = uncached prefill + generated + PRM-read: (70 + 50 + 80) + (100 + 20 + 80) = 400
    assert cells.loc["a", "tokens_total"] == 400
    assert cells.loc["b", "generations_per_problem"] == 1
    with pytest.raises(KeyError, match="policy_params"):
        add_flops(rows.drop(columns="policy_params"))


def test_param_count_by_hand() -> None:
    # attention: q 64x64 + k,v 2 x 64x(2x16) + o 64x64 = 12,288 ; MLP 3 x 64 x 128 = 24,576 ; 2 norms 128
    # per layer 36,992 ; x2 layers = 73,984 ; final norm 64: the non-embedding N of the FLOPs formula
    assert param_count_from_config({**TINY, "model_type": "llama"}) == 73_984 + 64
    assert (
        param_count_from_config({**TINY, "model_type": "llama", "tie_word_embeddings": True}) == 73_984 + 64
    )
    # every parameter: + embeddings 6,400 + untied head 6,400
    total = param_count_from_config({**TINY, "model_type": "llama"}, embeddings=True)
    assert total == 73_984 + 6_400 + 6_400 + 64
    tied = {**TINY, "model_type": "llama", "tie_word_embeddings": True}
    assert param_count_from_config(tied, embeddings=True) == 80_448
    # qwen2 adds q/k/v biases: 64 + 2 x 32 = 128 per layer
    assert param_count_from_config({**TINY, "model_type": "qwen2"}) == 73_984 + 64 + 2 * 128


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("tied", [False, True])
def test_param_count_matches_a_real_model(family: str, tied: bool, tmp_path) -> None:
    # the model classes directly (not the Auto mappings): a smaller import, same modules
    from transformers.models.llama.modeling_llama import LlamaConfig, LlamaForCausalLM
    from transformers.models.qwen2.modeling_qwen2 import Qwen2Config, Qwen2ForCausalLM

    config_cls, model_cls = (
        (LlamaConfig, LlamaForCausalLM) if family == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    )
    config = config_cls(**TINY, tie_word_embeddings=tied)
    model = model_cls(config)
    real = sum(p.numel() for p in model.parameters())
    assert param_count_from_config(config.to_dict(), embeddings=True) == real
    vocab = model.get_input_embeddings().weight.numel() + (0 if tied else model.lm_head.weight.numel())
    config.save_pretrained(tmp_path)  # what a model folder holds
    assert param_count(tmp_path) == real - vocab  # FLOPs count non-embedding parameters
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == family


@pytest.mark.parametrize("head", ["ForTokenClassification", "ForSequenceClassification"])
def test_param_count_classification_heads(head: str) -> None:
    from transformers.models.qwen2 import modeling_qwen2

    config = modeling_qwen2.Qwen2Config(**TINY, num_labels=2)
    model = getattr(modeling_qwen2, f"Qwen2{head}")(config)
    real = sum(p.numel() for p in model.parameters())
    cfg = {**config.to_dict(), "architectures": [f"Qwen2{head}"]}
    assert param_count_from_config(cfg, embeddings=True) == real
    assert param_count_from_config(cfg) == real - model.get_input_embeddings().weight.numel()


def test_process_reward_model_head_by_hand() -> None:
    # Qwen2ForProcessRewardModel: no LM head; score = Linear(h, h) + ReLU + Linear(h, 2), both with bias
    cfg = {**TINY, "model_type": "qwen2", "architectures": ["Qwen2ForProcessRewardModel"], "num_labels": 2}
    body = 73_984 + 64 + 2 * 128  # non-embedding body
    assert param_count_from_config(cfg) == body + (64 * 64 + 64) + (64 * 2 + 2)
    assert param_count_from_config(cfg, embeddings=True) == body + 6_400 + (64 * 64 + 64) + (64 * 2 + 2)
