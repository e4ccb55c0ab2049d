"""Hostile code through the real sandbox (tts.grading.sandbox), graded by grade_code like a model's completion.

Includes the reward hacks on the verdict itself: a wrong program that ends the process with exit code 0 before
or while its tests run (os._exit, sys.exit, SystemExit, atexit, excepthook, a thread, a forged completion mark)
must be graded "early_exit" / failed, never passed; and ptrace / process_vm_readv must be refused.

Each case is a completion of a tiny problem `def main():` whose tests pass ONLY if the attack worked (the
socket connected, the secret leaked, the sentinel is gone, 4 GiB were allocated...). Every case must be graded
failed or timeout within timeout + 1 s, the sentinel files must survive, the grader must still run a benign
program, and no process of the sandbox may remain (checked with psutil: the grader's descendants and every
process of the sandbox's throwaway uids).
"""

from __future__ import annotations

import os
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tts.data.problem import Problem
from tts.grading.code import grade_code
from tts.grading.sandbox import Sandbox, SandboxLimits, detect_isolation

TIMEOUT_S = 2.0
SECRET = "tts-secret-0f9c2b7e"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox(SandboxLimits(timeout_s=TIMEOUT_S), max_workers=2)


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[list[Path]]:
    """Files outside the sandbox's temp dir: one in the grader's temp dir (a private, 0755 folder) and one in
    a world-writable folder inside the project tree (where only the read-only mount can protect it)."""
    private = tmp_path / "private"
    private.mkdir(mode=0o755)
    shared = REPO / ".pytest_cache" / f"tts-sandbox-{os.getpid()}-{time.monotonic_ns()}"
    shared.mkdir(parents=True)
    os.chmod(shared, 0o777)
    files = [private / "sentinel.txt", shared / "sentinel.txt"]
    for f in files:
        f.write_text("keep me")
    os.chmod(files[1], 0o666)
    yield files
    for f in files:
        f.unlink(missing_ok=True)
    shared.rmdir()


def _problem(name: str, tests: str) -> Problem:
    meta = {"prompt": "def main():\n", "tests": tests, "entry_point": "main", "timeout_s": TIMEOUT_S}
    return Problem(
        id=f"hostile/{name}",
        question="def main():\n",
        answer="",
        dataset="hostile",
        kind="code",
        metadata=meta,
    )


def _strays(box: Sandbox, before: set[int] = frozenset()) -> list[psutil.Process]:
    """Live processes the attack left: the grader's descendants that were not there before it (other tests'
    session-scoped engines are), and anything running under the sandbox's throwaway uids."""
    found = [
        p
        for p in psutil.Process().children(recursive=True)
        if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE
    ]
    base = box.isolation.uid_base
    if base is not None:
        uids = range(base, base + box.max_workers)
        for proc in psutil.process_iter(["uids"]):
            if proc.info["uids"] is not None and proc.info["uids"].real in uids:
                found.append(proc)
    return found


def _attack(box: Sandbox, sentinels: list[Path], name: str, body: str, tests: str) -> str:
    """Grade the attack; assert everything the issue requires; return the grade's detail."""
    completion = textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    start = time.monotonic()
    grade = grade_code(_problem(name, textwrap.dedent(tests)), completion, sandbox=box)
    elapsed = time.monotonic() - start
    assert not grade.correct, f"{name}: the attack worked ({grade.detail})"
    assert grade.detail.startswith(("failed", "timeout", "early_exit")), grade.detail
    assert elapsed <= TIMEOUT_S + 1.0, f"{name}: graded in {elapsed:.2f} s"
    for f in sentinels:
        assert f.read_text() == "keep me", f"{name}: sentinel {f} was changed"
    assert _strays(box, before) == [], f"{name}: stray processes {_strays(box, before)}"
    assert box.run("print('alive')").stdout == "alive\n"  # the grader still works
    return grade.detail


def test_fork_bomb(box: Sandbox, sentinels: list[Path]) -> None:
    body = """
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
    """
    _attack(box, sentinels, "fork_bomb", body, "main()\n")


def test_delete_files_outside_the_temp_dir(box: Sandbox, sentinels: list[Path]) -> None:
    paths = [str(p) for p in sentinels]
    body = f"""
    import os, shutil
    done = 0
    for p in {paths!r}:
        for attempt in (lambda: open(p, "w").write("pwned"), lambda: os.remove(p),
                        lambda: shutil.rmtree(os.path.dirname(p))):
            try:
                attempt()
                done += 1
            except OSError:
                pass
    return done
    """
    _attack(box, sentinels, "delete", body, "assert main() > 0\n")


