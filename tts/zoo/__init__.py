"""The zoo: tiny Qwen2 policies and Qwen2.5-Math-PRM-layout PRMs trained on CPU for the chain-arithmetic world.

Why: a sweep on a CPU machine needs policies of different strength and verifiers that are good but imperfect,
or none of the papers' effects can appear. `tts zoo train --out DIR` trains them (tts.zoo.recipe) and the
shipped copies live in `tts/zoo/weights/<name>/` (fp16 safetensors, tokenizer, MODEL_CARD.md, card.json),
served as `embedded:<name>` (tts.engines.embedded) by the ordinary vLLM engines.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).parent / "weights"
POLICY_NAMES = ("zoo-policy-s", "zoo-policy-m", "zoo-policy-l")  # the size ladder, each trained from scratch
REVISION_POLICY = "zoo-policy-r"  # zoo-policy-m fine-tuned to revise its own attempts (tts.zoo.revision)
PRM_NAMES = ("zoo-prm-s", "zoo-prm-l")  # the weak and the strong PRM
ORM_NAMES = (
    "zoo-orm",
)  # an outcome reward model: one score for the finished solution, read at its last step
ZOO_NAMES = (*POLICY_NAMES, REVISION_POLICY, *PRM_NAMES, *ORM_NAMES)  # every shipped model


def weights_dir(name: str) -> Path:
    """The shipped folder of zoo model `name` (it may not exist in a checkout that has not trained it)."""
    return WEIGHTS / name
