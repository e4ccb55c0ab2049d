"""Which engine actors a sweep needs, and starting / picking / releasing them on Ray.

Why: a model is loaded once per sweep and serves every cell that uses it. `plan_engines` maps each cell to the
engine keys it needs: its policy's actor, and its PRM's, which is
  - the policy's own actor for a judge PRM on the policy's model (the judge reuses the policy's vLLM engine),
  - a separate actor for any other model-backed PRM,
  - nothing for rule-based / none PRMs (they run inside the light strategy task).
`EnginePool` creates `replicas` actors per key with the resources the engine config asks for:
  - CPU (num_gpus 0): `num_cpus`;
  - one GPU or a fraction (0.5 co-locates a policy and a PRM on one GPU; engines that share a GPU load one after
    the other on that GPU, CPU engines one after the other on their node, so that each one's memory profiling
    sees the other's allocation; other devices and nodes load at the same time: tts.runtime.device_lock);
  - tensor parallelism > 1: a placement group of `tensor_parallel_size` bundles {GPU: 1, CPU: num_cpus} packed on
    one node; the actor runs in bundle 0 without a GPU and vLLM places its workers in the bundles
    (distributed_executor_backend "ray").
A key whose work is all done is released (actors killed, placement groups removed) so that later groups can use
its GPUs. On a fixed-size (local) cluster an actor is created only when its resources are free (queued replicas in
order), so that Ray never holds an actor that cannot be placed: when no work runs and the next engine cannot fit,
the scheduler asks `make_room` to release ready engines that the work it picks does not use (reloaded later if
needed). Without this, 2 policies x 2 PRMs on room for 2 engines deadlock: each ready engine is still needed by
a later group, and the engine that group lacks waits for a slot forever.

The pool reaches Ray only through what it is given: `resources` (the cluster's totals), `actors` (an
ActorFactory: start, ask for info, read the state of, kill an engine actor), `get` (a finished ref's value) and
`clock`. The defaults are Ray's (`ray_resources`, `RayActors`, `ray_get`); tests/runtime pass fakes, so the
placement, room and restart logic is tested without starting Ray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tts import identity
from tts.config import TTSConfig
from tts.engines import MODEL_PRM_KINDS
from tts.grid import Cell, resolved
from tts.runtime.actors import (
    CLIENT_CPUS,
    DEFAULT_BUILDER,
    EngineSpec,
    endpoint_env,
    endpoint_only,
)
from tts.runtime.device_lock import GPU, NODE, LockedEngineActor

log = logging.getLogger(__name__)


def policy_key(cfg: TTSConfig) -> str:
    return identity.policy_key(resolved(cfg))


def prm_id(cfg: TTSConfig) -> str:
    return identity.prm_id(resolved(cfg))


def prm_shares_policy(cfg: TTSConfig) -> bool:
    """A judge or likelihood verifier on the policy's own model reuses the policy's engine."""
    return cfg.prm.kind in ("judge", "likelihood") and cfg.prm.model == cfg.policy.model


def prm_key(cfg: TTSConfig) -> str | None:
    """The engine key serving the cell's PRM, or None when the PRM runs in the task (rule-based / none)."""
    if cfg.prm.kind not in MODEL_PRM_KINDS:
        return None
    if prm_shares_policy(cfg):
        return policy_key(cfg)
    return identity.prm_engine_key(resolved(cfg))


def plan_engines(cells: Iterable[Cell], builder: Any = DEFAULT_BUILDER) -> dict[str, EngineSpec]:
    """The engine specs the cells need, keyed by engine key (policy engines also hold their shared judges)."""
    specs: dict[str, dict[str, Any]] = {}
    for cell in cells:
        cfg = cell.config
        pk = policy_key(cfg)
        spec = specs.setdefault(pk, {"policy": cfg.policy, "prms": {}, "engine": cfg.engine})
        rk = prm_key(cfg)
        if rk == pk:
            spec["prms"][prm_id(cfg)] = cfg.prm
        elif rk is not None:
            specs.setdefault(rk, {"policy": None, "prms": {}, "engine": cfg.engine})["prms"][prm_id(cfg)] = (
                cfg.prm
            )
    out = {}
    for key, s in specs.items():
        names = [s["policy"].name] if s["policy"] is not None else []
        names += [("+" if s["policy"] is not None else "") + p.name for p in s["prms"].values()]
        out[key] = EngineSpec(
            key, " ".join(names), s["policy"], tuple(s["prms"].items()), s["engine"], builder
        )
    return out


