"""Every YAML under conf/ and sweeps/ composes against its schema and validates; validate() names the field (the
table of rejected configs: test_config_rejects.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.fixtures.paths import SHARED
from tts.config import ConfigError, TTSConfig, conf_dir, validate
from tts.grid import compose

GROUPS = ["policy", "prm", "strategy", "dataset", "engine", "cluster", "difficulty"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


ALL_OPTIONS = [(g, o) for g in GROUPS for o in _options(g)]
SWEEPS = sorted(p.stem for p in (conf_dir() / "sweep").glob("*.yaml"))


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert _options(group), f"conf/{group}/ has no YAML"


@pytest.mark.parametrize(("group", "option"), ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_every_config_option_composes_and_validates(group: str, option: str) -> None:
    overrides = [f"{group}={option}"]
    if group == "strategy" and option in ("beam_search", "dvts", "lookahead"):
        overrides.append("n=8")
    if group == "strategy" and option == "budget_forcing":
        overrides += ["policy=qwen3_1_7b_thinking", "prm=none"]  # it needs a thinking policy
    if group == "dataset" and option in ("local", "code_jsonl"):
        overrides.append(f"dataset.path={SHARED / 'data' / 'math500.jsonl'}")  # the YAML leaves it null
    if group == "prm" and option == "none":
        overrides.append("strategy=majority_vote")  # the default best-of-N needs a verifier
    cfg = compose(overrides)
    typed = validate(cfg)
    assert isinstance(typed, TTSConfig)
    node = getattr(typed, group)
    # the option's own values made it through the schema (no silent drop)
    raw = OmegaConf.load(conf_dir() / group / f"{option}.yaml")
    overridden = {o.split("=")[0].split(".")[-1] for o in overrides if o.startswith(f"{group}.")}
    for key, value in raw.items():
        if (
            key == "defaults"
            or key in overridden
            or isinstance(value, (dict, list))
            or OmegaConf.is_config(value)
        ):
            continue
        assert getattr(node, key) == value, f"{group}/{option}.yaml: {key}"


@pytest.mark.parametrize("preset", SWEEPS)
def test_every_sweep_preset_composes(preset: str) -> None:
    cfg = compose([f"+sweep={preset}"])
    assert cfg.sweep.name, f"sweeps/{preset}.yaml must set sweep.name"
    header = (conf_dir() / "sweep" / f"{preset}.yaml").read_text()
    assert f"+sweep={preset}" in header, (
        f"sweeps/{preset}.yaml: the header must show the command that runs it"
    )


def test_unknown_key_in_strategy_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^strategy\.beam_widht: unknown field; allowed: .*beam_width"):
        validate(compose(["strategy=beam_search", "+strategy.beam_widht=4"]))


def test_conf_dir_points_at_repo_conf() -> None:
    assert conf_dir() == Path(__file__).resolve().parents[2] / "conf"
