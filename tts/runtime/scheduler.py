"""The scheduler: feeds jobs to engine actors through light Ray tasks, with bounded in-flight work per engine,
requeue on actor death, K tries per job, and engines released when their work is done.

Why a hand-written loop and not Ray Data / a task DAG: jobs need different engine pairs (policy, PRM), engines are
started lazily and may die and come back (Ray restarts the actor, its in-flight jobs are requeued), and one bad
job must be recorded as failed without stopping the rest. `ray.wait` over task refs and engine `info` refs keeps
the loop event-driven. The task body is `tts.runtime.cells.run_job` against actor proxies; strategies never see
Ray. A task whose worker or node died (`is_node_loss`) is requeued like one whose engine died. `stop()` (SIGTERM,
a lost GCS: tts.runtime.stops) ends the loop once the work in flight is done; what breaks meanwhile is dropped,
not recorded as failed (a rerun computes it).

The loop reaches Ray only through what it is given: `submit` (start a job's task against its engine handles),
`wait` (the first finished of some refs), `get` (a finished ref's value) and `warm_up` (start warm task
workers). The defaults are Ray's; tests/runtime pass fakes, with a fake EnginePool cluster, so scheduling
(launch, bounded in-flight work, retries, releasing engines, making room) is tested without starting Ray.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tts.runtime.actors import EngineSpec, PolicyProxy, PRMProxy, resolve
from tts.runtime.cells import JobResult, PoolJob, SearchJob, run_job
from tts.runtime.engine_pool import EnginePool, Replica, ray_get

log = logging.getLogger(__name__)
TASK_NUM_CPUS = 0  # strategy tasks mostly wait on engine actors; they must never queue behind them for a CPU


@dataclass
class Work:
    """A job and what scheduling it needs: the engines it talks to, its cells, its tries so far."""

    job: PoolJob | SearchJob
    cells: list[Any]  # tts.grid.Cell
    policy_key: str | None  # None: a stored pool needs no engine
    prm_key: str | None  # engine serving the PRM; None: built inside the task (rule-based / none)
    prm_id: str
    local_prm: EngineSpec | None  # how to build a task-local PRM
    tries: int = 0
    deaths: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return self.job.uid

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(k for k in (self.policy_key, self.prm_key) if k is not None))


def _task(
    job: PoolJob | SearchJob, policy_actor: Any, prm_actor: Any, prm_id: str, local_prm: Any
) -> JobResult:
    """The body of a light Ray task: proxies to the engine actors, then the job."""
    cache_key = job.cache_key if isinstance(job, PoolJob) else None
    policy = PolicyProxy(policy_actor, cache_key) if policy_actor is not None else None
    if prm_actor is not None:
        prm = PRMProxy(prm_actor, prm_id)
    elif local_prm is not None:
        builder = resolve(local_prm.builder) if isinstance(local_prm.builder, str) else local_prm.builder
        prm = builder(local_prm)[1][prm_id]
    else:
        prm = None
    return run_job(job, policy, prm)


def _warm_up() -> bool:
    """Import what jobs need and run the grader once, in a task worker, while the engines load (the first
    real job then finds a warm worker instead of paying process start, imports and math-verify's set-up)."""
    from tts.data.problem import Problem
    from tts.grading import grade
    from tts.runtime import cells  # noqa: F401
    from tts.strategies import pool  # noqa: F401

    return grade(Problem("warm-up", "1 + 1", "2", "warm-up"), "\\boxed{2}").correct


@functools.cache
def _remote_task() -> Any:
    import ray

    return ray.remote(num_cpus=TASK_NUM_CPUS, max_retries=0)(_task)


def ray_submit(work: Work, policy: Any, prm: Any) -> Any:
    """Start `work`'s job as a light Ray task against the engine actors `policy` / `prm` (None: none)."""
    return _remote_task().remote(work.job, policy, prm, work.prm_id, work.local_prm)


def ray_wait(refs: list[Any], timeout: float) -> list[Any]:
    """The first of `refs` to finish within `timeout` seconds (empty: none did)."""
    import ray

    done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
    return done


def ray_warm_up(count: int) -> list[Any]:
    """Start `count` warm-up tasks (their refs, never waited on)."""
    import ray

    warm = ray.remote(num_cpus=TASK_NUM_CPUS, max_retries=0)(_warm_up)
    return [warm.remote() for _ in range(count)]


def is_actor_death(exc: BaseException) -> bool:
    from ray.exceptions import RayActorError

    cause = getattr(exc, "cause", None)
    return isinstance(exc, RayActorError) or isinstance(cause, RayActorError)


def is_node_loss(exc: BaseException) -> bool:
    """The task's worker process or its node died under it (a node removed, preempted, out of memory): not
    the job's fault, like an engine death."""
    from ray.exceptions import NodeDiedError, WorkerCrashedError

    cause = getattr(exc, "cause", None)
    return isinstance(exc, (NodeDiedError, WorkerCrashedError)) or isinstance(
        cause, (NodeDiedError, WorkerCrashedError)
    )


def is_unavailable(exc: BaseException) -> bool:
    """The actor is restarting (its process died earlier): the call never ran."""
    from ray.exceptions import ActorUnavailableError

    return isinstance(exc, ActorUnavailableError) or isinstance(
        getattr(exc, "cause", None), ActorUnavailableError
    )


def error_text(exc: BaseException, limit: int = 2000) -> str:
    cause = getattr(exc, "cause", None) or exc
    text = f"{type(cause).__name__}: {cause}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Scheduler:
    """Runs Work items to completion; results and final failures go to the callbacks (the driver writes them)."""

    def __init__(
        self,
        pool: EnginePool,
        *,
        max_inflight_per_engine: int,
        max_tries: int,
        max_engine_restarts: int,
        on_result: Callable[[Work, JobResult], None],
        on_failure: Callable[[Work, str], None],
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        submit: Callable[[Work, Any, Any], Any] = ray_submit,
        wait: Callable[[list[Any], float], list[Any]] = ray_wait,
        get: Callable[[Any], Any] = ray_get,
        warm_up: Callable[[int], list[Any]] = ray_warm_up,
    ) -> None:
        self.pool = pool
        self.max_inflight = max_inflight_per_engine
        self.max_tries = max_tries
        self.max_deaths = max_engine_restarts + 1
        self.on_result = on_result
        self.on_failure = on_failure
        self.on_event = on_event or (lambda kind, data: None)
        self.submit, self.wait, self.get, self.warm_up = submit, wait, get, warm_up
        self.pending: deque[Work] = deque()
        self.inflight: dict[Any, tuple[Work, list[Replica]]] = {}
        self.requeues = 0
        self.engine_deaths = 0  # actor deaths seen (each one restarts the actor, which reloads its engines)
        self._warmed: list[Any] = []  # refs of warm-up tasks (never waited on)
        self.stopping: str | None = None  # why the run stops early (tts.runtime.stops): no new work is taken
        self.dropped = 0  # jobs left unfinished by an early stop (a rerun computes them)

    def stop(self, reason: str) -> None:
        """Take no new work: `run` returns once the work in flight has finished (safe from a signal handler
        or another thread: it only sets a flag that the loop reads within a second)."""
        if self.stopping is None:
            self.stopping = reason

    # ---- the loop
    def run(self, works: Iterable[Work], reserved: set[str] = frozenset()) -> None:
        """Run `works` until each has a result or a recorded failure. Engines in `reserved` stay up."""
        works = list(works)
        self.pending.extend(works)
        if works and not self._warmed:  # one warm worker per job that can be in flight at once
            slots = self.max_inflight * max(1, len({k for w in works for k in w.keys}))
            self._warmed = self.warm_up(min(len(works), slots))
        while (self.pending and not self.stopping) or self.inflight:
            if not self.stopping:
                self._launch()
                self.pool.pump()
                if not self.inflight and self.pending and self.pool.stalled():
                    self._make_room()
            watched = self.pool.watch_refs()
            refs = list(self.inflight) + list(watched)
            if not refs:
                if self.pending:  # nothing runs: engines are queued behind others or restarting
                    time.sleep(0.05)
                continue
            for ref in self.wait(refs, 1.0):
                if ref in watched:
                    replica = watched[ref]
                    change = self.pool.on_ref(replica, ref)
                    if change:
                        self.on_event(
                            "engine",
                            {
                                "key": replica.key,
                                "info": replica.info,
                                "error": replica.error,
                                "change": change,
                            },
                        )
                else:
                    self._finish(ref)
            if not self.stopping:
                self._release_idle(reserved)
            self.on_event("tick", {})
        if self.stopping:
            self.dropped += len(self.pending)
            self.pending.clear()

    def _launch(self) -> None:
        for work in list(self.pending):
            keys = work.keys
            failed = [k for k in keys if self.pool.state(k) == "failed"]
            if failed:
                self.pending.remove(work)
                self.on_failure(work, self.pool.engines[failed[0]].error or f"engine {failed[0]} failed")
                continue
            for k in keys:
                if self.pool.state(k) in ("pending", "released"):
                    self.pool.request(k)
                    self.on_event("starting", {"key": k})
            if not all(
                self.pool.state(k) == "ready" and self.pool.capacity(k, self.max_inflight) for k in keys
            ):
                continue
            replicas = [self.pool.acquire(k) for k in keys]
            by_key = dict(zip(keys, replicas, strict=True))
            policy = by_key[work.policy_key].handle if work.policy_key else None
            prm = by_key[work.prm_key].handle if work.prm_key else None
            ref = self.submit(work, policy, prm)
            self.inflight[ref] = (work, replicas)
            self.pending.remove(work)
            work.tries += 1
            log.debug("launched %s on %s", work.uid, keys)
            self.on_event("launch", {"uid": work.uid, "keys": keys})

    def _make_room(self) -> None:
        """Nothing runs and the next engine cannot fit: free room for the pending work that has the most of
        its engines ready (the first such), or fail that work when nothing can be released (it can never run)."""
        ready = {k for k, e in self.pool.engines.items() if e.state == "ready"}
        target = max(self.pending, key=lambda w: len(ready & set(w.keys)))
        if self.pool.make_room(target.keys):
            return
        error = (
            f"engines {', '.join(sorted(target.keys))} cannot start beside the engines held "
            f"({', '.join(self.pool.held())}) on this cluster; give it more CPUs/GPUs (cluster.num_cpus) or "
            "lower engine.num_cpus / engine.num_gpus"
        )
        log.error(error)
        self.pending.remove(target)
        self.on_failure(target, error)

    def _finish(self, ref: Any) -> None:
        work, replicas = self.inflight.pop(ref)
        log.debug("finished %s", work.uid)
        for r in replicas:
            self.pool.release_slot(r)
        try:
            result = self.get(ref)
        except Exception as exc:
            if self.stopping:  # the cluster is going away with us: not the job's failure, a rerun computes it
                log.info(
                    "job %s dropped while stopping (%s): %s", work.uid, self.stopping, error_text(exc, 200)
                )
                self.dropped += 1
                return
            if is_actor_death(exc):  # Ray restarts the actor; give it no work until it answers again
                for r in replicas:
                    if self.pool.mark_recovering(r):
                        self.engine_deaths += 1
                        change = {"key": r.key, "info": None, "error": None, "change": "restarting"}
                        self.on_event("engine", change)
            self._failed(work, exc)
            return
        try:
            self.on_result(work, result)
        except Exception as exc:  # writing results failed (disk full?): record, keep going
            log.exception("writing results of %s failed", work.uid)
            self.on_failure(work, f"writing results failed: {error_text(exc)}")

    def _failed(self, work: Work, exc: BaseException) -> None:
        text = error_text(exc)
        work.errors.append(text)
        death = is_actor_death(exc) or is_node_loss(exc)
        if death:
            work.tries -= 1  # an engine or node death is not the job's fault: it does not use up a try
            if not is_unavailable(exc):  # "the actor is restarting" is not another death
                work.deaths += 1
            retry = work.deaths < self.max_deaths
        else:
            retry = work.tries < self.max_tries
        log.warning("job %s failed (try %d, engine deaths %d): %s", work.uid, work.tries, work.deaths, text)
        self.on_event("retry" if retry else "fail", {"uid": work.uid, "error": text, "death": death})
        if retry:
            self.requeues += 1
            self.pending.appendleft(work)
        else:
            self.on_failure(work, text)

    def _release_idle(self, reserved: set[str]) -> None:
        needed = set(reserved)
        for w in self.pending:
            needed.update(w.keys)
        for w, _ in self.inflight.values():
            needed.update(w.keys)
        for key, engine in self.pool.engines.items():
            if engine.state in ("ready", "starting") and key not in needed:
                log.info("releasing engine %s (its work is done)", engine.spec.label)
                self.pool.release(key)
                self.on_event("released", {"key": key})
