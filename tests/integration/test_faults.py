"""Fault tests: engines that die mid-sweep, a driver killed and rerun, damaged result files.

Engines are FakePolicy / FakePRM inside real Ray actors (tts.testing.fake_actors): deterministic, so a disturbed
run can be compared row for row with an undisturbed one. Each test names its figure (how many kills, files, cells).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.store import SweepStore, load
from tts.testing.fake_actors import FakeEngineBuilder, counter

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
RESULT_COLUMNS = [
    "cell_id",
    "problem_id",
    "answer",
    "correct",
    "expected_correct",
    "generations",
    "tokens_in",
    "tokens_out",
    "prm_tokens",
    "flops",
    "status",
]


def _grid(results: Path, *extra: str) -> Any:
    return expand(["+sweep=smollm2", f"results_dir={results}", "dataset.per_level=2", *extra])


def _rows(results: Path) -> pd.DataFrame:
    df = load(results / "smollm2")[RESULT_COLUMNS]
    return df.sort_values(["cell_id", "problem_id"], ignore_index=True)


@pytest.fixture(scope="module")
def undisturbed(ray_local: Any, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    results = tmp_path_factory.mktemp("undisturbed")
    summary = run_sweep(_grid(results), builder=FakeEngineBuilder(), live=False)
    assert summary.computed == 29
    return _rows(results)


def _sigkill_engine(state: Path, kills: int, every_s: float, done: threading.Event, log: list[int]) -> None:
    """SIGKILL the engine actor's process `kills` times (as a node or OOM killer would)."""
    deadline = time.monotonic() + 120
    while not (state / "pid").is_file() and time.monotonic() < deadline and not done.is_set():
        time.sleep(0.05)  # the engine is loading
    for _ in range(kills):
        time.sleep(every_s)
        if done.is_set():
            return
        loads = counter(state, "loads")
        pid = int((state / "pid").read_text())
        os.kill(pid, signal.SIGKILL)
        log.append(pid)
        deadline = time.monotonic() + 60
        while counter(state, "loads") == loads and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.05)  # wait for Ray to restart it before the next kill


def test_fake_engine_actor_killed_4_times_mid_sweep_every_cell_finishes_once_with_undisturbed_results(
    undisturbed: pd.DataFrame, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    # two deaths from inside (vLLM-style EngineDeadError -> the actor exits) and two SIGKILLs from outside
    # load_s: a restart takes 1.5 s, so new work meets "the actor is restarting" as with a real engine
    builder = FakeEngineBuilder(delay_s=0.15, die_every=4, max_deaths=2, state_dir=str(state), load_s=1.5)
    done = threading.Event()
    sigkills: list[int] = []
    killer = threading.Thread(target=_sigkill_engine, args=(state, 2, 2.0, done, sigkills), daemon=True)
    killer.start()
    try:
        summary = run_sweep(_grid(tmp_path), builder=builder, live=False)
    finally:
        done.set()
        killer.join(timeout=70)
    deaths = counter(state, "deaths") + len(sigkills)
    print(
        f"engine deaths: {deaths}, engine loads: {counter(state, 'loads')}, requeued jobs: {summary.requeued}"
    )
    assert counter(state, "deaths") == 2 and len(sigkills) == 2, "4 deaths: 2 EngineDeadError, 2 SIGKILL"
    assert counter(state, "loads") == 1 + deaths, "Ray restarted the actor after each death"
    assert summary.engine_deaths >= 2, "the scheduler saw the deaths that happened mid-call"
    assert summary.requeued >= summary.engine_deaths and summary.failed == 0 and summary.computed == 29
    got = _rows(tmp_path)
    assert not got.duplicated(["cell_id", "problem_id"]).any()
    pd.testing.assert_frame_equal(got, undisturbed)


DRIVER = """
import sys
from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.testing.fake_actors import FakeEngineBuilder
grid = expand(["+sweep=smollm2", "results_dir=" + sys.argv[1], "dataset.per_level=2", "cluster=ray",
               "cluster.address=" + sys.argv[2], "cluster.auth_mode=disabled", "cluster.max_inflight_per_engine=1"])
run_sweep(grid, builder=FakeEngineBuilder(delay_s=0.3), live=False)
"""


def test_fake_engines_driver_killed_after_at_least_5_cells_rerun_recomputes_none_of_them(
    undisturbed: pd.DataFrame, ray_address: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "smollm2" / "manifest.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path), ray_address],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            lines = manifest.read_text().count('"kind": "cell"') if manifest.is_file() else 0
            if lines >= 5 or proc.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    store = SweepStore(tmp_path / "smollm2")
    before, _ = store.verified("cell")
    assert 5 <= len(before) < 29, f"the driver was to be killed mid-sweep; {len(before)} cells were finished"
    summary = run_sweep(_grid(tmp_path), builder=FakeEngineBuilder(), live=False)
    print(f"finished before the kill: {len(before)}; recomputed after: {summary.computed}")
    assert summary.skipped == len(before) and summary.computed == 29 - len(before)
    after = store.entries()
    for cid, entry in before.items():
        assert after[("cell", cid)] == entry, f"finished cell {cid} was rewritten"
    pd.testing.assert_frame_equal(_rows(tmp_path), undisturbed)


@pytest.mark.parametrize("n_damaged", [3])
def test_fake_engines_truncated_zero_byte_and_bit_flipped_files_only_those_3_cells_recomputed(
    undisturbed: pd.DataFrame, ray_local: Any, tmp_path: Path, n_damaged: int
) -> None:
    grid = _grid(tmp_path)
    run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    store = SweepStore(tmp_path / "smollm2")
    good, _ = store.verified("cell")
    victims = [c.id for c in grid.cells if c.strategy == "best_of_n"][:2] + [
        c.id for c in grid.cells if c.strategy == "beam_search"
    ][:1]
    for damage, cid in zip(("truncate", "zero", "flip"), victims, strict=True):
        path = store.root / good[cid].file
        data = path.read_bytes()
        if damage == "truncate":
            path.write_bytes(data[: len(data) - 100])
        elif damage == "zero":
            path.write_bytes(b"")
        else:
            flipped = bytearray(data)
            flipped[len(data) // 2] ^= 0x10
            path.write_bytes(bytes(flipped))
    _, bad = store.verified("cell")
    assert sorted(bad) == sorted(victims), bad
    summary = run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    print(
        f"damaged files: {n_damaged}; recomputed cells: {summary.computed}; corrupt detected: {summary.corrupt}"
    )
    assert (summary.computed, summary.skipped, summary.corrupt) == (n_damaged, 29 - n_damaged, n_damaged)
    untouched = {cid: e for cid, e in store.verified("cell")[0].items() if cid not in victims}
    assert all(untouched[cid] == good[cid] for cid in untouched)
    pd.testing.assert_frame_equal(_rows(tmp_path), undisturbed)
