"""The zoo: tiny Qwen2 policies and Qwen2.5-Math-PRM-layout PRMs trained on CPU for the chain-arithmetic world.

Why: a sweep on a CPU machine needs policies of different strength and verifiers that are good but imperfect,
or none of the papers' effects can appear. `tts zoo train --out DIR` trains them (tts.zoo.recipe) and the
shipped copies live in `tts/zoo/weights/<name>/` (fp16 safetensors, tokenizer, MODEL_CARD.md, card.json),
served as `embedded:<name>` (tts.engines.embedded) by the ordinary vLLM engines.
"""

from __future__ import annotations

from pathlib import Path

from tts.engines.embedded import ZOO_MODELS as ZOO_NAMES
from tts.engines.embedded import ZOO_ORM_NAMES as ORM_NAMES
from tts.engines.embedded import ZOO_POLICY_NAMES as POLICY_NAMES
from tts.engines.embedded import ZOO_PRM_NAMES as PRM_NAMES
from tts.engines.embedded import ZOO_REVISION_POLICY as REVISION_POLICY
from tts.engines.embedded import ZOO_WEIGHTS as WEIGHTS

__all__ = ["ORM_NAMES", "POLICY_NAMES", "PRM_NAMES", "REVISION_POLICY", "WEIGHTS", "ZOO_NAMES", "weights_dir"]


def weights_dir(name: str) -> Path:
    """The shipped folder of zoo model `name` (it may not exist in a checkout that has not trained it)."""
    return WEIGHTS / name
