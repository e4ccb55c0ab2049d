"""tts/runtime/watchdog.py without Ray: a "driver" subprocess starts the watchdog and a detached grandchild that
ignores SIGTERM (as Ray's agents outlive their raylet), then dies hard or stops the watchdog first."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tts.runtime import watchdog

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog reads /proc")
REPO = Path(__file__).resolve().parents[2]

DRIVER = """
import os, subprocess, sys, time
from pathlib import Path
from tts.runtime import watchdog
temp = Path(sys.argv[1])
w = watchdog.start(temp)
child = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 >/dev/null & echo $!; exec >&-; wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
print(w.pid, child.pid, child.stdout.readline().decode().strip(), flush=True)
time.sleep(2.5)  # the watchdog records the tree
if sys.argv[2] == "stop":
    w.stop()
os._exit(0)  # as under kill -9: no atexit, no cleanup
"""


def _run_driver(temp: Path, how: str) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, str(temp), how],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [int(x) for x in out.stdout.split()]


def _gone(pid: int) -> bool:
    return watchdog._start_time(pid) is None


def _wait_gone(pids: list[int], limit: float) -> float:
    started = time.monotonic()
    while not all(_gone(p) for p in pids) and time.monotonic() - started < limit:
        time.sleep(0.1)
    return time.monotonic() - started


def test_driver_dies_hard_watchdog_kills_its_sigterm_proof_descendants_and_removes_the_folder() -> None:
    temp = Path(tempfile.mkdtemp(prefix="tts-ray-"))
    wd, sh, sleeper = _run_driver(temp, "die")
    took = _wait_gone([wd, sh, sleeper], watchdog.GRACE_S + 5)
    print(f"descendants gone {took:.1f} s after the driver")
    assert all(_gone(p) for p in (wd, sh, sleeper))
    assert not temp.exists()


def test_driver_stops_the_watchdog_it_exits_and_touches_nothing() -> None:
    temp = Path(tempfile.mkdtemp(prefix="tts-ray-"))
    wd, sh, sleeper = _run_driver(temp, "stop")
    try:
        assert _gone(wd)
        time.sleep(watchdog.POLL_S + 0.5)
        assert not _gone(sh) and not _gone(sleeper) and temp.exists()
    finally:
        for pid in (sleeper, sh):  # processes this test started, by pid
            if not _gone(pid):
                os.kill(pid, 9)
        temp.rmdir()
