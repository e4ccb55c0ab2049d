"""Malformed sweep configs are rejected by `tts sweep` before Ray starts, naming the field and the fix; nothing is
written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tts.cli import main

# The one table of rejected configs: overrides, the field the error starts with, and a part of the fix it names
# ("": the field is enough). Every row goes through `tts sweep` (and so through tts.config.validate).
BAD = [
    (["n=0"], "n", "positive"),
    (["n=-4"], "n", ""),
    (["n=abc"], "n", ""),
    (["n=1,0"], "n", ""),
    (["strategy=beam_search", "n=6", "strategy.beam_width=4"], "n", "multiple of strategy.beam_width"),
    (["strategy=dvts", "n=10", "strategy.beam_width=4"], "n", "multiple"),
    (["strategy=beam_search", "n=4", "strategy.beam_width=0"], "strategy.beam_width", ""),
    (["strategy=beam_serch"], "strategy", ""),
    (["strategy.beam_widht=4"], "strategy.beam_widht", ""),
    (["strategy.name=best_of_m"], "strategy.name", "best_of_n"),
    (["prm=nonexistent"], "prm", ""),
    (["prm.aggregation=median"], "prm.aggregation", "last, min, prod, mean"),
    (["prm.kind=magic"], "prm.kind", "rule_arithmetic"),
    (["policy.model=/no/such/model"], "policy.model", "no such model folder"),
    (["policy.prompt_template=Solve it"], "policy.prompt_template", "{question}"),
    (["policy.temperature=-0.5"], "policy.temperature", ""),
    (["policy.top_p=0"], "policy.top_p", ""),
    (["policy.max_tokens=0"], "policy.max_tokens", ""),
    (["dataset.name=math5000"], "dataset.name", "math500"),
    (["dataset.per_level=0"], "dataset.per_level", ""),
    (["dataset.path=/no/such/file.jsonl"], "dataset.path", ""),
    (["engine.gpu_memory_utilization=1.5"], "engine.gpu_memory_utilization", "(0, 1]"),
    (["engine.tensor_parallel_size=0"], "engine.tensor_parallel_size", ""),
    (["engine.num_gpus=1.5"], "engine.num_gpus", ""),
    (["engine.replicas=0"], "engine.replicas", ""),
    (["cluster.mode=cloud"], "cluster.mode", ""),
    (["cluster.max_tries=0"], "cluster.max_tries", ""),
    (["cluster.max_engine_restarts=-1"], "cluster.max_engine_restarts", ""),
    (["difficulty.method=vibes"], "difficulty.method", "oracle_quantile"),
    (["difficulty.thresholds=[0.5,0.1]"], "difficulty.thresholds", ""),
    (["seed=-1"], "seed", ""),
    (["sweep.name=../escape"], "sweep.name", ""),
    (["n=range(1,"], "overrides", ""),
    (["+sweep=nope"], "sweep", ""),
    (["+sweep=smollm2", "n=1,2"], "n", ""),
    (["prm=none", "strategy=best_of_n"], "prm", ""),  # a verifier strategy without a verifier
    (["prm=none", "strategy=beam_search", "n=4"], "prm", ""),
    (["strategy=beam_search", "n=4", "strategy.final_selection=best"], "strategy.final_selection", ""),
    (["cluster.max_tries=1,3"], "cluster.max_tries", ""),  # sweep-level: one value per sweep
    (["results_dir=a,b"], "results_dir", ""),
    (["cluster.mode=local,ray"], "cluster.mode", ""),
]


def test_there_are_at_least_20_malformed_configs() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize(("overrides", "field", "hint"), BAD, ids=[" ".join(o) for o, *_ in BAD])
def test_malformed_config_rejected_before_ray_naming_the_field_and_fix_nothing_written(
    overrides: list[str],
    field: str,
    hint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    ray_inits: list[object] = []
    # Record any attempt to start or connect to Ray (works whatever Ray state earlier tests left behind).
    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: ray_inits.append((args, kwargs)))
    results = tmp_path / "results"
    code = main(["sweep", f"results_dir={results}", *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"error: {field}:"), err
    assert hint in err, err
    assert not results.exists(), "nothing may be written for a rejected sweep"
    assert ray_inits == [], "Ray must not start for a rejected sweep"


MISSPELT = [
    (["strategy=beam_serch"], "beam_search"),
    (["policy.temprature=0.5"], "temperature"),
    (["+strategy.temperatur=0.5"], "temperature"),
    (["prm.aggregation=mn"], "min"),
    (["engine.dtype=float61"], "float16"),
    (["cluster.mode=rey"], "ray"),
    (["dataset.name=arithmatic"], "arithmetic"),
    (["policy.model=embedded:zoo-policy-x"], "zoo-policy-s"),
]


@pytest.mark.parametrize(("overrides", "meant"), MISSPELT, ids=[" ".join(o) for o, _ in MISSPELT])
def test_a_misspelt_key_or_value_gets_the_closest_match(
    overrides: list[str], meant: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["sweep", f"results_dir={tmp_path / 'r'}", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"Did you mean {meant!r}?"), err
    assert len(err.splitlines()) == 1
