"""The sweep driver on a real local Ray with FakePolicy / FakePRM inside real engine actors.

What is real here: Ray, the engine actors and their proxies, light strategy tasks, the scheduler, the store.
What is fake: the engines (tts.testing.fake_actors), so that a whole grid runs in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tts.cli import main
from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.store import SweepStore, load, load_samples
from tts.testing.fake_actors import FakeEngineBuilder, counter

pytestmark = pytest.mark.integration


def test_fake_smoke_grid_29_cells_one_engine_load_then_rerun_computes_0(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = expand(["+sweep=smollm2", f"results_dir={tmp_path}", "dataset.per_level=2"])
    state = tmp_path / "state"
    first = run_sweep(grid, builder=FakeEngineBuilder(state_dir=str(state)), live=False)
    assert (first.computed, first.failed, first.total) == (29, 0, 29)
    assert first.engine_loads == 1 and counter(state, "loads") == 1, "one model load serves all 29 cells"

    df = load(tmp_path / "smollm2")
    problems = 2 * 2  # two levels x per_level 2
    assert len(df) == 29 * problems
    assert not df.duplicated(["cell_id", "problem_id"]).any()
    assert set(df["status"]) == {"ok"} and df["flops"].gt(0).all()
    assert {"config.strategy.name", "config.policy.model", "config.prm.aggregation", "config.n"} <= set(
        df.columns
    )
    pooled = df[df["strategy"] != "beam_search"]
    assert pooled["pool_id"].notna().all() and pooled["expected_correct"].between(0, 1).all()
    assert pooled.groupby("prm")["pool_id"].nunique().tolist() == [1, 1], "one pool per PRM for all N"
    samples = load_samples(tmp_path / "smollm2")
    assert len(samples) == 2 * 8 * problems  # two pools of N_max = 8
    entry = next(iter(SweepStore(tmp_path / "smollm2").entries().values()))
    assert entry.versions["ray"] and "git_sha" in entry.__dict__
    assert (tmp_path / "smollm2" / "sweep.yaml").read_text().count("smollm2") >= 1

    second = run_sweep(grid, builder=FakeEngineBuilder(state_dir=str(state)), live=False)
    assert (second.computed, second.skipped, second.engine_loads) == (0, 29, 0)
    assert counter(state, "loads") == 1

    assert main(["ls", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "smollm2" in out and "29 ok" in out


def test_a_failing_search_job_is_recorded_after_max_tries_and_the_rest_finish(
    ray_local: Any, tmp_path: Path
) -> None:
    grid = expand(
        [
            f"results_dir={tmp_path}",
            "strategy=best_of_n,beam_search",
            "n=4,8",
            "prm=rule_arithmetic",
            "dataset.per_level=1",
            "cluster.max_tries=2",
            "sweep.name=poison",
        ]
    )
    summary = run_sweep(grid, builder=FakeEngineBuilder(poison_stop=True), live=False)
    assert (summary.computed, summary.failed) == (2, 2)
    df = load(tmp_path / "poison")
    failed = df[df["status"] == "failed"]
    assert set(failed["strategy"]) == {"beam_search"}
    assert failed["error"].str.contains("poisoned request").all()
    assert set(df[df["status"] == "ok"]["strategy"]) == {"best_of_n"}
    tries = {
        e.id: e.meta["tries"]
        for e in SweepStore(tmp_path / "poison").entries().values()
        if e.status == "failed"
    }
    assert set(tries.values()) == {2}, tries


def test_an_engine_that_cannot_start_fails_its_cells_with_the_error(ray_local: Any, tmp_path: Path) -> None:
    grid = expand([f"results_dir={tmp_path}", "strategy=best_of_n", "n=1,2", "dataset.per_level=1"])
    summary = run_sweep(grid, builder=FakeEngineBuilder(fail_load=True), live=False)
    assert (summary.computed, summary.failed) == (0, 2)
    df = load(tmp_path / "default")
    assert df["error"].str.contains("failed to start").all()


def test_cells_restricted_to_oracle_bins_cover_only_their_problems(ray_local: Any, tmp_path: Path) -> None:
    grid = expand(
        [
            f"results_dir={tmp_path}",
            "sweep.name=binned",
            "strategy=best_of_n",
            "n=1,4",
            "prm=rule_arithmetic",
            "dataset.levels=[1,5]",
            "dataset.per_level=3",
            "difficulty=oracle_quantile",
            "difficulty.num_bins=2",
            "difficulty.samples=4",
            "difficulty.bins=[1],[2]",
        ]
    )
    assert len(grid.cells) == 4
    summary = run_sweep(grid, builder=FakeEngineBuilder(error_rate=0.5), live=False)
    assert (summary.computed, summary.failed) == (4, 0)
    import pandas as pd

    bins = pd.read_parquet(tmp_path / "binned" / "difficulty.parquet")
    assert len(bins) == 6 and set(bins["bin"]) <= {"1", "2"} and bins["samples_used"].eq(4).all()
    assert bins.groupby("pass_at_1")["bin"].nunique().eq(1).all()  # ties share a bin (tts.difficulty)
    easiest = bins["pass_at_1"].max()
    assert bins.loc[bins["pass_at_1"] == easiest, "bin"].eq("1").all()  # bin 1 is never empty
    df = load(tmp_path / "binned")
    by_bin = dict(zip(bins["problem_id"], bins["bin"], strict=True))
    for cell_bins, rows in df.groupby("config.difficulty.bins"):
        assert {by_bin[p] for p in rows["problem_id"]} == {cell_bins.strip("[]")}, cell_bins
    assert df.groupby("cell_id").size().sum() == 2 * 6  # each problem in exactly one bin, for both budgets


def test_a_gpu_engine_on_a_local_cluster_without_gpus_fails_at_once_naming_the_field(
    ray_local: Any, tmp_path: Path
) -> None:
    grid = expand(
        [f"results_dir={tmp_path}", "strategy=best_of_n", "n=1", "dataset.per_level=1", "engine=gpu"]
    )
    summary = run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    assert (summary.computed, summary.failed, summary.engine_loads) == (0, 1, 0)
    error = load(tmp_path / "default")["error"].iloc[0]
    assert error.startswith("engine.num_gpus:") and "engine=cpu" in error
