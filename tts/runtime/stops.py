"""How a sweep stops early and stays resumable: SIGTERM (Slurm preemption, time limits, `kill`) and a Ray cluster
whose head (its GCS) has gone away.

SIGTERM. The first one stops the scheduler from taking work: nothing new is launched, work in flight finishes
and is written, then the driver returns (the CLI exits 143 and prints the command that resumes). A second
SIGTERM stops at once (KeyboardInterrupt), unless it comes within DUPLICATE_S of the first: Slurm signals every
process of a job and the sbatch script forwards the stop too. Finished cells are written atomically either way, so a rerun, or a
Slurm requeue, recomputes none of them.

A lost GCS. On a cluster (`cluster=ray`) everything that is not a call to an existing actor needs the GCS: a new
task, a new actor, `ray.kill` of a placement group. Measured with Ray 2.60 on a loopback cluster: when the head
node is removed, calls to engine actors on other nodes go on working, the next task submission blocks, and
60 s later (`RAY_gcs_rpc_server_reconnect_timeout_s`) Ray ends the driver's process with "Failed to connect to
GCS within 60 seconds ... The program will terminate". `GcsWatch` is a thread that connects to the GCS port
every `POLL_S`; after `cluster.gcs_timeout_s` without an answer it stops the scheduler like a SIGTERM, and if
the driver has not returned `HARD_EXIT_S` later (it is blocked in Ray), it prints the same clear message and
ends the process itself with `EXIT_CLUSTER_LOST`, between two result writes (it takes the driver's write lock),
well before Ray's own abrupt exit. Either way finished cells are kept and a rerun on a new cluster resumes.
A GCS with fault tolerance (external Redis, `RAY_REDIS_ADDRESS`) comes back within Ray's reconnect window: set
`cluster.gcs_timeout_s` (and Ray's timeout) above its restart time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)
POLL_S = 1.0  # how often the GCS port is tried
HARD_EXIT_S = 15.0  # after the GCS is declared lost: how long the driver may take to return by itself
DUPLICATE_S = 2.0  # a second SIGTERM this soon after the first is the same stop delivered twice
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143: the shell's code for "ended by SIGTERM"
EXIT_CLUSTER_LOST = 75  # EX_TEMPFAIL: try again later (the rerun resumes)
SIGTERM_REASON = "SIGTERM"
CLUSTER_LOST_REASON = "cluster lost"


class ClusterLostError(RuntimeError):
    """The Ray cluster's GCS stopped answering; the message says what was kept and how to resume."""


def ray_gcs_timeout_s() -> float:
    """How long Ray lets a driver wait for a lost GCS before ending the process itself."""
    try:
        return float(os.environ.get("RAY_gcs_rpc_server_reconnect_timeout_s", "60"))  # noqa: SIM112 (Ray's name)
    except ValueError:
        return 60.0


def gcs_reachable(address: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections on the GCS's host:port."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def cluster_lost_message(address: str, silent_s: float, finished: int, root: str, resume: str) -> str:
    return (
        f"the Ray cluster's head is gone: its GCS at {address} has not answered for {silent_s:.0f} s, so this "
        f"driver stops (Ray would end it after {ray_gcs_timeout_s():.0f} s). {finished} finished cells are kept "
        f"in {root}; work in flight is dropped. Start the cluster again (or resubmit the Slurm job) and rerun "
        f"the same command; it resumes and recomputes no finished cell: {resume}. To ride out a head restart "
        "instead, run the cluster with GCS fault tolerance (external Redis; README, 'On a Ray cluster')."
    )


class GcsWatch(threading.Thread):
    """Declares the cluster lost after `timeout_s` without a GCS answer: calls `on_lost` once, then ends the
    process (`EXIT_CLUSTER_LOST`) if `done` is not set within `HARD_EXIT_S` (see the module docstring)."""

    def __init__(
        self,
        address: str,
        timeout_s: float,
        on_lost: Callable[[float], str],
        write_lock: Any,
        hard_exit_s: float = HARD_EXIT_S,
    ) -> None:
        super().__init__(name="tts-gcs-watch", daemon=True)
        self.address = address
        self.timeout_s = timeout_s
        self.on_lost = on_lost  # (seconds silent) -> the message; stops the scheduler
        self.write_lock = write_lock
        self.hard_exit_s = hard_exit_s
        self.done = threading.Event()  # set by the driver when it has returned (or on a normal end)
        self.lost_message: str | None = None
        if timeout_s + hard_exit_s >= ray_gcs_timeout_s():
            log.warning(
                "cluster.gcs_timeout_s=%g plus %g s to stop is not below Ray's own %g s "
                "(RAY_gcs_rpc_server_reconnect_timeout_s): Ray may end the driver first, without this message",
                timeout_s,
                hard_exit_s,
                ray_gcs_timeout_s(),
            )

    def run(self) -> None:
        silent_since: float | None = None
        while not self.done.wait(POLL_S):
            if gcs_reachable(self.address):
                silent_since = None
                continue
            now = time.monotonic()
            silent_since = silent_since or now
            if now - silent_since >= self.timeout_s:
                break
        else:
            return
        silent = time.monotonic() - (silent_since or time.monotonic())
        log.error("the GCS at %s has not answered for %.0f s: stopping the sweep", self.address, silent)
        self.lost_message = self.on_lost(silent)
        if self.done.wait(self.hard_exit_s):
            return
        with self.write_lock:  # never between a result file and its manifest line
            print(f"\nerror: {self.lost_message}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(EXIT_CLUSTER_LOST)


@contextlib.contextmanager
def sigterm_stops(stop: Callable[[str], None]) -> Iterator[None]:
    """While inside: the first SIGTERM calls `stop("SIGTERM")`, a second raises KeyboardInterrupt. Only in the
    main thread (Python's rule for signal handlers); elsewhere SIGTERM keeps its default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[float] = []

    def handler(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if (
            seen and now - seen[0] < DUPLICATE_S
        ):  # one stop sent twice (to the job's processes and by its script)
            return
        if seen:
            raise KeyboardInterrupt("second SIGTERM")
        seen.append(now)
        log.warning("SIGTERM: taking no new work; finishing the work in flight (a second SIGTERM stops now)")
        stop(SIGTERM_REASON)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
