"""Multi-node faults on a loopback Ray cluster (tests/fixtures/ray_cluster.py: LoopbackCluster, each scenario in
a process of its own): nodes that die under the engines, a node that joins mid-sweep, the head node lost.

The engine tests run `+sweep=zoo_search` with one problem a level (23 cells in 9 jobs: a shared sampling pool,
beam search, DVTS, particle filtering, REBASE) on the real zoo engines (zoo-policy-m and zoo-prm-l, vLLM CPU,
every request seeded), with worker nodes of 2 CPUs and engines of 1 CPU, so that the policy and the PRM land on
different nodes (Ray spreads a node's second 1-CPU actor once it is half full):
  (c) a node added mid-sweep gets work: the sweep starts on one worker with room for one engine; once that
      engine is loaded, a second worker joins, takes the engine that waited for room, and serves every job (as
      a Ray autoscaler adds a node for a pending actor). Nothing dies: its rows are the reference below;
  (a) the worker node hosting the policy engine hard-killed mid-sweep: the policy restarts on the other worker;
  (b) both workers killed one after the other, a fresh node added in between: the engines end up on it.
Each: every cell finishes once, 0 failed, the rows equal the reference's (seeded requests on CPU give the same
samples on a restarted engine; the PRM tokens spent depend on the PRM engine's prefix cache, which a restart
empties: they are compared as spent or not), and a rerun computes 0 cells. The head-loss test uses fake engines
(it is about the driver): the head node removed, or its GCS process killed, mid-sweep; the driver exits by
itself with EXIT_CLUSTER_LOST (75) and a message that says how to resume, well before Ray's own 60 s; a rerun on
a new cluster recomputes none of the finished cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tts.store import SweepStore, load

pytestmark = pytest.mark.integration
TOTAL = 23
ROW_COLUMNS = [
    "cell_id",
    "problem_id",
    "answer",
    "correct",
    "expected_correct",
    "generations",
    "tokens_in",
    "tokens_out",
    "prm_tokens",
    "status",
]
# What a job computes is the same on a restarted engine; what it spends may not be: the PRM's tokens are those it
# computed after its prefix cache, which a restarted PRM engine has lost (and requeued jobs run in another order).
CACHE_DEPENDENT = ["prm_tokens"]

PRELUDE = r"""
import json, threading, time
from tests.fixtures.ray_cluster import LoopbackCluster
from tts.grid import expand
from tts.runtime.driver import Driver
from tts.runtime.engine_pool import EnginePool
from tts.store import SweepStore

RESULTS = {results!r}
events = {{}}

def grid(address, *extra):
    # 5% of RAM for each engine's KV cache (conf/engine/cpu.yaml's 20% is ~5 GB an engine on a 24 GB machine)
    return expand(["+sweep=zoo_search", "dataset.per_level=1", "results_dir=" + RESULTS, "cluster=ray",
                   "cluster.address=" + address, "cluster.auth_mode=disabled",
                   "engine.gpu_memory_utilization=0.05", *extra])

