"""Symbolic answer comparison in killable child processes, so that one answer can never stall a sweep.

Why a process and not a thread or a signal: math-verify's own timeouts use SIGALRM, which only works in the
main thread (Ray async actors and thread pools raise "doesn't support threaded environment"), and a thread
stuck inside sympy (`factorial(10**9)`, `binomial(10**12, 10**6)`, a big-int power) cannot be interrupted at
all. A child process can: `compare(a, b)` sends the pair to a worker and waits at most `timeout_s`; a worker
that has not answered by then is SIGKILLed and replaced, and the verdict is `(False, "timeout")`. A worker
that dies (out of memory under its RLIMIT_AS, a crash) gives `(False, "error")`. The string guard in
tts.grading.equivalence runs first and keeps known explosions from ever reaching sympy, so the timeout is a
backstop, not the common path.

The bound: a `compare` call returns within `timeout_s` of getting a warm worker, plus the start-up of a worker
when none is warm (`import math_verify` in a fresh interpreter: about 1-3 s here, capped at STARTUP_TIMEOUT_S;
a worker reports "ready" before its first request, so start-up is never mistaken for a hang). Measured in
tests/unit/test_grade_bounded.py.
Workers are plain `python -m tts.grading.bounded` subprocesses speaking length-prefixed pickle frames over
their stdin/stdout (no multiprocessing: a Ray worker's `__main__` must not be re-imported), at most
`max_workers` of them per process, started lazily and reused; each exits when its parent does (it polls
its parent pid), so a killed grader leaves no worker behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import queue
import resource
import select
import struct
import subprocess
import sys
import threading
import time
from typing import BinaryIO

TIMEOUT_S = 5.0  # per comparison, counted from a warm worker; a real MATH answer pair takes ms to ~0.5 s
STARTUP_TIMEOUT_S = 60.0  # a new worker must have imported math-verify by then (else: status "error")
WORKER_MEMORY_MB = 3072  # RLIMIT_AS of a worker: a runaway expansion ends in MemoryError, not in swap
_HEADER = struct.Struct("!I")


class _Worker:
    """One child process serving comparisons one at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tts.grading.bounded", str(os.getpid()), str(WORKER_MEMORY_MB)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def ready(self, timeout_s: float) -> bool:
        """Wait for the worker's ready frame (sent once math-verify is imported)."""
        try:
            return self._receive(time.monotonic() + timeout_s) == "ready"
        except (TimeoutError, EOFError, OSError, pickle.UnpicklingError):
            return False

    def _receive(self, deadline: float) -> object:
        assert self.proc.stdout is not None
        header = _read_exact(self.proc.stdout.fileno(), _HEADER.size, deadline)
        return pickle.loads(_read_exact(self.proc.stdout.fileno(), _HEADER.unpack(header)[0], deadline))

    def call(self, request: tuple, timeout_s: float) -> tuple[bool, str]:
        """Send one request; the reply, or raise TimeoutError / EOFError (the caller kills the worker)."""
        data = pickle.dumps(request)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(_HEADER.pack(len(data)) + data)
        self.proc.stdin.flush()
        return self._receive(time.monotonic() + timeout_s)  # type: ignore[return-value]

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    chunks, got = [], 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError
        chunk = os.read(fd, n - got)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class BoundedPool:
    """Up to `max_workers` warm workers shared by every thread of this process."""

    def __init__(self, max_workers: int = 4) -> None:
        self.max_workers = max_workers
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._free = threading.Semaphore(max_workers)
        self._all: set[_Worker] = set()

    def compare(self, a: str, b: str, timeout_s: float = TIMEOUT_S) -> tuple[bool, str]:
        """math-verify's verdict on answers a, b (either direction), computed in a worker:
        (equal, "ok"), or (False, "timeout") / (False, "error") when the worker was killed or died."""
        with self._free:
            worker = self._take()
            if worker is None:
                return False, "error"
            try:
                verdict = worker.call(("compare", a, b), timeout_s)
            except TimeoutError:
                self._drop(worker)
                return False, "timeout"
            except (EOFError, OSError, pickle.UnpicklingError):
                self._drop(worker)
                return False, "error"
            self._idle.put(worker)
            return verdict

    def _take(self) -> _Worker | None:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        try:
            worker = _Worker()
        except OSError:
            return None
        with self._lock:
            self._all.add(worker)
        if not worker.ready(STARTUP_TIMEOUT_S):
            self._drop(worker)
            return None
        return worker

    def _drop(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def close(self) -> None:
        """Kill every worker (at interpreter exit; a later compare starts new ones)."""
        with self._lock:
            workers, self._all = list(self._all), set()
        for w in workers:
            w.kill()
        while True:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break


_POOL: BoundedPool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> BoundedPool:
    """The process-wide pool (TTS_GRADE_WORKERS workers, default min(4, cpu count))."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            default = min(4, os.cpu_count() or 1)
            _POOL = BoundedPool(int(os.environ.get("TTS_GRADE_WORKERS", default)))
            atexit.register(_POOL.close)
        return _POOL


def compare(a: str, b: str, timeout_s: float = TIMEOUT_S) -> tuple[bool, str]:
    """`pool().compare(a, b, timeout_s)`."""
    return pool().compare(a, b, timeout_s)


# ------------------------------------------------------------------------------------------ the worker
def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


def _serve(parent: int, memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    import math_verify  # noqa: F401  (imported before "ready": start-up is not charged to a comparison)

    from tts.grading.equivalence import symbolic_equivalent

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _send(stdout, "ready")
    while True:
        header = stdin.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        _, a, b = pickle.loads(stdin.read(_HEADER.unpack(header)[0]))
        try:
            reply = (symbolic_equivalent(a, b), "ok")
        except Exception:  # MemoryError under RLIMIT_AS, RecursionError, ...
            reply = (False, "error")
        _send(stdout, reply)


def _send(stream: BinaryIO, obj: object) -> None:
    data = pickle.dumps(obj)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
