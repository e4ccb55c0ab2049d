"""Engines that share a device load one at a time per device (per node for CPU engines), not per cluster.

Why: vLLM sizes an engine's memory when it starts, from what the device has free at that moment
(`gpu_memory_utilization` is a share of the whole device), so two engines that load side by side on one GPU each
profile while the other is half-loaded. They must load one after the other. Which GPU an engine gets is Ray's
choice and known only once the actor is placed, so the order is kept where the device is: the actor takes an
exclusive `flock` on a file named after its node and device before building its engines, and lets go when they
are built (or when its process dies: kill -9 and node loss release an flock too). Engines on other GPUs or other
nodes load at the same time; whole-GPU and tensor-parallel engines take no lock. A restarted actor (after a
death) queues behind the engines loading on its new device like any other.

Before, the engine pool created such engines one at a time across the whole cluster: 4 half-GPU engines on 2
nodes x 2 GPUs took 4 sequential loads (bench/bench_engine_starts.py measures both).

The lock files live in the node's Ray session folder (`<session>/tts-engine-start/<node id>-<device>.lock`; the
system temp folder if Ray's private API moves), which goes with the session's logs; node ids are unique per
Ray cluster, so two clusters on one machine (two Slurm jobs, or simulated nodes in tests) never share a lock.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tts.runtime.actors import EngineActor, EngineSpec

GPU = "gpu"  # one lock per GPU the actor holds a fraction of
NODE = "node"  # one lock per node (CPU engines share the node's memory)


def lock_path(kind: str) -> Path:
    """The lock file of this actor's device: its node id plus its GPU id (kind GPU) or "cpu" (kind NODE)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    device = "cpu" if kind == NODE else "gpu" + "-".join(str(g) for g in ray.get_gpu_ids())
    try:
        from ray._private import worker

        folder = Path(worker.global_worker.node.get_session_dir_path()) / "tts-engine-start"
    except Exception:  # a Ray without this private path: the temp folder (one per user)
        folder = Path(tempfile.gettempdir()) / f"tts-engine-start-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / f"{node}-{device}.lock"


class LockedEngineActor(EngineActor):
    """An engine actor whose engines are built while holding its device's start lock (None: no lock)."""

    def __init__(self, spec: EngineSpec, start_lock: str | None = None) -> None:
        self.start_lock: str | None = None
        waited = 0.0
        handle = None
        if start_lock is not None:
            path = lock_path(start_lock)
            self.start_lock = path.name
            asked = time.monotonic()
            handle = open(path, "a")  # noqa: SIM115 - held across the engine build below
            fcntl.flock(handle, fcntl.LOCK_EX)
            waited = time.monotonic() - asked
        try:
            self.load_started = time.time()
            super().__init__(spec)
            self.load_ended = time.time()
        finally:
            if handle is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
        self.start_wait_s = waited

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "start_lock": self.start_lock,
            "start_wait_s": self.start_wait_s,
            "load_started": self.load_started,  # wall clock (time.time) of this load: tests compare windows
            "load_ended": self.load_ended,
        }