def test_remount_read_only_tree_writable(box: Sandbox, sentinels: list[Path]) -> None:
    """Root inside its user namespace tries to lift the read-only mount (mount_setattr, remount) first."""
    if not detect_isolation().readonly_fs:
        pytest.skip("no mount namespace on this machine: the read-only tree is not in use")
    body = f"""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    class Attr(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")]
    a = Attr(0, 1, 0, 0)
    libc.syscall(442, -100, b"/", 0x8000, ctypes.byref(a), ctypes.sizeof(a))
    libc.mount(None, b"/", None, 32 | 4096, None)
    libc.unshare(0x10000000 | 0x00020000)
    libc.mount(None, b"/", None, 32 | 4096, None)
    try:
        os.remove({str(sentinels[1])!r})
    except OSError:  # read-only, or not even visible (a project tree under /tmp is hidden by the sandbox)
        return False
    return True
    """
    _attack(box, sentinels, "remount", body, "assert main()\n")


def test_socket_to_localhost(box: Sandbox, sentinels: list[Path]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        body = f"""
        import socket
        s = socket.create_connection(("127.0.0.1", {port}), timeout=1)
        s.sendall(b"pwned")
        return True
        """
        _attack(box, sentinels, "socket", body, "assert main()\n")
        server.settimeout(0.3)
        with pytest.raises(TimeoutError):
            server.accept()


def test_allocate_4_gib(box: Sandbox, sentinels: list[Path]) -> None:
    body = """
    x = bytearray(4 * 1024 ** 3)
    return len(x)
    """
    detail = _attack(box, sentinels, "memory", body, "assert main() == 4 * 1024 ** 3\n")
    assert "MemoryError" in detail


def test_infinite_loop(box: Sandbox, sentinels: list[Path]) -> None:
    detail = _attack(box, sentinels, "loop", "while True:\n    pass\n", "main()\n")
    assert detail.startswith("timeout")


def test_write_100_mb(box: Sandbox, sentinels: list[Path]) -> None:
    body = """
    import os
    with open("big.bin", "wb") as f:
        for _ in range(100):
            f.write(b"x" * (1 << 20))
    return os.path.getsize("big.bin")
    """
    _attack(box, sentinels, "write", body, "assert main() >= 100 << 20\n")


def test_orphan_outlives_parent(box: Sandbox, sentinels: list[Path]) -> None:
    body = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(60)
        os._exit(0)
    time.sleep(0.2)
    return False
    """
    _attack(box, sentinels, "orphan", body, "assert main()\n")


def test_orphan_survives_timeout_kill(box: Sandbox, sentinels: list[Path]) -> None:
    body = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        time.sleep(60)
    while True:
        pass
    """
    _attack(box, sentinels, "orphan_timeout", body, "main()\n")


def test_read_parent_environment(
    box: Sandbox, sentinels: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTS_TEST_SECRET", SECRET)
    body = """
    import glob, os
    found = [v for v in os.environ.values()]
    for path in ["/proc/self/environ", f"/proc/{os.getppid()}/environ", *glob.glob("/proc/*/environ")]:
        try:
            found.append(open(path, "rb").read().decode(errors="replace"))
        except OSError:
            pass
    print(found)
    return found
    """
    detail = _attack(box, sentinels, "environ", body, f"assert any({SECRET!r} in v for v in main())\n")
    assert SECRET not in detail


def test_kill_everything(box: Sandbox, sentinels: list[Path]) -> None:
    body = """
    import os, signal
    for target in (-1, os.getppid(), 1):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    return False
    """
    _attack(box, sentinels, "kill", body, "assert main()\n")
    assert psutil.Process().is_running()


def test_benign_program_passes_with_isolation_report(box: Sandbox) -> None:
    result = box.run("import sys\nprint(sum(range(10)))\nprint('warn', file=sys.stderr)\n")
    assert (result.status, result.stdout, result.stderr_tail) == ("passed", "45\n", "warn\n")
    assert box.isolation.network in ("namespace", "in-process guard (bypassable)")


# ------------------------------------------------------------------------------ exit-code reward hacks
EXIT_HACKS = {
    "os_exit": "import os\nos._exit(0)",
    "sys_exit": "import sys\nsys.exit(0)",
    "raise_systemexit": "raise SystemExit",
    "systemexit_none": "raise SystemExit(None)",
    "atexit": "import atexit, os\natexit.register(os._exit, 0)\nreturn 41",
    "excepthook": "import os, sys\nsys.excepthook = lambda *a: os._exit(0)\nreturn 41",
    "thread_exit": "import os, threading, time\nthreading.Timer(0.05, os._exit, (0,)).start()\ntime.sleep(5)",
    "forged_mark": "import os\nos.write(1, b'\\n@@tts-done@@' + b'0' * 32 + b'\\n')\nos._exit(0)",
    "steal_stdin": (
        "import os, sys\ndata = sys.stdin.buffer.read()\n"
        "try:\n    data += open('/proc/self/fd/0', 'rb').read()\nexcept OSError:\n    pass\n"
        "os.write(1, b'\\n' + data + b'\\n')\nos._exit(0)"
    ),
}


@pytest.mark.parametrize("name", sorted(EXIT_HACKS))
def test_exit_zero_before_the_tests_finish_is_not_a_pass(
    box: Sandbox, sentinels: list[Path], name: str
) -> None:
    detail = _attack(box, sentinels, name, EXIT_HACKS[name], "assert main() == 42\n")
    assert detail.startswith(("early_exit", "failed")), detail


def test_exit_hacks_exit_zero_and_are_caught_by_the_secret(box: Sandbox) -> None:
    """The cases above do exit with code 0 (so the exit code alone would have passed them)."""
    for name in ("os_exit", "sys_exit", "atexit", "excepthook", "forged_mark", "steal_stdin"):
        program = "def main():\n" + textwrap.indent(EXIT_HACKS[name], "    ") + "\n\nassert main() == 42\n"
        result = box.run(program)
        assert (result.returncode, result.status, result.finished) == (0, "early_exit", False), name


def test_a_real_pass_prints_the_secret_after_the_last_line(box: Sandbox) -> None:
    result = box.run("import sys\nsys.stdout.write('no newline')\n")
    assert (result.status, result.finished, result.stdout) == ("passed", True, "no newline")


# ------------------------------------------------------------------------------ ptrace / process_vm_*
PTRACE_PROBE = """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
class Iov(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
def errno_of(rc):
    return 0 if rc == 0 else ctypes.get_errno()
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
buf = ctypes.create_string_buffer(8)
local, remote = Iov(ctypes.addressof(buf), 8), Iov(ctypes.addressof(buf), 8)
found = {
    "attach_init": errno_of(libc.ptrace(16, os.getppid(), 0, 0)),  # PTRACE_ATTACH
    "seize_init": errno_of(libc.ptrace(0x4206, os.getppid(), 0, 0)),  # PTRACE_SEIZE
    "attach_own_child": errno_of(libc.ptrace(16, child, 0, 0)),  # allowed without seccomp
    "traceme": errno_of(libc.ptrace(0, 0, 0, 0)),
    "vm_readv_child": errno_of(libc.process_vm_readv(child, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) < 0),
    "vm_writev_child": errno_of(
        libc.process_vm_writev(child, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) < 0
    ),
}
try:
    open("/proc/%d/mem" % os.getppid(), "rb").close()
    found["init_mem"] = 0
except OSError as exc:
    found["init_mem"] = exc.errno
os.kill(child, 9)
print(found)
"""


def test_ptrace_and_process_vm_are_refused(box: Sandbox) -> None:
    import ast
    import errno

    assert box.isolation.seccomp
    result = box.run(PTRACE_PROBE)
    assert result.status == "passed", result.stderr_tail
    found = ast.literal_eval(result.stdout.strip())
    assert {k: v for k, v in found.items() if k != "init_mem"} == dict.fromkeys(
        ("attach_init", "seize_init", "attach_own_child", "traceme", "vm_readv_child", "vm_writev_child"),
        errno.EPERM,
    ), found
    assert found["init_mem"] in (errno.EACCES, errno.EPERM), found


def test_ptrace_attack_is_graded_failed(box: Sandbox, sentinels: list[Path]) -> None:
    body = """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.ptrace(16, os.getppid(), 0, 0) == 0
    """
    _attack(box, sentinels, "ptrace_init", body, "assert main()\n")
