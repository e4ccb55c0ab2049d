"""A sweep driver killed with `kill -9` leaves no process of its local Ray session 10 s later
(tts/runtime/watchdog.py), and a sweep that ends normally leaves no watchdog behind.

Each driver runs in a subprocess with its own local Ray (`init_local`, cluster.mode=local) and fake engines
(tts.testing.fake_actors), slowed down so that the sweep is still running when it is killed. A process of the
session is a descendant of the driver seen before the kill, or one that names or holds open a file of the
session's private temp folder. Without the watchdog the last ones (Ray's dashboard / runtime-env agents) lived
~60 s after the kill on 2 cores; with it, ~3.5 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog reads /proc"),
]
REPO = Path(__file__).resolve().parents[2]
WITHIN_S = 10.0

DRIVER = """
import sys
from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.testing.fake_actors import FakeEngineBuilder
grid = expand(["+sweep=smollm2", "results_dir=" + sys.argv[1], "dataset.per_level=2", "cluster.num_cpus=4",
               "cluster.auth_mode=disabled"])
run_sweep(grid, builder=FakeEngineBuilder(delay_s=float(sys.argv[3]), state_dir=sys.argv[2]), live=False)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}


def _marked(proc: psutil.Process, temp: str) -> bool:
    try:
        if any(temp in arg for arg in proc.cmdline()[1:]):
            return True
        return any(f.path.startswith(temp) for f in proc.open_files())
    except psutil.Error:
        return False


def _left(tracked: dict[tuple[int, float], psutil.Process], temp: str) -> list[psutil.Process]:
    """Live processes of the session (tracked ones, their descendants, any marked by the temp folder)."""
    out: dict[int, psutil.Process] = {}
    for proc in list(tracked.values()):
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out[proc.pid] = proc
                for child in proc.children(recursive=True):
                    out.setdefault(child.pid, child)
        except psutil.Error:
            continue
    for proc in psutil.process_iter():
        if proc.pid != os.getpid() and proc.pid not in out and _marked(proc, temp):
            out[proc.pid] = proc
    for proc in out.values():
        tracked.setdefault((proc.pid, proc.create_time()), proc)
    return list(out.values())


def test_driver_killed_with_sigkill_no_process_of_its_ray_session_left_10_s_later(tmp_path: Path) -> None:
    state = tmp_path / "state"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path / "results"), str(state), "1.0"],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not (state / "pid").is_file():  # the engine actor is up (the fake wrote its pid)
            assert driver.poll() is None, "the driver ended before its engine started"
            assert time.monotonic() < deadline, "the engine did not start within 180 s"
            time.sleep(0.1)
        time.sleep(1.0)  # the sweep is running: calls in flight
        procs = psutil.Process(driver.pid).children(recursive=True)
        watchdogs = [p for p in procs if any(a.endswith("tts/runtime/watchdog.py") for a in p.cmdline())]
        temps = {p.cmdline()[-1] for p in watchdogs}  # <driver pid> <session temp folder>
        gcs_args = [a for p in procs if p.name() == "gcs_server" for a in p.cmdline()]
        tracked = {(p.pid, p.create_time()): p for p in procs}
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    killed = time.monotonic()
    assert len(watchdogs) == 1 and len(temps) == 1, "init_local started one watchdog"
    temp = temps.pop()
    assert any(temp in arg for arg in gcs_args), "the watchdog watches this session's folder"
    engine = int((state / "pid").read_text())
    assert any(p.pid == engine for p in procs), "the engine actor is a process of the session"
    print(f"session {temp}: {len(procs)} processes besides the driver at the kill")
    left = _left(tracked, temp)
    while left and time.monotonic() - killed < 90:  # wait past the limit, to measure
        time.sleep(0.2)
        left = _left(tracked, temp)
    took = time.monotonic() - killed
    print(f"last process of the session gone {took:.1f} s after kill -9 of the driver")
    names = [f"{p.pid}:{p.name()}" for p in left if p.is_running()]
    for proc in left:  # only processes of this session, by pid
        proc.kill()
    assert not left, f"still alive 90 s after the kill: {names}"
    assert took <= WITHIN_S, f"the session's processes outlived the driver by {took:.1f} s"
    assert not Path(temp).exists(), "the watchdog removes the private temp folder"


NORMAL = """
import json, sys, time
from tts.grid import expand
from tts.runtime import local_ray
from tts.runtime.driver import run_sweep
from tts.testing.fake_actors import FakeEngineBuilder
seen = []
start = local_ray.watchdog.start
def spy(temp_dir):
    w = start(temp_dir)
    seen.append(w.pid)
    return w
local_ray.watchdog.start = spy
grid = expand(["+sweep=smollm2", "results_dir=" + sys.argv[1], "dataset.per_level=1", "cluster.num_cpus=4",
               "cluster.auth_mode=disabled"])
summary = run_sweep(grid, builder=FakeEngineBuilder(), live=False)
import psutil
deadline = time.monotonic() + 5
alive = lambda: [p for p in seen if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
while alive() and time.monotonic() < deadline:
    time.sleep(0.1)
print(json.dumps({"watchdogs": seen, "alive": alive(), "computed": summary.computed}))
"""


def test_sweep_that_ends_normally_leaves_no_watchdog_while_the_driver_lives_on(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", NORMAL, str(tmp_path)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    found = json.loads(lines[-1])
    print(found)
    assert found["computed"] > 0 and len(found["watchdogs"]) == 1
    assert found["alive"] == [], "the watchdog outlived ray.shutdown()"
