"""Scheduler (tts.runtime.scheduler) on a fake cluster, without Ray: jobs launch when their engines are ready,
in-flight work per engine is bounded, engines start on demand and go when their work is done, a full cluster
makes room (2 policies x 2 PRMs on room for 2 engines finishes; a pair that never fits fails naming the fix),
engine deaths requeue without using up tries, and a stop drops what has not started."""

from __future__ import annotations

from ray.exceptions import ActorDiedError

from tests.runtime.fakes import FakeCluster, FakeJob, pool, scheduler, spec, work
from tts.runtime.scheduler import Work, is_actor_death


def _kinds(seen: dict[str, list], kind: str) -> list[dict]:
    return [data for k, data in seen["events"] if k == kind]


def test_every_job_runs_once_on_its_engines_with_bounded_work_in_flight() -> None:
    cluster = FakeCluster(cpus=2, hold=True)
    engines = pool(cluster, [spec("p"), spec("r")])
    sched, seen = scheduler(cluster, engines, max_inflight_per_engine=2)
    jobs = [work(f"j{i}", "p", "r") for i in range(5)]
    finish = cluster.wait

    def wait_then_finish(refs: list, timeout: float) -> list:  # engines load, then one job finishes per wait
        for ref in refs:
            if not ref.done:
                ref.done = True
                break
        return finish(refs, timeout)

    cluster.wait = wait_then_finish
    sched.wait = wait_then_finish
    sched.run(jobs)
    assert sorted(uid for uid, _ in seen["results"]) == [f"j{i}" for i in range(5)] and not seen["failures"]
    assert [uid for uid, *_ in cluster.submitted] == [f"j{i}" for i in range(5)], "each job once, in order"
    assert cluster.peak_running == 2, "max_inflight_per_engine bounds the jobs in flight"
    assert all(p.key == "p" and r.key == "r" for _, p, r in cluster.submitted)
    assert [e["key"] for e in _kinds(seen, "starting")] == ["p", "r"]
    assert sorted(e["key"] for e in _kinds(seen, "released")) == ["p", "r"], (
        "released once their work is done"
    )
    assert cluster.live == []


def test_engines_go_when_their_work_is_done_and_reserved_ones_stay() -> None:
    cluster = FakeCluster(cpus=3)
    engines = pool(cluster, [spec("a"), spec("b"), spec("keep")])
    sched, seen = scheduler(cluster, engines)
    sched.run([work("a1", "a"), work("b1", "b"), work("k1", "keep")], reserved={"keep"})
    assert len(seen["results"]) == 3
    assert sorted(cluster.killed) == ["a", "b"] and engines.state("keep") == "ready"
    sched.run([work("k2", "keep")], reserved={"keep"})
    assert cluster.started.count("keep") == 1, "a reserved engine serves the next run without a reload"


def test_two_policies_by_two_prms_finish_with_room_for_two_engines() -> None:
    cluster = FakeCluster(cpus=2)
    engines = pool(cluster, [spec("p1"), spec("p2"), spec("r1"), spec("r2")])
    sched, seen = scheduler(cluster, engines)
    jobs = [work(f"{p}{r}", p, r) for p in ("p1", "p2") for r in ("r1", "r2")]
    sched.run(jobs)
    assert sorted(uid for uid, _ in seen["results"]) == ["p1r1", "p1r2", "p2r1", "p2r2"]
    assert not seen["failures"] and cluster.peak["CPU"] == 2
    assert 4 < len(cluster.started) <= 6, "each engine once, plus at most one reload per PRM"


def test_a_pair_that_can_never_run_side_by_side_fails_its_work_naming_the_fix() -> None:
    cluster = FakeCluster(cpus=2)
    engines = pool(cluster, [spec("p", cpus=2), spec("r", cpus=2), spec("q")])
    sched, seen = scheduler(cluster, engines)
    sched.run([work("pr", "p", "r"), work("q1", "q")])
    assert [uid for uid, _ in seen["results"]] == ["q1"], "the work that fits still runs"
    ((uid, error),) = seen["failures"]
    assert uid == "pr" and "engines p, r cannot start beside the engines held (p)" in error
    assert "cluster.num_cpus" in error


