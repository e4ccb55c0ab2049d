"""The zoo's world and training, on CPU: the chain task family, the shared tokenizer, and a scaled-down training
run (about a minute) whose loss must fall and whose saved folders must load back in transformers.

The vLLM load of freshly trained folders is in tests/integration/test_zoo_shipped.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tts.data import DATASETS
from tts.data.chain import LEVELS, check_steps, generate, solution
from tts.grading import grade
from tts.strategies.steps import split_steps, states_final_answer

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


# --------------------------------------------------------------------------------------------- task family
def test_levels_are_reproducible_distinct_and_harder_with_level():
    a, b = generate(sorted(LEVELS), 30, seed=3), generate(sorted(LEVELS), 30, seed=3)
    assert [p.question for p in a] == [p.question for p in b]
    assert generate([2], 30, seed=4)[0].question != generate([2], 30, seed=3)[0].question
    for level in LEVELS:
        qs = [p.question for p in a if p.level == level]
        assert len(qs) == len(set(qs)) == 30
        assert all(len(p.metadata["steps"]) == len(p.metadata["ops"]) + 1 for p in a if p.level == level)
    ops = [len(next(p for p in a if p.level == level).metadata["ops"]) for level in sorted(LEVELS)]
    assert ops == [1, 2, 3, 4, 5, 5]  # level 6: as many operations as level 5, the first one a product


def test_reference_solutions_grade_correct_and_split_into_steps():
    for p in generate(sorted(LEVELS), 8, seed=0):
        text = solution(p)
        steps = split_steps(text, "\n\n")
        assert steps == tuple(p.metadata["steps"])
        assert states_final_answer(steps[-1]) and not any(states_final_answer(s) for s in steps[:-1])
        verdict = grade(p, text)
        assert verdict.correct and not verdict.fallback_extraction, (p.question, text)
        wrong = text.replace(f"\\boxed{{{p.answer}}}", f"\\boxed{{{int(p.answer) + 1}}}")
        assert not grade(p, wrong).correct
        assert eval(p.question) == int(p.answer)  # the usual precedence agrees with the steps' order


def test_rule_prm_accepts_the_reference_steps():
    from tts.engines.rule_prm import score_steps

    for p in generate([1, 4, 6], 5, seed=0):
        assert score_steps(p.question, p.metadata["steps"]) == [1.0] * len(p.metadata["steps"])


def test_step_checker_marks_everything_after_the_first_error_bad():
    p = generate([3], 1, seed=0)[0]
    ref = p.metadata["steps"]
    assert check_steps(p, ref) == [True] * len(ref)
    broken = [ref[0], "1+1=3", *ref[2:]]
    assert check_steps(p, broken) == [True] + [False] * (len(ref) - 1)
    assert check_steps(p, [*ref, "extra"]) == [True] * len(ref) + [False]


def test_test_and_train_splits_are_disjoint_and_registered():
    test = {p.question for p in generate(sorted(LEVELS), 200, seed=0)}
    train = {p.question for p in generate(sorted(LEVELS), 200, seed=0, split="train")}
    assert not test & train
    cfg = SimpleNamespace(levels=[1, 5], per_level=7, limit=None, seed=0, split="test")
    problems = DATASETS.get("chain")(cfg)
    assert [p.level for p in problems] == [1] * 7 + [5] * 7


# ----------------------------------------------------------------------------------------------- tokenizer
def test_tokenizer_is_one_token_per_character_and_matches_the_prm_renderer():
    from tts.engines.vllm_prm import VLLMPoolingPRM
    from tts.zoo.tokenizer import build_tokenizer, policy_prompt, prm_text

    tok = build_tokenizer()
    text = "6*41=246\n\n\\boxed{246}"
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert policy_prompt(tok, "1+2") == "<|im_start|>user\n1+2<|im_end|>\n<|im_start|>assistant\n"
    steps = ["1+2=3", "\\boxed{3}"]
    served = VLLMPoolingPRM.render(
        SimpleNamespace(format="qwen_math_prm", tokenizer=tok, step_tag=""), "1+2", steps
    )
    assert prm_text(tok, "1+2", steps) == served
    sep = tok.convert_tokens_to_ids("<extra_0>")
    assert tok.encode(served, add_special_tokens=False).count(sep) == 2


# -------------------------------------------------------------------------------- scaled-down training run
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny policy (120 steps) and a PRM (30 steps) on its samples, saved as the zoo saves them."""
    from tts.zoo.recipe import save_policy, save_prm
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import (
        ModelSpec,
        TrainSpec,
        label_samples,
        sample,
        train_policy,
        train_prm,
        train_problems,
    )

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("zoo")
    tok = build_tokenizer()
    spec = ModelSpec(64, 2, 2, 192)
    policy, policy_curve = train_policy(
        spec, TrainSpec(steps=120, batch=32, warmup=20), tok, log=lambda m: None
    )
    save_policy(policy, tok, out / "policy")
    problems = train_problems(16, seed=7)
    data = label_samples(problems, sample(policy, tok, problems, 2, 1.0, seed=0))
    prm, prm_curve = train_prm(
        spec,
        TrainSpec(steps=30, batch=16, lr=1e-3, warmup=5),
        tok,
        data,
        init_from=policy,
        log=lambda m: None,
    )
    save_prm(prm, tok, out / "prm")
    return SimpleNamespace(
        out=out, policy_curve=policy_curve, prm_curve=prm_curve, prm=prm, data=data, tok=tok
    )