def wait(what, cond, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    events.setdefault("timeouts", []).append(what)
    raise TimeoutError(what)

def finished():
    return len(SweepStore(RESULTS + "/zoo_search").verified("cell")[0])

def replicas(driver, policy):
    pool = driver.engine_pool
    if pool is None:
        return []
    return [r for e in pool.engines.values() if (e.spec.policy is not None) == policy for r in e.replicas]

def node_of(driver, policy):
    # the node a ready (not restarting) replica reports, or None
    rs = [r for r in replicas(driver, policy) if r.ready]
    return rs[0].info["node_id"] if rs else None

def run(driver, disturb):
    # the sweep in a thread, the disturbance here: Ray adds a node only from the main thread (signal handlers)
    done = {{}}
    def drive():
        try:
            done["summary"] = driver.run()
        except Exception as exc:
            done["error"] = repr(exc)
    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    try:
        disturb()
    except Exception as exc:
        events["disturb_error"] = repr(exc)
    thread.join(timeout=600)
    if "summary" not in done:
        print(json.dumps({{**events, "driver": done.get("error", "still running after 600 s")}}), flush=True)
        import os
        os._exit(1)
    summary = done["summary"]
    rerun = Driver(driver.grid, live=False).run()
    return {{"computed": summary.computed, "failed": summary.failed, "skipped": summary.skipped,
            "deaths": summary.engine_deaths, "requeued": summary.requeued, "loads": summary.engine_loads,
            "rerun_computed": rerun.computed, "rerun_skipped": rerun.skipped, **events}}
"""

GROWN = r"""
c = LoopbackCluster([{"num_cpus": 1}])
driver = Driver(grid(c.address), live=False)
served = []
acquire = EnginePool.acquire
def counted(self, key):
    replica = acquire(self, key)
    served.append(replica.info["node_id"])
    return replica
EnginePool.acquire = counted

def disturb():
    wait("one engine loaded on the first worker", lambda: node_of(driver, True) or node_of(driver, False))
    events["waiting"] = "prm" if node_of(driver, True) else "policy"
    events["cells_when_added"] = finished()
    events["first_node"] = c.workers[0].node_id
    events["new_node"] = c.add_worker(num_cpus=1).node_id

out = run(driver, disturb)
out["policy_node"], out["prm_node"] = node_of(driver, True), node_of(driver, False)
out["served_by_node"] = {n: served.count(n) for n in set(served)}
c.shutdown()
print(json.dumps(out))
"""

POLICY_NODE_KILLED = r"""
c = LoopbackCluster([{"num_cpus": 2}, {"num_cpus": 2}])
driver = Driver(grid(c.address), live=False)

def disturb():
    wait("both engines loaded and a cell finished",
         lambda: node_of(driver, True) and node_of(driver, False) and finished() >= 1)
    events["policy_node"], events["prm_node"] = node_of(driver, True), node_of(driver, False)
    events["cells_at_kill"] = finished()
    c.kill(c.node(events["policy_node"]))
    moved = lambda: node_of(driver, True) not in (None, events["policy_node"]) and node_of(driver, True)
    events["policy_node_after"] = wait("the policy back on another node", moved)

out = run(driver, disturb)
c.shutdown()
print(json.dumps(out))
"""

BOTH_WORKERS_KILLED = r"""
c = LoopbackCluster([{"num_cpus": 2}, {"num_cpus": 2}])
driver = Driver(grid(c.address), live=False)

def disturb():
    wait("both engines loaded and a cell finished",
         lambda: node_of(driver, True) and node_of(driver, False) and finished() >= 1)
    first, second = node_of(driver, True), node_of(driver, False)
    events["policy_node"], events["prm_node"] = first, second
    events["cells_at_first_kill"] = finished()
    c.kill(c.node(first))
    wait("the policy back on the other worker", lambda: node_of(driver, True) == second)
    fresh = c.add_worker(num_cpus=2).node_id
    events["fresh_node"] = fresh
    events["cells_at_second_kill"] = finished()
    c.kill(c.node(second))
    both = lambda: sorted(LoopbackCluster.actor_nodes().values()) == [fresh, fresh]
    wait("both engines alive on the fresh node", both)
    events["engines_on_fresh_node"] = True

out = run(driver, disturb)
c.shutdown()
print(json.dumps(out))
"""


def _rows(results: Path) -> pd.DataFrame:
    df = load(results / "zoo_search")[ROW_COLUMNS]
    return df.sort_values(["cell_id", "problem_id"], ignore_index=True)


def _same_rows(got: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Equal to the undisturbed run's rows; PRM tokens spent where the reference spent them (the amount depends
    on the PRM engine's cache)."""
    results = [c for c in ROW_COLUMNS if c not in CACHE_DEPENDENT]
    pd.testing.assert_frame_equal(got[results], reference[results])
    assert ((got["prm_tokens"] > 0) == (reference["prm_tokens"] > 0)).all()


def _check_complete(out: dict[str, Any], results: Path) -> None:
    assert "disturb_error" not in out and "timeouts" not in out, out
    assert (out["computed"], out["skipped"], out["failed"]) == (TOTAL, 0, 0), out
    assert (out["rerun_computed"], out["rerun_skipped"]) == (0, TOTAL), "a rerun computes 0 cells"
    cells, bad = SweepStore(results / "zoo_search").verified("cell")
    assert len(cells) == TOTAL and not bad and all(e.status == "ok" for e in cells.values())
    rows = _rows(results)
    assert not rows.duplicated(["cell_id", "problem_id"]).any(), "every cell finished once"


@pytest.fixture(scope="module")
def grown(loopback: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], pd.DataFrame]:
    results = tmp_path_factory.mktemp("grown")
    out = loopback(PRELUDE.format(results=str(results)) + GROWN, timeout=900)
    _check_complete(out, results)
    return out, _rows(results)


def test_a_node_added_mid_sweep_takes_the_engine_that_waited_for_room_and_serves_jobs(
    grown: tuple[dict[str, Any], Any],
) -> None:
    out, _ = grown
    print(
        f"the {out['waiting']} engine waited for room; node added with {out['cells_when_added']} cells finished; "
        f"engine calls per node: {out['served_by_node']}"
    )
    waited = out["prm_node"] if out["waiting"] == "prm" else out["policy_node"]
    stayed = out["policy_node"] if out["waiting"] == "prm" else out["prm_node"]
    assert waited == out["new_node"] and stayed == out["first_node"], (
        "the waiting engine went to the new node"
    )
    assert out["served_by_node"].get(out["new_node"], 0) >= 9, "the new node's engine served every job"
    assert out["deaths"] == 0 and out["loads"] == 2


