"""Where engine actors land: fake GPUs (`ray.init(num_gpus=2)`) and a simulated multi-node cluster
(`ray.cluster_utils.Cluster`). Both need their own Ray, so they run in one subprocess (run_isolated) that prints
what each actor reported (node, GPU ids, CUDA_VISIBLE_DEVICES, placement group); the tests assert on it.
Engines are fakes: placement is Ray's job, and these tests check the resources our engine pool asks for.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.ray_cluster import run_isolated

pytestmark = pytest.mark.integration

PROBE = r"""
import json, os, tempfile, time
import ray
from ray.cluster_utils import Cluster
from ray.util.placement_group import placement_group_table
from tts.config import EngineConfig, PolicyConfig, PRMConfig
from tts.runtime.actors import EngineSpec
from tts.runtime.engine_pool import EnginePool
from tts.testing.fake_actors import FakeEngineBuilder

def spec(key, num_gpus, tp=1, policy=True, replicas=1, load_s=0.0):
    eng = EngineConfig(num_gpus=num_gpus, tensor_parallel_size=tp, num_cpus=1, replicas=replicas)
    pol = PolicyConfig(name=key, model="embedded:smollm2-135m") if policy else None
    prms = () if policy else (("judge:x", PRMConfig(name="j", kind="judge", model="embedded:smollm2-135m")),)
    return EngineSpec(key, key, pol, prms, eng, FakeEngineBuilder(load_s=load_s))

def start(pool, keys, out=None):
    for k in keys:
        pool.request(k)
    pool.pump()
    if out is not None:
        out["handles_after_first_pump"] = sum(r.handle is not None for k in keys for r in pool.engines[k].replicas)
    deadline = time.monotonic() + 180
    pending = lambda: [r for k in keys for r in pool.engines[k].replicas if r.info is None and r.error is None]
    while pending() and time.monotonic() < deadline:
        pool.pump()
        refs = pool.watch_refs()
        if refs:
            done, _ = ray.wait(list(refs), num_returns=1, timeout=1)
            for r in done:
                pool.on_ref(refs[r], r)
    return {k: [dict(r.info or {}, error=r.error) for r in pool.engines[k].replicas] for k in keys}

res = {}
# ---- one node with 2 fake GPUs
ray.init(num_cpus=8, num_gpus=2, include_dashboard=False, log_to_driver=False)
pool = EnginePool({"a": spec("a", 1), "b": spec("b", 1)}, max_restarts=0)
res["whole"] = start(pool, ["a", "b"])
pool.shutdown()
pool = EnginePool({"policy": spec("policy", 0.5, load_s=1.0), "prm": spec("prm", 0.5, policy=False, load_s=1.0)},
                  max_restarts=0)
shared = {}
res["half"] = start(pool, ["policy", "prm"], shared)
res["half_handles_after_first_pump"] = shared["handles_after_first_pump"]
pool.shutdown()
pool = EnginePool({"tp": spec("tp", 1, tp=2)}, max_restarts=0)
res["tp"] = start(pool, ["tp"])
pg = pool.engines["tp"].replicas[0].pg
table = placement_group_table(pg)
res["tp_bundles"] = [dict(b) for b in table["bundles"].values()]
res["tp_strategy"] = table["strategy"]
res["gpus_free_with_tp"] = ray.available_resources().get("GPU", 0)
pool.shutdown()
ray.shutdown()