def test_policy_loss_falls_and_the_folder_loads(trained):
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    curve = trained.policy_curve
    assert curve[-1] < 0.6 * curve[0], curve  # from ~ln(260) toward the digits' entropy
    model = Qwen2ForCausalLM.from_pretrained(trained.out / "policy")
    assert model.config.head_dim >= 32 and model.config.tie_word_embeddings
    tok = AutoTokenizer.from_pretrained(trained.out / "policy")
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    assert next(model.parameters()).dtype == torch.float16  # shipped in fp16


def test_prm_folder_has_the_qwen_prm_layout_and_reloads_to_the_same_scores(trained):
    import json

    from safetensors.torch import load_file

    from tts.zoo.train import prm_module, prm_scores

    cfg = json.loads((trained.out / "prm" / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2ForProcessRewardModel"] and cfg["num_labels"] == 2
    tensors = load_file(trained.out / "prm" / "model.safetensors")
    assert {"score.0.weight", "score.0.bias", "score.2.weight", "score.2.bias"} <= set(tensors)
    assert all(k.startswith(("model.", "score.")) for k in tensors)
    assert trained.prm_curve[-1] < trained.prm_curve[0]
    from tts.zoo.train import ModelSpec

    again = prm_module(ModelSpec(64, 2, 2, 192), trained.tok)
    again.load_state_dict({k: v.float() for k, v in tensors.items()})
    rows = trained.data[:4]
    a, b = prm_scores(trained.prm, trained.tok, rows), prm_scores(again.eval(), trained.tok, rows)
    assert [len(s) for s in a] == [len(r.steps) for r in rows]
    assert all(abs(x - y) < 2e-2 for sa, sb in zip(a, b, strict=True) for x, y in zip(sa, sb, strict=True))


def test_auroc_matches_the_definition():
    from tts.zoo.train import auroc

    assert auroc([0.1, 0.2, 0.9, 0.8], [False, False, True, True]) == 1.0
    assert auroc([0.9, 0.8, 0.1, 0.2], [False, False, True, True]) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [False, True, False, True]) == 0.5
    assert auroc([0.3, 0.6, 0.6, 0.9], [False, True, False, True]) == pytest.approx(0.875)


# ------------------------------------------------------------------------------------------ shipped weights
def test_shipped_zoo_models_resolve_to_package_folders_without_download():
    import json
    from pathlib import Path

    from tts.engines.embedded import EmbeddedModelError, resolve_model
    from tts.zoo import ZOO_NAMES, weights_dir

    total = 0
    for name in ZOO_NAMES:
        folder = Path(resolve_model(f"embedded:{name}"))
        assert folder == weights_dir(name) and (folder / "tokenizer.json").is_file()
        cfg = json.loads((folder / "config.json").read_text())
        assert cfg["head_dim"] >= 32 and (cfg.get("dtype") or cfg.get("torch_dtype")) in (
            "float16",
            "bfloat16",
        )
        total += sum(f.stat().st_size for f in folder.iterdir())
    assert total < 20 * 2**20  # the 40 MB, with room for a revision-capable policy
    with pytest.raises(EmbeddedModelError, match="embedded:zoo-policy-s"):
        resolve_model("embedded:zoo-policy-xl")
