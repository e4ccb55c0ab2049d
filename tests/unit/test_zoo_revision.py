"""The revision policy's training text is what the policy engine renders, its data and measurement are what the
module says, and `tts zoo train --only zoo-policy-r` trains it alone from an existing zoo-policy-m folder."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from tts.data.chain import generate, solution
from tts.engines.protocols import Conversation
from tts.strategies.sequential_revision import HISTORY, INSTRUCTION, revision_history

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _engine(tok):
    """A VLLMPolicy as the zoo YAMLs configure it (no system prompt, "{question}"), on the zoo tokenizer."""
    from tts.engines.vllm_policy import VLLMPolicy

    return VLLMPolicy("zoo", llm=SimpleNamespace(get_tokenizer=lambda: tok), params=1)


@pytest.mark.parametrize("earlier", [0, 1, 3, HISTORY, HISTORY + 2])
def test_training_prompt_is_what_the_policy_engine_renders(earlier):
    from tts.zoo.revision import revision_prompt
    from tts.zoo.tokenizer import build_tokenizer, policy_prompt

    tok = build_tokenizer()
    engine = _engine(tok)
    attempts = [f"12+{k}={12 + k}\n\n\\boxed{{{12 + k}}}" for k in range(earlier)]
    conversation = Conversation("12+7", revision_history(attempts, HISTORY, INSTRUCTION))
    served = engine.render(conversation)
    assert revision_prompt(tok, "12+7", attempts) == served
    assert policy_prompt(tok, "12+7", conversation.history) == served
    assert served.count(INSTRUCTION) == min(earlier, HISTORY)
    if earlier == 0:
        assert (
            served
            == policy_prompt(tok, "12+7")
            == "<|im_start|>user\n12+7<|im_end|>\n<|im_start|>assistant\n"
        )
    else:  # the kept attempts, oldest first, each followed by the instruction, then the generation prompt
        kept = attempts[-HISTORY:]
        assert served.index(kept[0]) <= served.index(kept[-1])
        assert served.endswith(
            f"{kept[-1]}<|im_end|>\n<|im_start|>user\n{INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
        )


def test_revision_example_draws_earlier_attempts_from_the_pool_and_targets_the_reference():
    from tts.zoo.revision import revision_example

    p = generate([3], 1, seed=0, split="train")[0]
    pool = ["a", "b", "c", "d"]
    ex = revision_example(p, pool, 3, random.Random(0))
    assert len(ex.attempts) == 3 and len(set(ex.attempts)) == 3 and set(ex.attempts) <= set(pool)
    assert ex.target == solution(p)


def test_chain_stats_attempt_accuracy_majorities_and_verdicts():
    from tts.zoo.revision import chain_stats, verdict

    problems = generate([1], 2, seed=0)
    right = [solution(p) for p in problems]
    wrong = "\\boxed{-1}"
    # problem 0: every chain wrong then right; problem 1: right then wrong; 4 chains of 4 attempts each
    texts = [
        [[wrong, right[0], right[0], right[0]] for _ in range(4)],
        [[right[1], wrong, wrong, right[1]] for _ in range(4)],
    ]
    row = chain_stats(problems, texts)
    assert [row[f"attempt_{j}"] for j in (1, 2, 3, 4)] == [0.5, 0.5, 0.5, 1.0]
    assert row["majority@4_chain"] == 1.0  # problem 1's tie: first seen (right) wins
    assert row["majority@4_independent"] == 0.5  # the 4 first attempts: all wrong, then all right
    assert row["revision_gain"] == 0.5
    assert verdict(0.3, 0.1) == "helps" and verdict(-0.3, 0.1) == "hurts" and verdict(0.1, 0.1) == "no effect"


def test_only_mode_needs_the_revision_policy_and_a_source_folder(tmp_path):
    from tts.zoo.recipe import ZooConfig, train_zoo

    with pytest.raises(ValueError, match="zoo-policy-r"):
        train_zoo(tmp_path, ZooConfig(only=("zoo-policy-s",), init_dir=tmp_path))
    with pytest.raises(ValueError, match="--from"):
        train_zoo(tmp_path, ZooConfig(only=("zoo-policy-r",)))


def test_cli_trains_only_the_revision_policy_from_an_existing_folder(tmp_path):
    """A tiny zoo-policy-m folder, then `tts zoo train --only zoo-policy-r --from` at a small scale: only the
    revision policy's folder and card are written, the source folder is untouched, the curve is per level."""
    import hashlib

    from tts.zoo.cli import main
    from tts.zoo.recipe import save_policy
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import ModelSpec, TrainSpec, train_policy

    tok = build_tokenizer()
    src = tmp_path / "src"
    model, _ = train_policy(
        ModelSpec(64, 2, 2, 128), TrainSpec(steps=30, batch=16, warmup=5), tok, log=lambda m: None
    )
    save_policy(model, tok, src / "zoo-policy-m")
    digest = hashlib.sha256((src / "zoo-policy-m" / "model.safetensors").read_bytes()).hexdigest()
    out = tmp_path / "out"
    assert (
        main(
            [
                "train",
                "--only",
                "zoo-policy-r",
                "--from",
                str(src),
                "--out",
                str(out),
                "--scale",
                "0.005",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["zoo-policy-r"]
    assert hashlib.sha256((src / "zoo-policy-m" / "model.safetensors").read_bytes()).hexdigest() == digest
    card = json.loads((out / "zoo-policy-r" / "card.json").read_text())
    assert card["init_from"] == "zoo-policy-m" and card["params"] == sum(
        p.numel() for p in model.parameters()
    )
    table = card["revision_eval"]
    assert list(table) == ["1", "2", "3", "4", "5", "6", "all"]
    for row in table.values():
        assert {"zoo-policy-r", "zoo-policy-m"} <= set(row)
        assert {"attempt_1", "attempt_4", "majority@4_chain", "revision_verdict"} <= set(row["zoo-policy-r"])
    text = (out / "zoo-policy-r" / "MODEL_CARD.md").read_text()
    assert "**zoo-policy-r**" in text and "**zoo-policy-m**" in text
    assert card["longest_train_tokens"] < 2048  # conf/engine/cpu.yaml max_model_len
