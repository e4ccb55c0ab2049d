"""`tts zoo train` output loads in vLLM on CPU through the project's own engines, and vLLM reads the PRM as
training does, and the likelihood verifier (tts.engines.likelihood_prm) scores as the torch rule the model
cards use (tts.zoo.train.likelihood_scores): a scaled-down run of the real recipe (tts.zoo.recipe at scale 0.02, about a minute), then the
zoo-policy-s folder in VLLMPolicy and the zoo-prm-s folder in VLLMPoolingPRM (format qwen_math_prm): the
policy generates, and the PRM's per-step scores equal the torch module's on the same solutions.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")
pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def zoo_out(tmp_path_factory):
    from tts.zoo import recipe

    out = tmp_path_factory.mktemp("zoo_train")
    cards = recipe.train_zoo(out, recipe.ZooConfig(scale=0.02, eval_per_level=4, eval_samples=2, threads=1))
    return out, cards


def test_scaled_down_recipe_writes_every_model_with_a_card_and_falling_loss(zoo_out):
    out, cards = zoo_out
    for name in ("zoo-policy-s", "zoo-policy-m", "zoo-policy-l", "zoo-prm-s", "zoo-prm-l", "zoo-orm"):
        card = json.loads((out / name / "card.json").read_text())
        assert (out / name / "MODEL_CARD.md").is_file() and (out / name / "model.safetensors").is_file()
        assert card["params"] > 0 and card["loss_curve"]
    for name in ("zoo-policy-s", "zoo-policy-m", "zoo-policy-l"):
        curve = cards[name]["loss_curve"]
        assert curve[-1] < curve[0], (name, curve)


def test_trained_folders_load_and_serve_in_vllm(zoo_out):
    from tts.data.chain import generate
    from tts.data.problem import Problem
    from tts.engines.protocols import Conversation, GenerationRequest, ScoreRequest
    from tts.engines.vllm_policy import VLLMPolicy
    from tts.engines.vllm_prm import VLLMPoolingPRM
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import LabelledSolution, ModelSpec, prm_module, prm_scores

    from ..fixtures.models import tiny_settings

    out, cards = zoo_out
    problems = generate([1, 3], 2, seed=0)
    policy = VLLMPolicy(str(out / "zoo-policy-s"), engine=tiny_settings())
    try:
        assert (
            policy.render(Conversation("1+2")) == "<|im_start|>user\n1+2<|im_end|>\n<|im_start|>assistant\n"
        )
        gens = policy.generate(
            [
                GenerationRequest(
                    prompt=policy.render(Conversation(p.question)), n=3, max_tokens=40, temperature=1.0
                )
                for p in problems
            ]
        )
        assert [len(g.completions) for g in gens] == [3] * len(problems)
        assert all(c.tokens_out > 0 for g in gens for c in g.completions)
    finally:
        policy.shutdown()

    prm = VLLMPoolingPRM(str(out / "zoo-prm-s"), format="qwen_math_prm", engine=tiny_settings())
    try:
        steps = [tuple(p.metadata["steps"]) for p in problems] + [("12+3=15", "\\boxed{15}")]
        questions = [p.question for p in problems] + ["12+3"]
        served = prm.score([ScoreRequest(question=q, steps=s) for q, s in zip(questions, steps, strict=True)])
    finally:
        prm.shutdown()
    from safetensors.torch import load_file

    module = prm_module(ModelSpec(**cards["zoo-prm-s"]["spec"]), build_tokenizer())
    module.load_state_dict(
        {k: v.float() for k, v in load_file(out / "zoo-prm-s" / "model.safetensors").items()}
    )
    rows = [
        LabelledSolution(Problem(id=q, question=q, answer="", dataset="chain"), s, (True,) * len(s))
        for q, s in zip(questions, steps, strict=True)
    ]
    reference = prm_scores(module.eval(), build_tokenizer(), rows)
    for got, want in zip(served, reference, strict=True):
        assert len(got.scores) == len(want)
        assert all(abs(a - b) < 1e-2 for a, b in zip(got.scores, want, strict=True)), (got.scores, want)


def test_the_likelihood_verifier_on_vllm_scores_as_the_torch_rule(zoo_out):
    from tts.data.chain import generate
    from tts.engines.likelihood_prm import LikelihoodPRM
    from tts.engines.protocols import ScoreRequest
    from tts.zoo.recipe import _load_policy
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import LabelledSolution, likelihood_scores

    from ..fixtures.models import tiny_settings

    out, _ = zoo_out
    problems = generate([1, 3], 2, seed=0)
    rows = [LabelledSolution(p, tuple(p.metadata["steps"]), ()) for p in problems]
    rows.append(LabelledSolution(problems[0], ("12+3=15", "\\boxed{15}"), ()))  # wrong from the first step
    judge = LikelihoodPRM(str(out / "zoo-policy-l"), engine=tiny_settings())
    try:
        served = judge.score([ScoreRequest(r.problem.question, r.steps) for r in rows])
    finally:
        judge.shutdown()
    reference = likelihood_scores(_load_policy(out / "zoo-policy-l"), build_tokenizer(), rows)
    for got, want, row in zip(served, reference, rows, strict=True):
        assert len(got.scores) == len(row.steps) and got.tokens > 0
        assert list(got.scores) == sorted(got.scores, reverse=True)  # a running minimum
        assert all(abs(a - b) < 1e-4 for a, b in zip(got.scores, want, strict=True)), (got.scores, want)
