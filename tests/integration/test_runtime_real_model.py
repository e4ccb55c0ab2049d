"""The sweep driver with a REAL vLLM engine inside a Ray actor (the tiny random Qwen2 from tests/fixtures/models.py).

The engine actor is SIGKILLed once after the first job's results are written: Ray restarts it (the model is
loaded again: ~30 s here on an idle 2-core CPU, minutes on a busy one; TTS_TEST_REAL_KILL=0 leaves it out), calls
made while it restarts fail with ActorUnavailableError and are requeued. The tiny model's text is noise: assert on
mechanics (every cell done once, tokens generated, parameter counts and FLOPs from the real model config, one
engine actor for all cells, a rerun computes nothing), never on accuracy. Repeated kills: test_faults.py (fakes).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tts.grid import expand
from tts.runtime.driver import Driver, run_sweep
from tts.store import load, load_samples

pytestmark = pytest.mark.integration
REAL_KILL = os.environ.get("TTS_TEST_REAL_KILL", "1") == "1"  # 0: skip the kill (a restart reloads the model)


class KillOnceDriver(Driver):
    """Kills the engine actor's process once, right after the first job's results are written."""

    pid: int | None = None
    killed: int | None = None

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "engine" and data.get("info"):
            self.pid = data["info"]["pid"]
        super().on_event(kind, data)

    def on_result(self, work: Any, result: Any) -> None:
        super().on_result(work, result)
        if REAL_KILL and self.killed is None and self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            self.killed = self.pid


def test_real_tiny_vllm_engine_actor_killed_1_time_6_cells_finish_and_a_rerun_computes_0(
    ray_local: Any, tiny_policy_dir: Path, tmp_path: Path
) -> None:
    grid = expand(
        [
            f"results_dir={tmp_path}",
            f"policy.model={tiny_policy_dir}",
            "policy.few_shot=[]",
            "policy.max_tokens=24",
            "policy.step_max_tokens=12",
            "policy.temperature=1.0",
            "strategy=best_of_n,majority_vote,beam_search",
            "n=4,8",
            "prm=rule_arithmetic",
            "dataset.levels=[1,5]",
            "dataset.per_level=2",
            "engine.max_model_len=1024",
            "engine.gpu_memory_utilization=0.15",
            "sweep.name=tiny",
        ]
    )
    assert len(grid.cells) == 6
    driver = KillOnceDriver(grid, live=False)
    summary = driver.run()
    print(f"engine killed: {driver.killed}; requeued jobs: {summary.requeued}; tokens: {summary.tokens}")
    if REAL_KILL:
        assert driver.killed is not None and summary.engine_deaths == 1
    assert (summary.computed, summary.failed) == (6, 0)
    assert summary.engine_loads == 1, "one engine actor for all 6 cells (a restart reloads it in place)"
    df = load(tmp_path / "tiny")
    assert len(df) == 6 * 4 and not df.duplicated(["cell_id", "problem_id"]).any()
    assert df["tokens_out"].gt(0).all() and df["policy_params"].gt(0).all() and df["flops"].gt(0).all()
    assert df["policy_model"].eq(str(tiny_policy_dir)).all()
    samples = load_samples(tmp_path / "tiny")
    assert len(samples) == 8 * 4 and set(samples["finish_reason"]) <= {"eos", "length", "stop_string"}
    again = run_sweep(grid, live=False)
    assert (again.computed, again.skipped, again.engine_loads) == (0, 6, 0)