def test_worker_hosting_the_policy_hard_killed_mid_sweep_every_cell_finishes_once_with_the_reference_rows(
    loopback: Any, grown: tuple[dict[str, Any], pd.DataFrame], tmp_path: Path
) -> None:
    out = loopback(PRELUDE.format(results=str(tmp_path)) + POLICY_NODE_KILLED, timeout=900)
    print(
        f"policy on {out['policy_node'][:8]}, PRM on {out['prm_node'][:8]}; killed with {out['cells_at_kill']} "
        f"cells finished; policy back on {out['policy_node_after'][:8]}; deaths {out['deaths']}, "
        f"requeued {out['requeued']}"
    )
    _check_complete(out, tmp_path)
    assert out["policy_node"] != out["prm_node"], "policy and PRM engines on different nodes"
    assert out["cells_at_kill"] < TOTAL, "killed mid-sweep"
    assert out["policy_node_after"] == out["prm_node"], "the policy restarted on the surviving worker"
    _same_rows(_rows(tmp_path), grown[1])


def test_both_workers_killed_one_after_the_other_with_a_fresh_node_between_every_cell_finishes_once(
    loopback: Any, grown: tuple[dict[str, Any], pd.DataFrame], tmp_path: Path
) -> None:
    out = loopback(PRELUDE.format(results=str(tmp_path)) + BOTH_WORKERS_KILLED, timeout=1200)
    print(
        f"killed the policy's worker with {out['cells_at_first_kill']} cells finished, then the other with "
        f"{out['cells_at_second_kill']}; deaths {out['deaths']}, requeued {out['requeued']}, loads {out['loads']}"
    )
    _check_complete(out, tmp_path)
    assert out["policy_node"] != out["prm_node"]
    assert out["cells_at_second_kill"] < TOTAL and out["engines_on_fresh_node"]
    _same_rows(_rows(tmp_path), grown[1])


HEAD_LOST = r"""
import json, subprocess, sys, time
from tests.fixtures.ray_cluster import LoopbackCluster
from tts.store import SweepStore

RESULTS, MODE = {results!r}, {mode!r}
DRIVER = '''
import json, sys
from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.runtime.stops import ClusterLostError
from tts.testing.fake_actors import FakeEngineBuilder
grid = expand(["+sweep=smollm2", "results_dir=" + sys.argv[1], "dataset.per_level=2", "cluster=ray",
               "cluster.address=" + sys.argv[2], "cluster.auth_mode=disabled", "cluster.gcs_timeout_s=5",
               "cluster.max_inflight_per_engine=1"])
try:
    s = run_sweep(grid, builder=FakeEngineBuilder(delay_s=float(sys.argv[3])), live=False)
except ClusterLostError as exc:
    print(f"error: {{exc}}", file=sys.stderr)
    sys.exit(75)
print(json.dumps({{"computed": s.computed, "skipped": s.skipped, "failed": s.failed}}))
'''

def finished():
    return SweepStore(RESULTS + "/smollm2").verified("cell")[0]

c = LoopbackCluster([{{"num_cpus": 4}}], connect=False)
driver = subprocess.Popen([sys.executable, "-c", DRIVER, RESULTS, c.address, "0.3"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
deadline = time.monotonic() + 300
while len(finished()) < 5 and driver.poll() is None and time.monotonic() < deadline:
    time.sleep(0.1)
at_kill = len(finished())
lost = time.monotonic()
if MODE == "head node":
    c.kill_head()
else:
    c.head.kill_gcs_server()
_, err = driver.communicate(timeout=120)
exit_s = time.monotonic() - lost
before = finished()
c.shutdown()
fresh = LoopbackCluster([{{"num_cpus": 4}}], connect=False)
rerun = subprocess.run([sys.executable, "-c", DRIVER, RESULTS, fresh.address, "0"], capture_output=True, text=True)
after = SweepStore(RESULTS + "/smollm2").entries()
fresh.shutdown()
print(json.dumps({{"rc": driver.returncode, "stderr": err[-3000:], "exit_s": exit_s, "at_kill": at_kill,
                  "before": len(before), "rerun": json.loads(rerun.stdout.strip().splitlines()[-1]),
                  "untouched": all(after[("cell", k)] == e for k, e in before.items())}}))
"""


@pytest.mark.parametrize("mode", ["head node", "GCS process"])
def test_head_lost_mid_sweep_the_driver_exits_saying_how_to_resume_and_a_rerun_recomputes_nothing_finished(
    loopback: Any, tmp_path: Path, mode: str
) -> None:
    out = loopback(HEAD_LOST.format(results=str(tmp_path), mode=mode), timeout=600)
    print(
        f"{mode} lost with {out['at_kill']} cells finished; driver exited {out['rc']} after {out['exit_s']:.0f} s "
        f"with {out['before']} finished; rerun on a new cluster: {out['rerun']}"
    )
    assert out["rc"] == 75, out["stderr"]
    assert "the Ray cluster's head is gone" in out["stderr"] and "rerun the same command" in out["stderr"]
    assert out["exit_s"] < 45, "well before Ray ends the driver itself (60 s)"
    assert 5 <= out["at_kill"] <= out["before"] < 29
    assert (out["rerun"]["skipped"], out["rerun"]["computed"]) == (out["before"], 29 - out["before"])
    assert out["rerun"]["failed"] == 0 and out["untouched"], "finished cells were not recomputed or rewritten"
