"""EnginePool (tts.runtime.engine_pool) on a fake cluster, without Ray: placement in order when engines fit,
engines that can never fit, waiting for room, making room (the 2 x 2 deadlock's fix), start failures, restarts,
least-loaded replicas, and releasing / starting again; and the engines a sweep's cells plan for."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.runtime.fakes import FakeCluster, load, pool, spec
from tts.grid import Cell
from tts.runtime.device_lock import GPU, NODE
from tts.runtime.engine_pool import actor_options, demand, plan_engines, prm_key


def test_engines_start_in_order_only_while_they_fit() -> None:
    cluster = FakeCluster(cpus=2)
    engines = pool(cluster, [spec("a"), spec("b"), spec("c")])
    for key in "abc":
        engines.request(key)
    engines.pump()
    assert cluster.started == ["a", "b"], "c waits: two 1-CPU engines fill a 2-CPU cluster"
    assert [engines.state(k) for k in "abc"] == ["starting", "starting", "starting"]
    assert not engines.stalled(), "engines still loading will free nothing, but they are not stuck"
    assert load(engines) == ["ready", "ready"]
    assert engines.stalled(), "c waits and every held engine is loaded: nothing frees room by itself"
    engines.release("a")
    engines.pump()
    assert cluster.started == ["a", "b", "c"] and cluster.peak["CPU"] == 2


def test_a_later_smaller_engine_does_not_take_the_room_an_earlier_one_waits_for() -> None:
    cluster = FakeCluster(cpus=2)
    engines = pool(cluster, [spec("held"), spec("big", cpus=2), spec("small")])
    engines.request("held")
    engines.pump()
    engines.request("big")
    engines.request("small")
    engines.pump()
    assert cluster.started == ["held"], "small would fit, but it queues behind big"
    engines.release("held")
    engines.pump()
    assert cluster.started == ["held", "big"]


def test_on_a_cluster_that_grows_engines_are_created_at_once() -> None:
    cluster = FakeCluster(cpus=1)
    engines = pool(cluster, [spec("a"), spec("b", gpus=1)], check_fit=False)
    engines.request("a")
    engines.request("b")
    engines.pump()
    assert cluster.started == ["a", "b"], "without check_fit Ray places (or autoscales) the actors"


@pytest.mark.parametrize(
    ("engine", "field", "text"),
    [
        (spec("g", gpus=1), "engine.num_gpus", "needs 1 GPU(s) per replica, this Ray cluster has 0"),
        (spec("c", cpus=4), "engine.num_cpus", "needs 4 CPUs, this Ray cluster has 2"),
        (spec("tp", cpus=2, gpus=1, tp=2), "engine.num_gpus", "needs 2 GPU(s)"),
    ],
)
def test_an_engine_that_can_never_fit_fails_at_once_naming_the_field(engine, field, text) -> None:
    cluster = FakeCluster(cpus=2, gpus=1 if engine.key == "tp" else 0)
    engines = pool(cluster, [engine])
    engines.request(engine.key)
    engines.pump()
    assert cluster.started == [] and engines.state(engine.key) == "failed"
    error = engines.engines[engine.key].error
    assert error.startswith(field) and text in error


def test_a_tensor_parallel_replica_holds_all_its_bundles() -> None:
    tp = spec("tp", cpus=2, gpus=1, tp=2)
    assert demand(tp) == {"CPU": 4.0, "GPU": 2.0}
    cluster = FakeCluster(cpus=3, gpus=2)
    engines = pool(cluster, [tp])
    engines.request("tp")
    engines.pump()
    assert engines.engines["tp"].error and "needs 4 CPUs" in engines.engines["tp"].error


def test_engines_sharing_a_device_load_under_its_start_lock() -> None:
    cluster = FakeCluster(cpus=4, gpus=2)
    engines = pool(cluster, [spec("cpu"), spec("half", gpus=0.5), spec("whole", gpus=1)])
    for key in ("cpu", "half", "whole"):
        engines.request(key)
    engines.pump()
    assert [(a.key, a.lock) for a in cluster.live] == [("cpu", NODE), ("half", GPU), ("whole", None)]


def test_make_room_releases_idle_ready_engines_the_next_work_does_not_use() -> None:
    cluster = FakeCluster(cpus=2)
    engines = pool(cluster, [spec("p1"), spec("r1"), spec("p2"), spec("r2")])
    for key in ("p1", "r1", "p2", "r2"):
        engines.request(key)
    engines.pump()
    load(engines)
    assert engines.stalled() and engines.held() == ["p1", "r1"]
    busy = engines.acquire("r1")
    assert engines.make_room(["p1", "r2"]) == [], "p1 is wanted, r1 has work in flight: nothing to release"
    assert [r.key for r in engines._queue] == ["r2", "p2"], "the wanted engine moves to the front"
    engines.release_slot(busy)
    assert engines.make_room(["p1", "r2"]) == ["r1"]
    engines.pump()
    assert cluster.started == ["p1", "r1", "r2"] and engines.state("r1") == "released"
    assert cluster.peak["CPU"] == 2


def test_a_start_failure_fails_the_engine_with_the_last_line_of_the_error() -> None:
    cluster = FakeCluster(fail_start={"bad"})
    engines = pool(cluster, [spec("bad"), spec("good")])
    engines.request("bad")
    engines.request("good")
    engines.pump()
    assert sorted(load(engines)) == ["failed", "ready"]
    assert engines.state("bad") == "failed" and engines.state("good") == "ready"
    assert engines.engines["bad"].error == "engine bad failed to start: RuntimeError: (more lines)"
    assert engines.info("good") == {"key": "good", "load_s": 0.0}


def test_a_restarting_replica_gets_no_work_until_a_probe_answers() -> None:
    cluster = FakeCluster()
    engines = pool(cluster, [spec("p")])
    engines.request("p")
    engines.pump()
    load(engines)
    (replica,) = engines.engines["p"].replicas
    assert engines.mark_recovering(replica) and not engines.mark_recovering(replica), "one death, told once"
    assert not engines.capacity("p", 1)
    replica.handle.state = "RESTARTING"
    engines.pump()
    assert replica.probe_ref is None and replica.next_probe == 0.5, "Ray is still reloading it: ask later"
    engines.pump()
    assert replica.probe_ref is None, "not before next_probe"
    replica.handle.state, cluster.now = "ALIVE", 0.5
    engines.pump()
    assert replica.probe_ref is not None and replica.probe_ref in engines.watch_refs()
    assert engines.on_ref(replica, replica.probe_ref) == "recovered"
    assert replica.restarts == 1 and engines.capacity("p", 1)


def test_a_replica_ray_does_not_restart_fails_its_engine_naming_the_setting() -> None:
    cluster = FakeCluster()
    engines = pool(cluster, [spec("p")], max_restarts=3)
    engines.request("p")
    engines.pump()
    load(engines)
    (replica,) = engines.engines["p"].replicas
    engines.mark_recovering(replica)
    replica.handle.state = "DEAD"
    engines.pump()
    assert engines.state("p") == "failed"
    assert "cluster.max_engine_restarts=3 reached" in engines.engines["p"].error


def test_work_goes_to_the_least_loaded_ready_replica() -> None:
    cluster = FakeCluster(cpus=4)
    engines = pool(cluster, [spec("p", replicas=3)])
    engines.request("p")
    engines.pump()
    assert cluster.started == ["p", "p", "p"]
    first, *_ = engines.engines["p"].replicas
    engines.on_ref(first, first.ready_ref)  # one replica loaded: the engine is ready, and only it takes work
    assert engines.state("p") == "ready"
    assert [engines.acquire("p").index for _ in range(2)] == [0, 0]
    assert not engines.capacity("p", 2)
    load(engines)
    assert [engines.acquire("p").index for _ in range(3)] == [1, 2, 1]
    engines.release_slot(first)
    engines.release_slot(first)
    assert engines.acquire("p").index == 0


def test_a_released_engine_kills_its_actors_and_starts_afresh_when_asked_again() -> None:
    cluster = FakeCluster(cpus=8, gpus=2)
    engines = pool(cluster, [spec("tp", cpus=1, gpus=1, tp=2), spec("other")])
    engines.request("tp")
    engines.request("other")
    engines.pump()
    load(engines)
    engines.release("tp")
    assert engines.state("tp") == "released" and cluster.killed == ["tp"] and cluster.pgs_removed == ["pg-0"]
    assert engines.watch_refs() == {} or all(r.key != "tp" for r in engines.watch_refs().values())
    engines.request("tp")
    engines.pump()
    assert engines.state("tp") == "starting" and engines.actors_created == 3
    load(engines)
    assert engines.state("tp") == "ready"
    engines.shutdown()
    assert sorted(cluster.killed) == ["other", "tp", "tp"] and cluster.live == []


# ---- planning engines (plan_engines, prm_key, actor_options)
def test_one_engine_serves_the_policy_and_its_judge(smollm2_cells: list[Cell]) -> None:
    specs = plan_engines(smollm2_cells)
    assert len(specs) == 1, "the judge PRM on the policy's model must reuse the policy engine"
    (one,) = specs.values()
    assert one.policy is not None and [p.kind for _, p in one.prms] == ["judge"]
    rule = next(c for c in smollm2_cells if c.config.prm.kind == "rule_arithmetic")
    assert prm_key(rule.config) is None  # rule-based PRMs run inside the task
    hot = [
        replace(c, config=replace(c.config, policy=replace(c.config.policy, temperature=1.0)))
        for c in smollm2_cells
    ]
    assert list(plan_engines(smollm2_cells + hot)) == list(specs), (
        "sampling knobs must not start another engine"
    )


def test_cpu_engine_requests_cpus_and_gpu_engine_requests_its_share(smollm2_cells: list[Cell]) -> None:
    (one,) = plan_engines(smollm2_cells).values()
    opts, pg = actor_options(one, max_restarts=3)
    assert pg is None and opts["num_cpus"] == 1 and opts["num_gpus"] == 0 and opts["max_restarts"] == 3
    half = replace(one, engine=replace(one.engine, num_gpus=0.5))
    assert actor_options(half, 0)[0]["num_gpus"] == 0.5
