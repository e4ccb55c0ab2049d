"""End a local Ray session's processes within seconds of its driver's death (`kill -9` included).

Why: `init_local` runs the whole Ray head (GCS, raylet, dashboard / runtime-env agents, workers holding the
engines) for one driver. What Ray 2.60 does by itself when that driver is SIGKILLed (measured on 2 busy cores,
tests/integration/test_driver_death.py):
- the processes `ray.init` starts itself (gcs_server, raylet, monitor, dashboard, log monitor) get
  `prctl(PR_SET_PDEATHSIG, SIGKILL)` (services.start_ray_process, `fate_share`): they die at once;
- the workers (engine actors) notice that their raylet is gone and exit within about 2 s;
- the raylet's dashboard agent and runtime-env agent see the raylet die (stdin pipe / parent poll,
  ray/_private/process_watcher.py) but then try to report it to the dead GCS and block there for about 60 s
  (the GCS client's reconnect timeout) before exiting: ~60-80 s in all, holding memory and the session folder.
On a cluster (`cluster=ray`) nothing of the head is ours; there Ray's ownership is enough: the raylet sees the
driver's socket close, the GCS marks the job dead and kills its non-detached actors (0.6 s measured), so no
watchdog runs there.

How: `start` spawns `python -I .../tts/runtime/watchdog.py <driver pid> <temp dir>` in its own session, with a pipe on
its stdin whose write end only the driver holds (close-on-exec, so Ray's children do not inherit it). The
watchdog
  - every second records the driver's descendants (pid + start time, so a reused pid is never mistaken);
  - on "stop" (the driver's `local_ray.shutdown`, after `ray.shutdown()`) exits without touching anything;
  - on EOF (the driver died, or exited without stopping it) or when the driver's pid is gone: SIGTERMs every
    process of the session, SIGKILLs what is left after `GRACE_S`, removes the private temp folder, exits.
A process of the session is a recorded descendant of the driver, or one that has a file under the session's
private temp folder open or names it in a `--flag=<path>` argument (Ray workers rename themselves, so their
command line says nothing; their stdout / stderr are the session's log files).

What it cannot cover: a SIGKILL of the watchdog itself, or of the driver and watchdog together (a killed process
group, the OOM killer taking both, a machine reboot); a process of this user that holds a file of the session
folder open (e.g. `tail -f` of a Ray log) is ended too; Linux only (/proc).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 1.0  # how often the driver's descendants are recorded and its pid checked
GRACE_S = 3.0  # SIGTERM, then SIGKILL what is left after this long
Proc = tuple[int, int]  # (pid, start time in clock ticks since boot): a pid that cannot be reused unnoticed


# ------------------------------------------------------------------------------------------ in the driver
class Watchdog:
    """The driver's handle: `stop()` tells the watchdog that the session ended normally."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.stdin is None or self.proc.stdin.closed:
            return
        try:
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(temp_dir: Path) -> Watchdog | None:
    """Spawn the watchdog of this process's local Ray session (None off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    proc = subprocess.Popen(
        # run as a file in isolated mode: stdlib only, whatever the driver's sys.path or environment
        [sys.executable, "-I", str(Path(__file__).resolve()), str(os.getpid()), str(temp_dir)],
        cwd="/",
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in the driver's process group: a Ctrl-C there does not stop it
        close_fds=True,
    )
    return Watchdog(proc)


# ------------------------------------------------------------------------------------------ in the watchdog
def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is gone for our purposes
        return None
    return int(fields[19])


def _alive(proc: Proc) -> bool:
    return _start_time(proc[0]) == proc[1]


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _descendants(root: int) -> set[Proc]:
    children: dict[int, list[int]] = {}
    for pid in _pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(pid)
    out: set[Proc] = set()
    todo = [pid for pid in children.get(root, ()) if pid != os.getpid()]  # the watchdog is a child too
    while todo:
        pid = todo.pop()
        started = _start_time(pid)
        if started is not None:
            out.add((pid, started))
        todo.extend(children.get(pid, ()))
    return out


def _marked(pid: int, marker: str) -> bool:
    """The process has a file under `marker` (the session's temp folder) open, or a --flag=<marker...>."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if any(f"={marker}".encode() in a for a in args if a.startswith(b"--")):
        return True
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(marker):
            return True
    return False


def session_processes(temp_dir: str, known: set[Proc]) -> set[Proc]:
    """The live processes of the session: `known` ones still alive, plus any marked by the temp folder."""
    marker = str(temp_dir).rstrip("/") + "/"
    me = os.getpid()
    out = {p for p in known if _alive(p)}
    for pid in _pids():
        if pid != me and pid not in {p[0] for p in out} and _marked(pid, marker):
            started = _start_time(pid)
            if started is not None:
                out.add((pid, started))
    return out


def _signal(procs: set[Proc], sig: int) -> None:
    for pid, started in procs:
        if _start_time(pid) == started:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)


def reap(temp_dir: str, known: set[Proc], grace_s: float = GRACE_S) -> None:
    """SIGTERM the session's processes, SIGKILL the rest after `grace_s`, remove the temp folder."""
    procs = session_processes(temp_dir, known)
    _signal(procs, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while procs and time.monotonic() < deadline:
        time.sleep(0.1)
        procs = {p for p in procs if _alive(p)}
    for _ in range(3):  # a process started while we were terminating (a worker being spawned)
        procs = session_processes(temp_dir, procs)
        if not procs:
            break
        _signal(procs, signal.SIGKILL)
        time.sleep(0.2)
    if Path(temp_dir).name.startswith("tts-ray-"):  # only the folder local_ray made
        shutil.rmtree(temp_dir, ignore_errors=True)


def watch(driver_pid: int, temp_dir: str) -> int:
    """Wait for "stop" (exit 0, touch nothing) or the driver's death (reap the session, exit 0)."""
    driver = (driver_pid, _start_time(driver_pid) or -1)
    known: set[Proc] = set()
    stdin = sys.stdin.buffer
    while True:
        if not _alive(driver):
            break
        known = {p for p in known if _alive(p)} | _descendants(driver_pid)
        ready, _, _ = select.select([stdin], [], [], POLL_S)
        if ready:
            line = stdin.readline()
            if line.strip() == b"stop":
                return 0
            if not line:  # EOF: the driver's end of the pipe is closed (it died or exited)
                break
    reap(temp_dir, known)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python tts/runtime/watchdog.py <driver pid> <session temp dir>", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return watch(int(args[0]), args[1])


if __name__ == "__main__":
    sys.exit(main())