# ---- a simulated cluster: a head that does no work and two nodes with 2 GPUs each
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
workers = [cluster.add_node(num_cpus=4, num_gpus=2) for _ in range(2)]
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
res["head_node"] = cluster.head_node.node_id
res["worker_nodes"] = [w.node_id for w in workers]
pool = EnginePool({"r": spec("r", 1, replicas=4)}, max_restarts=0)
res["replicas"] = start(pool, ["r"])
pool.shutdown()
pool = EnginePool({"tp": spec("tp", 1, tp=2)}, max_restarts=0)
res["cluster_tp"] = start(pool, ["tp"])
table = placement_group_table(pool.engines["tp"].replicas[0].pg)
res["cluster_tp_nodes"] = sorted(set(table["bundles_to_node_id"].values()))
pool.shutdown()
from tts.grid import expand
from tts.runtime.driver import run_sweep
grid = expand(["results_dir=" + tempfile.mkdtemp(), "strategy=best_of_n,beam_search", "n=4,8",
               "engine=gpu", "engine.replicas=2", "dataset.per_level=1",
               "cluster=ray", "cluster.address=" + cluster.address, "cluster.auth_mode=disabled"])
summary = run_sweep(grid, builder=FakeEngineBuilder(), live=False)
res["cluster_sweep"] = {"computed": summary.computed, "failed": summary.failed, "loads": summary.engine_loads}
ray.shutdown()
cluster.shutdown()
print(json.dumps(res))
"""


@pytest.fixture(scope="module")
def placed() -> dict[str, Any]:
    return run_isolated(PROBE, timeout=420)


def test_two_whole_gpu_engines_get_gpu_0_and_gpu_1(placed: dict[str, Any]) -> None:
    a, b = placed["whole"]["a"][0], placed["whole"]["b"][0]
    assert not a["error"] and not b["error"]
    assert sorted([a["cuda_visible_devices"], b["cuda_visible_devices"]]) == ["0", "1"]
    assert len(a["gpu_ids"]) == 1 and len(b["gpu_ids"]) == 1


def test_two_engines_at_0_5_gpu_share_one_gpu_and_load_one_after_the_other(placed: dict[str, Any]) -> None:
    policy, prm = placed["half"]["policy"][0], placed["half"]["prm"][0]
    assert policy["gpu_ids"] == prm["gpu_ids"] and len(policy["gpu_ids"]) == 1, "co-located on one GPU"
    assert placed["half_handles_after_first_pump"] == 2, "both actors are created at once"
    assert policy["start_lock"] == prm["start_lock"] and policy["start_lock"].endswith(
        "-gpu" + policy["gpu_ids"][0] + ".lock"
    )
    first, second = sorted([policy, prm], key=lambda i: i["load_started"])
    assert first["load_ended"] <= second["load_started"], (
        "the second loads once the first is built (1 s each)"
    )
    assert second["start_wait_s"] >= 0.5


def test_tp2_engine_gets_a_packed_placement_group_of_2_gpus(placed: dict[str, Any]) -> None:
    info = placed["tp"]["tp"][0]
    assert not info["error"] and info["placement_group"]
    assert info["gpu_ids"] == [], "the actor itself holds no GPU: vLLM's workers use the bundles"
    assert [b.get("GPU") for b in placed["tp_bundles"]] == [1.0, 1.0]
    assert placed["tp_strategy"] == "PACK" and placed["gpus_free_with_tp"] == 0


def test_4_replicas_on_2_nodes_with_2_gpus_each_none_on_the_head(placed: dict[str, Any]) -> None:
    infos = placed["replicas"]["r"]
    nodes = [i["node_id"] for i in infos]
    assert len(infos) == 4 and not any(i["error"] for i in infos)
    assert placed["head_node"] not in nodes
    assert sorted(nodes.count(n) for n in set(nodes)) == [2, 2]
    per_node = {n: sorted(i["cuda_visible_devices"] for i in infos if i["node_id"] == n) for n in set(nodes)}
    assert all(v == ["0", "1"] for v in per_node.values()), per_node


def test_tp2_bundles_packed_on_one_worker_node(placed: dict[str, Any]) -> None:
    nodes = placed["cluster_tp_nodes"]
    assert len(nodes) == 1 and nodes[0] in placed["worker_nodes"]


def test_a_sweep_in_cluster_mode_runs_on_the_workers_with_2_replicas(placed: dict[str, Any]) -> None:
    assert placed["cluster_sweep"] == {"computed": 4, "failed": 0, "loads": 2}
