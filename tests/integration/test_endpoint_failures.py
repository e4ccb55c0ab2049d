"""An endpoint that keeps failing one kind of request: its cell is recorded as failed with the error, and the
sweep goes on (the other cells finish). No model anywhere: the policy is an endpoint (the fault proxy's canned
server, tts.testing.fault_proxy), the verifier the rule-based checker; the engine pool starts one client actor
with no GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
pytest.importorskip("openai")

from tts.grid import expand  # noqa: E402
from tts.runtime.driver import run_sweep  # noqa: E402
from tts.store import load  # noqa: E402
from tts.testing.fault_proxy import FaultProxy  # noqa: E402


def test_a_cell_whose_requests_always_fail_is_recorded_and_the_sweep_goes_on(
    ray_local: Any, tmp_path: Path
) -> None:
    beam = lambda body: bool(body.get("stop"))  # noqa: E731 - step search asks for the step delimiter
    with FaultProxy(None, ["429"], always_fail=beam) as proxy:
        grid = expand(
            [
                f"results_dir={tmp_path}",
                "sweep.name=faulty",
                "policy=zoo_policy_m_endpoint",
                f"policy.base_url={proxy.base_url}",
                "policy.max_retries=1",
                "prm=rule_arithmetic",
                "dataset=chain",
                "dataset.levels=[1]",
                "dataset.per_level=2",
                "strategy=best_of_n,majority_vote,beam_search",
                "n=4",
                "cluster.max_tries=2",
            ]
        )
        summary = run_sweep(grid, live=False)
    assert (summary.computed, summary.failed, summary.engine_loads) == (2, 1, 1)
    df = load(tmp_path / "faulty")
    failed = df[df["status"] == "failed"]
    assert set(failed["strategy"]) == {"beam_search"} and failed["error"].str.contains("500").all()
    ok = df[df["status"] == "ok"]
    assert (
        set(ok["strategy"]) == {"best_of_n", "majority_vote"}
        and ok["seeding"].eq("per_request_endpoint").all()
    )
    assert int(ok["retries"].max()) == 1  # the one 429, on the pool's rows
