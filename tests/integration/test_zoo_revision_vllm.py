"""The shipped zoo-policy-r on the real vLLM CPU engine, as a sweep serves it (conf/policy/zoo_policy_r.yaml,
conf/engine/cpu.yaml's max_model_len): the revision conversation vLLM is given is the one it was trained on,
a chain of four attempts fits the context, vLLM's greedy revisions are the torch model's, and the
sequential-revision strategy runs its chains end to end. One engine for the module.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")
pytest.importorskip("vllm")

from tts.data.chain import generate  # noqa: E402
from tts.zoo import REVISION_POLICY, weights_dir  # noqa: E402

MAX_MODEL_LEN = 2048  # conf/engine/cpu.yaml
MAX_TOKENS = 128  # conf/policy/zoo_policy_r.yaml

if not (weights_dir(REVISION_POLICY) / "card.json").is_file():
    pytest.skip("zoo-policy-r is not shipped in this checkout", allow_module_level=True)


@pytest.fixture(scope="module")
def engine():
    from tts.engines.embedded import resolve_model
    from tts.engines.vllm_common import EngineSettings
    from tts.engines.vllm_policy import VLLMPolicy

    settings = EngineSettings(
        dtype="float32",
        enforce_eager=True,
        gpu_memory_utilization=0.2,
        max_model_len=MAX_MODEL_LEN,
        max_num_seqs=64,
        enable_prefix_caching=True,
        seed=0,
    )
    policy = VLLMPolicy(resolve_model(f"embedded:{REVISION_POLICY}"), engine=settings)
    yield policy
    policy.shutdown()


def _chains(problems, n_attempts):
    """Earlier attempts of the kind a chain holds: the reference with its last result changed, 1..n."""
    from tts.data.chain import solution

    out = []
    for k, p in enumerate(problems):
        wrong = solution(p).rsplit("{", 1)[0] + "{" + str(k + 1000) + "}"
        out.append([wrong, solution(p), wrong][: 1 + k % n_attempts])
    return out


def test_the_served_prompt_is_the_training_prompt_and_four_attempts_fit(engine):
    from tts.engines.protocols import Conversation
    from tts.strategies.sequential_revision import HISTORY, INSTRUCTION, revision_history
    from tts.zoo.revision import revision_prompt

    worst = ["9" * MAX_TOKENS] * HISTORY  # four attempts as long as max_tokens allows
    conversation = Conversation("9*99+99-99+99-99", revision_history(worst, HISTORY, INSTRUCTION))
    text = engine.render(conversation)
    assert text == revision_prompt(engine.tokenizer, conversation.question, worst)
    assert len(engine.encode_prompt(text)) + MAX_TOKENS <= MAX_MODEL_LEN
    card = json.loads((weights_dir(REVISION_POLICY) / "card.json").read_text())
    assert card["longest_train_tokens"] <= MAX_MODEL_LEN


def test_vllm_greedy_revisions_are_the_torch_models(engine):
    from transformers import Qwen2ForCausalLM

    from tts.engines.protocols import Conversation, GenerationRequest
    from tts.strategies.sequential_revision import HISTORY, INSTRUCTION, revision_history
    from tts.zoo.revision import revision_prompt
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import complete

    problems = generate([2, 3, 4], 2, seed=7)
    chains = _chains(problems, 3)
    requests = [
        GenerationRequest(
            Conversation(p.question, revision_history(c, HISTORY, INSTRUCTION)),
            n=1,
            max_tokens=MAX_TOKENS,
            temperature=0.0,
        )
        for p, c in zip(problems, chains, strict=True)
    ]
    served = [g.completions[0].text for g in engine.generate(requests)]
    model = Qwen2ForCausalLM.from_pretrained(weights_dir(REVISION_POLICY), dtype=torch.float32).eval()
    tok = build_tokenizer()
    local = complete(
        model, tok, [revision_prompt(tok, p.question, c) for p, c in zip(problems, chains, strict=True)], 0.0
    )
    same = sum(a == b for a, b in zip(served, local, strict=True))
    assert same >= len(problems) - 1, list(
        zip(served, local, strict=True)
    )  # fp32 reduction order may flip a tie


def test_sequential_revision_chains_run_end_to_end(engine):
    from tts.strategies.base import SamplingSettings
    from tts.strategies.sequential_revision import run

    problems = generate([1, 3], 3, seed=7)
    sampling = SamplingSettings(temperature=0.8, max_tokens=MAX_TOKENS)
    results = run(
        problems, engine, None, n=4, sampling=sampling, seed=0, parallel=1, final_selection="majority"
    )
    assert [r.generations for r in results] == [4] * len(problems)
    assert all(r.extra["chains"] == [[0, j] for j in range(4)] for r in results)
    assert all(c.tokens_out > 0 for r in results for c in r.candidates)