def actor_options(spec: EngineSpec, max_restarts: int) -> tuple[dict[str, Any], Any]:
    """Ray options for one replica of `spec`, and the placement group it needs (None without TP)."""
    e = spec.engine
    opts: dict[str, Any] = {"max_restarts": max_restarts, "max_task_retries": 0, "max_concurrency": 1}
    # a client actor: no device; the key variable passed from the driver's environment
    if endpoint_only(spec):
        return {**opts, "num_cpus": CLIENT_CPUS, "num_gpus": 0, **endpoint_env(spec)}, None
    if e.num_gpus and e.tensor_parallel_size > 1:
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundles = [{"GPU": 1.0, "CPU": float(e.num_cpus)} for _ in range(e.tensor_parallel_size)]
        pg = placement_group(bundles, strategy="PACK")
        opts.update(
            num_cpus=e.num_cpus,
            num_gpus=0,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=pg, placement_group_bundle_index=0, placement_group_capture_child_tasks=True
            ),
        )
        return opts, pg
    opts.update(num_cpus=e.num_cpus, num_gpus=e.num_gpus)
    return opts, None


def demand(spec: EngineSpec) -> dict[str, float]:
    """The Ray resources one replica of `spec` holds (a TP placement group: all its bundles)."""
    e = spec.engine
    if endpoint_only(spec):
        return {"CPU": CLIENT_CPUS, "GPU": 0.0}
    if e.num_gpus and e.tensor_parallel_size > 1:
        return {"CPU": float(e.num_cpus) * e.tensor_parallel_size, "GPU": float(e.tensor_parallel_size)}
    return {"CPU": float(e.num_cpus), "GPU": float(e.num_gpus)}


@dataclass
class Replica:
    key: str
    index: int
    handle: Any = None
    pg: Any = None
    ready_ref: Any = None  # the first `info` call: completes when the engines are loaded
    info: dict[str, Any] | None = None
    inflight: int = 0
    error: str | None = None
    recovering: bool = False  # its actor died: Ray is restarting it (no new work until a probe answers)
    probe_ref: Any = None
    next_probe: float = 0.0
    restarts: int = 0

    @property
    def ready(self) -> bool:
        return self.info is not None and self.error is None and not self.recovering


@dataclass
class Engine:
    spec: EngineSpec
    replicas: list[Replica] = field(default_factory=list)
    state: str = "pending"  # pending | starting | ready | failed | released
    error: str | None = None

    @property
    def fractional(self) -> bool:
        """CPU engines and GPU fractions share a device's memory: they load one at a time per device."""
        if endpoint_only(self.spec):  # a client actor loads nothing: it starts beside anything
            return False
        return self.spec.engine.num_gpus < 1 and self.spec.engine.tensor_parallel_size == 1


def start_lock(engine: Engine) -> str | None:
    """The start lock an engine's actor loads under: its GPU's (a fraction of one GPU), its node's (CPU), or
    none (whole GPUs, tensor parallelism, endpoint clients)."""
    if not engine.fractional:
        return None
    return GPU if engine.spec.engine.num_gpus > 0 else NODE


def actor_state(handle: Any) -> str | None:
    """ALIVE | RESTARTING | DEAD | ... from the GCS (no dashboard needed); None when it cannot be read."""
    try:
        from ray._private import state

        return state.actors(actor_id=handle._actor_id.hex()).get("State")
    except Exception:
        return None


class ActorFactory(Protocol):
    """How the pool starts, asks and stops engine actors: `RayActors` on a cluster, a fake in tests."""

    def start(self, spec: EngineSpec, max_restarts: int, lock: str | None) -> tuple[Any, Any]:
        """A new actor for one replica of `spec` loading under start lock `lock`, and its placement group
        (None without tensor parallelism)."""
        ...

    def info(self, handle: Any) -> Any:
        """A ref that completes with the actor's `info` dict once its engines are loaded."""
        ...

    def state(self, handle: Any) -> str | None:
        """ALIVE | RESTARTING | DEAD | ..., or None when it cannot be read."""
        ...

    def kill(self, handle: Any, pg: Any) -> None:
        """Kill the actor (no restart) and remove its placement group, if any."""
        ...


class RayActors:
    """The ActorFactory of a real Ray cluster: LockedEngineActor actors with `actor_options`."""

    def start(self, spec: EngineSpec, max_restarts: int, lock: str | None) -> tuple[Any, Any]:
        import ray

        opts, pg = actor_options(spec, max_restarts)
        return ray.remote(LockedEngineActor).options(**opts).remote(spec, lock), pg

    def info(self, handle: Any) -> Any:
        return handle.info.remote()

    def state(self, handle: Any) -> str | None:
        return actor_state(handle)

    def kill(self, handle: Any, pg: Any) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        if handle is not None:
            ray.kill(handle, no_restart=True)
        if pg is not None:
            remove_placement_group(pg)


def ray_resources() -> dict[str, float]:
    """The Ray cluster's total resources (CPU, GPU, ...)."""
    import ray

    return ray.cluster_resources()


def ray_get(ref: Any) -> Any:
    """A finished ref's value (raises what the remote call raised)."""
    import ray

    return ray.get(ref)


