"""The zoo's shared tokenizer: one token per character (byte-level, no merges), ChatML specials, a chat template.

Why character-level: on a few CPU minutes a tiny model learns digit-by-digit arithmetic from one token per
character, and fails with a general BPE or one token per number (FIELD_NOTES, "Training tiny models"). A
byte-level alphabet (256 symbols) means ANY text tokenizes, so the PRM reads the Qwen2.5-Math-PRM system prompt
and the policy can be shown anything. The specials are those vLLM already serves in the test fixtures:
"<|im_end|>" is EOS, "<extra_0>" is the Qwen2.5-Math-PRM step separator read by the `qwen_math_prm` format.

The text a policy is trained on is exactly what `VLLMPolicy.render` renders with the chat template, no
system prompt and prompt_template "{question}"; the PRM's is exactly `VLLMPoolingPRM.render` (imported from
there, so the two cannot drift).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"]
EOS = "<|im_end|>"
PAD = "<|endoftext|>"
STEP_SEP = "<extra_0>"
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(out_dir: Path | None = None) -> Any:
    """The character-level fast tokenizer (saved into `out_dir` when given). Deterministic: fixed vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=PAD,
        additional_special_tokens=["<|im_start|>", STEP_SEP],
    )
    fast.chat_template = CHAT_TEMPLATE
    if out_dir is not None:
        fast.save_pretrained(out_dir)
    return fast


def policy_prompt(tokenizer: Any, question: str, history: Sequence[Any] = ()) -> str:
    """The policy's prompt text, as VLLMPolicy renders it: chat template, no system prompt, the bare question as
    the first user turn, then `history` (turns with `.role` and `.content`, e.g. the revision turns of
    tts.strategies.sequential_revision.revision_history), then the generation prompt."""
    messages = [{"role": "user", "content": question}]
    messages += [{"role": m.role, "content": m.content} for m in history]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def prm_text(tokenizer: Any, question: str, steps: Sequence[str]) -> str:
    """The PRM's input text, rendered exactly as the serving code renders it (tts.engines.vllm_prm)."""
    from tts.engines.vllm_prm import QWEN_PRM_SEP, QWEN_PRM_SYSTEM

    clean = [s.replace(QWEN_PRM_SEP, "") for s in steps]
    messages = [
        {"role": "system", "content": QWEN_PRM_SYSTEM},
        {"role": "user", "content": question},
        {"role": "assistant", "content": QWEN_PRM_SEP.join(clean) + QWEN_PRM_SEP},
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
