"""Golden shapes of the shipped zoo (tts/zoo/weights), asserting only effects that hold by construction of the
world, never a tuned number:

- pass@1 rises with size (zoo-policy-s < -m < -l) on the pooled levels 2-5, neighbours' 95% CIs separated,
  and falls with level (level 1 vs level 6, CIs separated, every policy);
- pass@k (the unbiased estimator over 8 samples) rises with k, strictly from k = 1 to 8 on the pooled problems;
- zoo-policy-r (zoo-policy-m fine-tuned to revise) answers a bare question as well as zoo-policy-m (pooled
  pass@1 CIs overlap): the single-turn rows of its training kept its first attempts; its revisions are measured
  in its card and served in tests/integration/test_zoo_revision_vllm.py;
- each shipped PRM's step AUROC on held-out problems' steps stays above its model card's figure minus
  AUROC_MARGIN (a regression check of the shipped weights; sampling noise on ~2,000 steps is about +-0.02);
- the strong verifier, zoo-judge-l (zoo-policy-l's likelihood of each step, tts.engines.likelihood_prm), has a
  held-out step AUROC >= 0.95 on all three policies' samples, and the weak zoo-prm-s is in 0.70-0.85.

Measured with transformers on CPU (the same weights vLLM serves; tests/integration/test_zoo_train_vllm.py
checks vLLM reads them the same), on test-split problems of a seed no card used (seed 7).
"""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tts.zoo import POLICY_NAMES, PRM_NAMES, REVISION_POLICY, ZOO_NAMES, weights_dir  # noqa: E402

AUROC_MARGIN = 0.05
PER_LEVEL = 20
SAMPLES = 8
LEVELS = (1, 2, 3, 4, 5, 6)  # all of them, as the model cards measured AUROC

if not all((weights_dir(n) / "card.json").is_file() for n in ZOO_NAMES):
    pytest.skip("the zoo weights are not shipped in this checkout", allow_module_level=True)


def _ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and a normal-approximation 95% CI over problems (values: per-problem success rates)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / max(1, n - 1)
    half = 1.96 * math.sqrt(var / n)
    return mean, mean - half, mean + half


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased pass@k from n samples with c correct."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.fixture(scope="module")
def measured():
    from transformers import Qwen2ForCausalLM

    from tts.data.chain import generate
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import is_correct, label_samples, sample

    torch.set_num_threads(2)
    tok = build_tokenizer()
    problems = generate(list(LEVELS), PER_LEVEL, seed=7, split="test")
    out = {}
    for name in (*POLICY_NAMES, REVISION_POLICY):
        model = Qwen2ForCausalLM.from_pretrained(weights_dir(name), dtype=torch.float32).eval()
        texts = sample(model, tok, problems, SAMPLES, 0.8, seed=0)
        flags = [[is_correct(p, t) for t in group] for p, group in zip(problems, texts, strict=True)]
        out[name] = {"flags": flags, "rows": label_samples(problems, texts)}
    return problems, out


def test_pass_at_1_rises_with_size(measured):
    """The ladder (POLICY_NAMES, smallest first): pooled levels 2-5, each policy's CI above its smaller
    neighbour's."""
    problems, out = measured
    stats = {
        n: _ci([sum(f) / len(f) for p, f in zip(problems, out[n]["flags"], strict=True) if 2 <= p.level <= 5])
        for n in POLICY_NAMES
    }
    params = [json.loads((weights_dir(n) / "card.json").read_text())["params"] for n in POLICY_NAMES]
    assert params == sorted(params)
    for smaller, larger in zip(POLICY_NAMES, POLICY_NAMES[1:], strict=False):
        assert stats[smaller][2] < stats[larger][1], f"{smaller} vs {larger}: CIs overlap: {stats}"


def test_pass_at_1_falls_with_level(measured):
    problems, out = measured
    for name in POLICY_NAMES:
        by_level = {
            level: _ci(
                [
                    sum(f) / len(f)
                    for p, f in zip(problems, out[name]["flags"], strict=True)
                    if p.level == level
                ]
            )
            for level in LEVELS
        }
        assert by_level[1][1] > by_level[6][2], (name, by_level)  # l solves 1-5 almost always


def test_pass_at_k_rises_with_k(measured):
    _, out = measured
    for name in POLICY_NAMES:
        curve = [
            sum(pass_at_k(SAMPLES, sum(f), k) for f in out[name]["flags"]) / len(out[name]["flags"])
            for k in (1, 2, 4, 8)
        ]
        assert all(a <= b + 1e-12 for a, b in zip(curve, curve[1:], strict=False)), (name, curve)
        assert curve[-1] > curve[0], (name, curve)


def test_the_revision_policy_answers_a_bare_question_as_well_as_the_policy_it_started_from(measured):
    _, out = measured
    stats = {n: _ci([sum(f) / len(f) for f in out[n]["flags"]]) for n in ("zoo-policy-m", REVISION_POLICY)}
    (_, m_low, m_high), (_, r_low, r_high) = stats["zoo-policy-m"], stats[REVISION_POLICY]
    assert r_high >= m_low and m_high >= r_low, stats


@pytest.mark.parametrize("prm_name", PRM_NAMES)
def test_prm_auroc_on_held_out_steps_holds_its_model_card(measured, prm_name):
    from safetensors.torch import load_file

    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import ModelSpec, auroc, prm_module, prm_scores

    card = json.loads((weights_dir(prm_name) / "card.json").read_text())
    prm = prm_module(ModelSpec(**card["spec"]), build_tokenizer())
    prm.load_state_dict(
        {k: v.float() for k, v in load_file(weights_dir(prm_name) / "model.safetensors").items()}
    )
    rows = [r for name in POLICY_NAMES for r in measured[1][name]["rows"]]
    scores = prm_scores(prm.eval(), build_tokenizer(), rows)
    labels = [y for r in rows for y in r.labels]
    assert 100 < sum(labels) < len(labels) - 100  # both kinds of steps are plentiful
    value = auroc([s for row in scores for s in row], labels)
    print(f"{prm_name}: AUROC {value:.4f} on {len(labels)} held-out steps (card: {card['heldout_auroc']})")
    assert value >= card["heldout_auroc"] - AUROC_MARGIN, (prm_name, value, card["heldout_auroc"])


def test_the_strong_and_the_weak_verifier_are_what_they_are_named(measured):
    from tts.zoo.recipe import JUDGES, _load_policy
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import auroc, likelihood_scores

    rows = [r for name in POLICY_NAMES for r in measured[1][name]["rows"]]
    labels = [y for r in rows for y in r.labels]
    ((judge, policy),) = JUDGES.items()
    scores = likelihood_scores(_load_policy(weights_dir(policy)), build_tokenizer(), rows)
    strong = auroc([s for row in scores for s in row], labels)
    weak = json.loads((weights_dir("zoo-prm-s") / "card.json").read_text())["heldout_auroc"]
    print(f"{judge}: AUROC {strong:.4f} on {len(labels)} held-out steps; zoo-prm-s card: {weak}")
    assert strong >= 0.95 and 0.70 <= weak <= 0.85, (strong, weak)