def test_a_failed_engine_fails_the_work_that_needs_it_with_its_error() -> None:
    cluster = FakeCluster(fail_start={"bad"})
    engines = pool(cluster, [spec("bad"), spec("good")])
    sched, seen = scheduler(cluster, engines)
    sched.run([work("b1", "bad"), work("b2", "good", "bad"), work("g1", "good")])
    assert [uid for uid, _ in seen["results"]] == ["g1"]
    assert sorted(seen["failures"]) == [
        ("b1", "engine bad failed to start: RuntimeError: (more lines)"),
        ("b2", "engine bad failed to start: RuntimeError: (more lines)"),
    ]
    assert [e["change"] for e in _kinds(seen, "engine") if e["key"] == "bad"] == ["failed"]


def test_an_engine_death_requeues_its_job_which_runs_again_once_the_engine_is_back() -> None:
    cluster = FakeCluster(die_once={"j1"})
    engines = pool(cluster, [spec("p")])
    sched, seen = scheduler(cluster, engines, max_tries=1)
    sched.run([work("j1", "p"), work("j2", "p")])
    assert sorted(uid for uid, _ in seen["results"]) == ["j1", "j2"] and not seen["failures"]
    assert sched.engine_deaths == 1 and sched.requeues == 1
    assert [e["change"] for e in _kinds(seen, "engine")] == ["ready", "restarting", "recovered"]
    assert [uid for uid, *_ in cluster.submitted].count("j1") == 2, "max_tries=1, yet the death used no try"


def test_a_stop_finishes_the_work_in_flight_and_drops_the_rest() -> None:
    cluster = FakeCluster()
    engines = pool(cluster, [spec("p")])
    sched, seen = scheduler(cluster, engines, max_inflight_per_engine=1)
    sched.on_result = lambda w, r: (seen["results"].append(w.uid), sched.stop("SIGTERM"))
    sched.run([work(f"j{i}", "p") for i in range(4)])
    assert seen["results"] == ["j0"] and sched.dropped == 3 and not sched.pending and not seen["failures"]
    assert sched.stopping == "SIGTERM"


def test_a_result_that_cannot_be_written_is_recorded_as_the_jobs_failure() -> None:
    cluster = FakeCluster()
    engines = pool(cluster, [spec("p")])
    sched, seen = scheduler(cluster, engines)

    def disk_full(w: Work, r: object) -> None:
        raise OSError("No space left on device")

    sched.on_result = disk_full
    sched.run([work("j", "p")])
    assert seen["failures"] == [("j", "writing results failed: OSError: No space left on device")]


def test_a_stored_pool_job_needs_no_engine() -> None:
    cluster = FakeCluster()
    engines = pool(cluster, [spec("p")])
    sched, seen = scheduler(cluster, engines)
    sched.run([work("stored", None)])
    assert [uid for uid, _ in seen["results"]] == ["stored"] and cluster.started == []
    assert cluster.submitted == [("stored", None, None)]


class _Pool:
    def release_slot(self, replica: object) -> None: ...


def _retry_scheduler(failures: list[str]):
    from tts.runtime.scheduler import Scheduler

    return Scheduler(
        _Pool(),
        max_inflight_per_engine=2,
        max_tries=2,
        max_engine_restarts=3,
        on_result=lambda w, r: None,
        on_failure=lambda w, e: failures.append(e),
    )


def test_retry_policy_deaths_do_not_use_up_tries() -> None:
    failures: list[str] = []
    sched = _retry_scheduler(failures)
    job = Work(job=FakeJob("j1"), cells=[], policy_key="p", prm_key=None, prm_id="", local_prm=None)
    for _ in range(3):  # three engine deaths: requeued each time, tries unchanged
        job.tries += 1
        sched._failed(job, ActorDiedError())
        assert sched.pending.popleft() is job
    assert job.tries == 0 and job.deaths == 3 and not failures
    job.tries += 1
    sched._failed(job, ActorDiedError())  # the 4th death exceeds max_engine_restarts: recorded as failed
    assert failures and job.deaths == 4
    assert is_actor_death(ActorDiedError()) and not is_actor_death(ValueError("x"))


def test_retry_policy_gives_up_after_max_tries_with_the_error() -> None:
    failures: list[str] = []
    sched = _retry_scheduler(failures)
    job = Work(job=FakeJob("j2"), cells=[], policy_key="p", prm_key=None, prm_id="", local_prm=None)
    job.tries = 1
    sched._failed(job, ValueError("bad parse"))
    assert sched.pending and not failures
    sched.pending.clear()
    job.tries = 2
    sched._failed(job, ValueError("bad parse"))
    assert failures == ["ValueError: bad parse"] and not sched.pending
