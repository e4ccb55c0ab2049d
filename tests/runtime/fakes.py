"""A fake cluster for the runtime's unit tests: what `EnginePool` and `Scheduler` take from Ray, in memory.

`FakeCluster` is at once the pool's `resources`, `ActorFactory`, `get` and `clock` and the scheduler's `submit`,
`wait`, `get` and `warm_up`. Every ref finishes at once unless a test holds it (`hold`); a test decides which
engine fails to load (`fail_start`), which actor is dead or restarting (`FakeActor.state`) and which job's first
call dies with its engine (`die_once`). It also records what a real cluster would show: the actors started and
killed, and the peak CPU / GPU that live actors held (`peak`), which must never exceed the totals. A loop
that stalls (waits for room that nothing frees) fails its test after 200 polls (10 s) instead of hanging.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tts.config import EngineConfig, PolicyConfig
from tts.runtime.actors import EngineSpec
from tts.runtime.engine_pool import EnginePool, demand
from tts.runtime.scheduler import Scheduler, Work


def spec(key: str, *, cpus: float = 1.0, gpus: float = 0.0, tp: int = 1, replicas: int = 1) -> EngineSpec:
    """An engine spec holding one policy, with the resources one replica asks for."""
    engine = EngineConfig(num_cpus=cpus, num_gpus=gpus, tensor_parallel_size=tp, replicas=replicas)
    return EngineSpec(key, key, PolicyConfig(name=key, model="embedded:smollm2-135m"), (), engine)


@dataclass(eq=False)  # refs and handles are told apart by identity, as Ray's are
class FakeRef:
    value: Any = None
    error: BaseException | None = None
    done: bool = True


@dataclass(eq=False)
class FakeActor:
    key: str
    number: int
    spec: EngineSpec
    lock: str | None
    state: str = "ALIVE"
    calls: int = 0


@dataclass
class FakeJob:
    uid: str


@dataclass
class FakeCluster:
    cpus: float = 2.0
    gpus: float = 0.0
    fail_start: set[str] = field(default_factory=set)  # keys whose actors fail to load
    die_once: set[str] = field(default_factory=set)  # job uids whose first call dies with its engine
    hold: bool = False  # new refs stay unfinished until a test finishes them
    now: float = 0.0
    started: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    pgs_removed: list[Any] = field(default_factory=list)
    live: list[FakeActor] = field(default_factory=list)
    peak: dict[str, float] = field(default_factory=lambda: {"CPU": 0.0, "GPU": 0.0})
    submitted: list[tuple[str, Any, Any]] = field(default_factory=list)
    running: int = 0  # jobs submitted and not yet read back
    peak_running: int = 0
    polls: int = 0  # times the pool read the resources: a stalled loop polls for ever, a test fails instead

    # ---- EnginePool's
    def resources(self) -> dict[str, float]:
        self.polls += 1
        assert self.polls < 200, "stalled: the pool keeps waiting for room that nothing frees"
        return {"CPU": self.cpus, "GPU": self.gpus}

    def start(self, spec: EngineSpec, max_restarts: int, lock: str | None) -> tuple[Any, Any]:
        actor = FakeActor(spec.key, len(self.started), spec, lock)
        self.started.append(spec.key)
        self.live.append(actor)
        for name in self.peak:
            used = sum(demand(a.spec)[name] for a in self.live)
            self.peak[name] = max(self.peak[name], used)
        pg = f"pg-{actor.number}" if spec.engine.tensor_parallel_size > 1 else None
        return actor, pg

    def info(self, handle: FakeActor) -> FakeRef:
        if handle.key in self.fail_start:
            return FakeRef(error=RuntimeError(f"CUDA out of memory loading {handle.key}\n(more lines)"))
        return FakeRef({"key": handle.key, "load_s": 0.0}, done=not self.hold)

    def state(self, handle: FakeActor) -> str | None:
        return handle.state

    def kill(self, handle: FakeActor | None, pg: Any) -> None:
        if handle is not None:
            handle.state = "DEAD"
            self.killed.append(handle.key)
            self.live.remove(handle)
        if pg is not None:
            self.pgs_removed.append(pg)

    def get(self, ref: FakeRef) -> Any:
        assert ref.done, "a ref read before it finished"
        if isinstance(ref.value, tuple) and ref.value and ref.value[0] == "job":
            self.running -= 1
        if ref.error is not None:
            raise ref.error
        return ref.value

    def clock(self) -> float:
        return self.now

    # ---- Scheduler's
    def submit(self, work: Work, policy: FakeActor | None, prm: FakeActor | None) -> FakeRef:
        from ray.exceptions import ActorDiedError

        for actor in (policy, prm):
            if actor is not None:
                assert actor.state == "ALIVE", f"work sent to a {actor.state} actor"
                actor.calls += 1
        self.submitted.append((work.uid, policy, prm))
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        ref = FakeRef(("job", work.uid), done=not self.hold)
        if work.uid in self.die_once:
            self.die_once.discard(work.uid)
            ref.error = ActorDiedError()
        return ref

    def wait(self, refs: list[Any], timeout: float) -> list[Any]:
        done = [r for r in refs if r.done]
        if not done:
            self.now += timeout
        return done[:1]

    def warm_up(self, count: int) -> list[Any]:
        return []


def pool(cluster: FakeCluster, specs: list[EngineSpec], *, check_fit: bool = True, **kw: Any) -> EnginePool:
    return EnginePool(
        {s.key: s for s in specs},
        max_restarts=kw.pop("max_restarts", 2),
        check_fit=check_fit,
        resources=cluster.resources,
        actors=cluster,
        get=cluster.get,
        clock=cluster.clock,
        **kw,
    )


def scheduler(cluster: FakeCluster, engines: EnginePool, **kw: Any) -> tuple[Scheduler, dict[str, list]]:
    """A Scheduler on the fake cluster, and what its callbacks saw (results, failures, events)."""
    seen: dict[str, list] = {"results": [], "failures": [], "events": []}
    options: dict[str, Any] = {"max_inflight_per_engine": 2, "max_tries": 2, "max_engine_restarts": 2, **kw}
    sched = Scheduler(
        engines,
        on_result=lambda w, r: seen["results"].append((w.uid, r)),
        on_failure=lambda w, e: seen["failures"].append((w.uid, e)),
        on_event=lambda kind, data: seen["events"].append((kind, data)),
        submit=cluster.submit,
        wait=cluster.wait,
        get=cluster.get,
        warm_up=cluster.warm_up,
        **options,
    )
    return sched, seen


def work(uid: str, policy: str | None, prm: str | None = None) -> Work:
    return Work(job=FakeJob(uid), cells=[], policy_key=policy, prm_key=prm, prm_id=prm or "", local_prm=None)


def load(engines: EnginePool) -> list[str]:
    """Finish every engine start the pool waits on (as the scheduler's loop does); the changes seen."""
    return [engines.on_ref(replica, ref) for ref, replica in engines.watch_refs().items() if ref.done]
