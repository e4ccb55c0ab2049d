"""How a sweep stops early (tts.runtime.stops): SIGTERM stops taking work, a second one stops at once; a GCS that
stops answering is declared lost, and a driver that does not return by itself is ended with the message and
EXIT_CLUSTER_LOST; the scheduler drops, never fails, the work that breaks while it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tts.runtime.scheduler import Scheduler, Work, is_node_loss
from tts.runtime.stops import (
    EXIT_CLUSTER_LOST,
    GcsWatch,
    cluster_lost_message,
    gcs_reachable,
    sigterm_stops,
)

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_first_sigterm_asks_to_stop_and_the_second_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tts.runtime.stops.DUPLICATE_S", 0.5)
    reasons: list[str] = []
    with sigterm_stops(reasons.append):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)  # the same stop delivered twice (Slurm + the script): ignored
        time.sleep(0.6)
        assert reasons == ["SIGTERM"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the handler is removed afterwards"


def test_gcs_watch_declares_a_silent_gcs_lost_and_stands_down_when_the_driver_returns() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        alive = f"127.0.0.1:{listening.getsockname()[1]}"
        assert gcs_reachable(alive)
    dead = f"127.0.0.1:{_free_port()}"
    assert not gcs_reachable(dead)
    lost: list[float] = []
    watch = GcsWatch(dead, 1.5, lambda s: lost.append(s) or "lost", threading.Lock(), hard_exit_s=30)
    started = time.monotonic()
    watch.start()
    while not lost and time.monotonic() - started < 10:
        time.sleep(0.1)
    assert lost and lost[0] >= 1.5 and watch.lost_message == "lost"
    watch.done.set()  # the driver returned by itself: no hard exit
    watch.join(timeout=5)
    assert not watch.is_alive()


HARD_EXIT = """
import threading, time
from tts.runtime.stops import GcsWatch
watch = GcsWatch("127.0.0.1:{port}", 0.5, lambda s: "the head is gone, rerun to resume", threading.Lock(),
                 hard_exit_s=0.5)
watch.start()
time.sleep(30)  # a driver blocked in Ray
print("not reached")
"""


def test_a_driver_blocked_after_the_gcs_is_lost_exits_with_the_message_and_code_75() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", HARD_EXIT.format(port=_free_port())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == EXIT_CLUSTER_LOST == 75
    assert "error: the head is gone, rerun to resume" in proc.stderr and "not reached" not in proc.stdout


def test_cluster_lost_message_says_what_is_kept_and_how_to_resume() -> None:
    text = cluster_lost_message(
        "10.0.0.1:6379", 31, 12, "results/smoke", "tts sweep +sweep=smoke cluster=ray"
    )
    for part in ("10.0.0.1:6379", "31 s", "12 finished cells are kept in results/smoke", "+sweep=smoke"):
        assert part in text
    assert "GCS fault tolerance" in text


class _Pool:
    def release_slot(self, replica: object) -> None: ...


class _Job:
    uid = "j"


def test_while_stopping_broken_work_is_dropped_not_failed_and_node_loss_is_not_the_jobs_fault() -> None:
    from ray.exceptions import NodeDiedError, WorkerCrashedError

    failures: list[str] = []
    sched = Scheduler(
        _Pool(),
        max_inflight_per_engine=1,
        max_tries=1,
        max_engine_restarts=1,
        on_result=lambda w, r: None,
        on_failure=lambda w, e: failures.append(e),
    )
    work = Work(job=_Job(), cells=[], policy_key="p", prm_key=None, prm_id="", local_prm=None, tries=1)
    assert is_node_loss(WorkerCrashedError()) and is_node_loss(NodeDiedError("node gone"))
    sched._failed(work, WorkerCrashedError())  # max_tries=1 used up, yet requeued: the node died, not the job
    assert sched.pending.popleft() is work and work.tries == 0 and work.deaths == 1 and not failures
    sched.stop("SIGTERM")
    sched.stop("cluster lost")
    assert sched.stopping == "SIGTERM", "the first reason stays"