class EnginePool:
    """Starts engine actors on demand, tracks readiness, restarts and in-flight work, picks the least-loaded
    replica. Every state change happens in `pump` / `on_ref`, driven by the scheduler's `ray.wait` loop."""

    def __init__(
        self,
        specs: dict[str, EngineSpec],
        *,
        max_restarts: int,
        replicas: dict[str, int] | None = None,
        check_fit: bool = False,
        resources: Callable[[], Mapping[str, float]] = ray_resources,
        actors: ActorFactory | None = None,
        get: Callable[[Any], Any] = ray_get,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.engines = {k: Engine(s) for k, s in specs.items()}
        self.max_restarts = max_restarts
        self.resources = resources
        self.actors: ActorFactory = actors if actors is not None else RayActors()
        self.get = get
        self.clock = clock
        self.check_fit = check_fit  # a fixed-size (local) cluster: an engine that can never fit fails at once
        self._replicas = replicas or {}
        self._queue: list[Replica] = []  # replicas waiting to be created
        self.actors_created = 0

    # ---- starting
    def request(self, key: str) -> None:
        """Ask for `key`'s engine: its replicas are queued and created by `pump`."""
        engine = self.engines[key]
        if engine.state not in ("pending", "released"):
            return
        engine.state = "starting"
        n = self._replicas.get(key, engine.spec.engine.replicas)
        engine.replicas = [Replica(key, i) for i in range(n)]
        self._queue.extend(engine.replicas)

    def pump(self) -> None:
        """Create queued actors (all at once: engines that share a device queue for it themselves, see
        tts.runtime.device_lock) and probe restarting ones."""
        for replica in list(self._queue):
            engine = self.engines[replica.key]
            misfit = self._misfit(engine.spec) if self.check_fit else None
            if misfit:
                self._queue.remove(replica)
                replica.error = misfit
                log.error(misfit)
                self._update(engine)
                continue
            if self.check_fit and not self._fits_now(engine.spec):
                break  # in order: a later, smaller engine must not take the room this one waits for
            replica.handle, replica.pg = self.actors.start(engine.spec, self.max_restarts, start_lock(engine))
            replica.ready_ref = self.actors.info(replica.handle)
            self.actors_created += 1
            self._queue.remove(replica)
            log.info("starting engine %s replica %d", engine.spec.label, replica.index)
        now = self.clock()
        for engine in self.engines.values():
            for r in engine.replicas:
                if r.recovering and r.probe_ref is None and now >= r.next_probe:
                    state = self.actors.state(r.handle)
                    if state == "DEAD":
                        self._dead(r)
                    elif state in (None, "ALIVE"):
                        r.probe_ref = self.actors.info(r.handle)
                    else:  # RESTARTING / PENDING_CREATION: loading its engines again
                        r.next_probe = now + 0.5

    def _misfit(self, spec: EngineSpec) -> str | None:
        """Why one replica of `spec` can never be placed on this (fixed) cluster, or None."""
        total = self.resources()
        need = demand(spec)
        if need["GPU"] > total.get("GPU", 0):
            return (
                f"engine.num_gpus: engine {spec.label} needs {need['GPU']:g} GPU(s) per replica, this Ray cluster "
                f"has {total.get('GPU', 0):g}; use engine=cpu on a machine without GPUs"
            )
        if need["CPU"] > total.get("CPU", 0):
            return (
                f"engine.num_cpus: engine {spec.label} needs {need['CPU']:g} CPUs, this Ray cluster has "
                f"{total.get('CPU', 0):g}"
            )
        return None

    def _fits_now(self, spec: EngineSpec) -> bool:
        """Whether one more replica of `spec` fits beside the actors this pool holds (fixed cluster)."""
        total = self.resources()
        used: dict[str, float] = {}
        for engine in self.engines.values():
            if engine.state in ("starting", "ready"):
                for r in engine.replicas:
                    if r.handle is not None and r.error is None:
                        for name, amount in demand(engine.spec).items():
                            used[name] = used.get(name, 0.0) + amount
        return all(used.get(n, 0.0) + a <= total.get(n, 0.0) + 1e-9 for n, a in demand(spec).items() if a)

    def stalled(self) -> bool:
        """Replicas wait for room while no actor is starting or restarting: nothing will free room by itself."""
        if not (self.check_fit and self._queue):
            return False
        return not any(
            r.handle is not None and r.error is None and (r.info is None or r.recovering)
            for e in self.engines.values()
            if e.state in ("starting", "ready")
            for r in e.replicas
        )

    def make_room(self, keys: Iterable[str]) -> list[str]:
        """Release the idle ready engines outside `keys` and move `keys`' queued replicas to the front; the
        released keys (empty: nothing could be released, so `keys` can never start beside what is held)."""
        keys = set(keys)
        released = [
            k
            for k, e in self.engines.items()
            if k not in keys and e.state == "ready" and not any(r.inflight for r in e.replicas)
        ]
        for k in released:
            log.info(
                "releasing engine %s to make room for %s", self.engines[k].spec.label, ", ".join(sorted(keys))
            )
            self.release(k)
        self._queue.sort(key=lambda r: r.key not in keys)  # stable: order kept within each side
        return released

    def held(self) -> list[str]:
        """Labels of the engines holding actors now (not those whose replicas all wait in the queue)."""
        return [
            e.spec.label
            for e in self.engines.values()
            if e.state in ("starting", "ready") and any(r.handle is not None for r in e.replicas)
        ]

    def watch_refs(self) -> dict[Any, Replica]:
        """Refs the scheduler waits on besides its tasks: first `info` calls and restart probes."""
        out: dict[Any, Replica] = {}
        for e in self.engines.values():
            if e.state not in ("starting", "ready"):
                continue
            for r in e.replicas:
                if r.ready_ref is not None and r.info is None and r.error is None:
                    out[r.ready_ref] = r
                if r.probe_ref is not None:
                    out[r.probe_ref] = r
        return out

    def on_ref(self, replica: Replica, ref: Any) -> str:
        """Handle a finished watch ref: "ready", "recovered", "failed", or "" (nothing changed yet)."""
        from ray.exceptions import ActorUnavailableError

        engine = self.engines[replica.key]
        if engine.state == "released":
            return ""
        if ref is replica.probe_ref:
            replica.probe_ref = None
            try:
                replica.info = self.get(ref)
            except ActorUnavailableError:  # still restarting
                replica.next_probe = self.clock() + 0.5
                return ""
            except Exception:
                if self.actors.state(replica.handle) == "DEAD":
                    self._dead(replica)
                    return "failed"
                replica.next_probe = self.clock() + 0.5
                return ""
            replica.recovering = False
            replica.restarts += 1
            log.info("engine %s replica %d is back after a restart", engine.spec.label, replica.index)
            return "recovered"
        try:
            replica.info = self.get(ref)
        except Exception as exc:  # the constructor raised (bad model path, out of memory, ...)
            replica.error = f"engine {replica.key} failed to start: {type(exc).__name__}: {_short(exc)}"
            log.error(replica.error)
        self._update(engine)
        return "failed" if replica.error else "ready"

    def _dead(self, replica: Replica) -> None:
        replica.recovering = False
        replica.error = (
            f"engine {replica.key} replica {replica.index} died and Ray did not restart it "
            f"(cluster.max_engine_restarts={self.max_restarts} reached)"
        )
        log.error(replica.error)
        self._update(self.engines[replica.key])

    def _update(self, engine: Engine) -> None:
        if any(r.info is not None and r.error is None for r in engine.replicas):
            engine.state = "ready"
        elif all(r.error for r in engine.replicas):
            engine.state, engine.error = "failed", engine.replicas[0].error

    def mark_recovering(self, replica: Replica) -> bool:
        """A call to this replica failed because its actor died or is restarting: hold new work until a
        probe answers (Ray restarts the actor, which reloads its engines). True if this is news (a death)."""
        if replica.error is None and not replica.recovering:
            replica.recovering = True
            replica.probe_ref = None
            replica.next_probe = self.clock()
            return True
        return False

    # ---- using
    def state(self, key: str) -> str:
        return self.engines[key].state

    def capacity(self, key: str, per_replica: int) -> bool:
        return any(r.ready and r.inflight < per_replica for r in self.engines[key].replicas)

    def acquire(self, key: str) -> Replica:
        replica = min((r for r in self.engines[key].replicas if r.ready), key=lambda r: (r.inflight, r.index))
        replica.inflight += 1
        return replica

    def release_slot(self, replica: Replica) -> None:
        replica.inflight = max(0, replica.inflight - 1)

    def info(self, key: str) -> dict[str, Any]:
        return next((r.info for r in self.engines[key].replicas if r.info), {})

    # ---- stopping
    def release(self, key: str) -> None:
        """Kill a key's actors and remove their placement groups (its work is done)."""
        engine = self.engines[key]
        for r in engine.replicas:
            if r.handle is not None or r.pg is not None:
                self.actors.kill(r.handle, r.pg)
        engine.state = "released"
        self._queue = [r for r in self._queue if r.key != key]

    def shutdown(self) -> None:
        for key, engine in self.engines.items():
            if engine.state not in ("pending", "released"):
                self.release(key)


def _short(exc: BaseException, limit: int = 400) -> str:
    text = str(exc).strip().splitlines()
    tail = text[-1] if text else type(exc).__name__
    return tail[:limit]


__all__ = ["ActorFactory", "EnginePool", "RayActors", "plan_engines", "policy_key", "prm_key"]
