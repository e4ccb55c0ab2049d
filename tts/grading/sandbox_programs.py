"""The programs the sandbox runs: the bootstrap that builds the isolation inside the new namespaces before the
candidate runs, the probe that checks a sandbox really isolates, and the seccomp deny list they install.

Why a module of its own: this is trusted code shipped as text (it runs under the candidate's interpreter,
possibly a system Python, so it is stdlib-only), read by tts.grading.sandbox; keeping it apart keeps the
sandbox's process handling readable.
"""

from __future__ import annotations

# seccomp deny list (EPERM) per machine: audit arch, then ptrace, process_vm_readv, process_vm_writev,
# pidfd_getfd, process_madvise. Another architecture: no seccomp (Isolation.notes says so).
SECCOMP_DENY = {
    "x86_64": (0xC000003E, 101, 310, 311, 438, 440),
    "aarch64": (0xC00000B7, 117, 270, 271, 438, 440),
}


# ----------------------------------------------------------------------------------------------- bootstrap
# Runs inside the sandbox before the candidate: argv = [mode, tmpfs_mb, hidden dirs ":"-joined]. The candidate
# program is main.py in the cwd. Trusted code; keep it small and stdlib-only (it may run under a system Python).
BOOTSTRAP = r"""
import os, sys
def _fail(step, detail):
    sys.stderr.write("tts-sandbox: setup failed: %s: %s\n" % (step, detail)); sys.stderr.flush(); os._exit(97)
mode, tmpfs_mb, hidden = sys.argv[1], int(sys.argv[2]), [p for p in sys.argv[3].split(":") if p]
deny = [int(x, 0) for x in sys.argv[4].split(",") if x]  # [audit arch, syscall numbers...] or []
src = open("main.py", "rb").read()
done = sys.stdin.buffer.read(256)  # this run's secret; the pipe is then at EOF, as /dev/null would be
if mode == "namespaces":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    def _ok(rc, step):
        if rc != 0:
            _fail(step, os.strerror(ctypes.get_errno()))
    class _Attr(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")]
    def _setattr(path, set_, clr):
        a = _Attr(set_, clr, 0, 0)  # mount_setattr(AT_FDCWD, path, AT_RECURSIVE, attr, size): syscall 442
        _ok(libc.syscall(442, -100, path.encode(), 0x8000, ctypes.byref(a), ctypes.sizeof(a)), "mount_setattr " + path)
    wd = os.getcwd()
    for d in hidden:
        if os.path.isdir(d) and not os.path.islink(d):
            _ok(libc.mount(b"tmpfs", d.encode(), b"tmpfs", 2 | 4, b"size=1m,mode=0755"), "hide " + d)
    os.makedirs(wd, exist_ok=True)
    opts = ("size=%dm,mode=0700" % tmpfs_mb).encode()
    _ok(libc.mount(b"tmpfs", wd.encode(), b"tmpfs", 2 | 4, opts), "tmpfs cwd")
    os.chdir(wd)
    with open("main.py", "wb") as f:
        f.write(src)
    _setattr("/", 1 | 2, 0)  # read-only, nosuid: everything
    _setattr(wd, 0, 1)  # ... but the cwd
    _setattr("/proc", 0, 1)  # ... and this namespace's /proc (the uid map below is written there)
    _ok(libc.unshare(0x10000000 | 0x00020000), "lock mounts")  # CLONE_NEWUSER | CLONE_NEWNS
    for name, value in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
        with open("/proc/self/" + name, "w") as f:
            f.write(value)
    child = os.fork()
    if child:  # PID 1: reap everything, exit with the candidate's status; the kernel then kills the rest
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no /proc/1/mem, no ptrace from the nested namespace
        while True:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                os._exit(1)
            if pid == child:
                code = os.waitstatus_to_exitcode(status)
                os._exit(code if code >= 0 else 128 - code)
elif mode == "plain":  # no network namespace: a bypassable guard, better than nothing
    import socket
    def _no_net(*a, **k):
        raise PermissionError("network access is disabled in the tts sandbox")
    class _NoSocket(socket.socket):
        def __init__(self, *a, **k):
            _no_net()
    socket.socket = _NoSocket
    socket.create_connection = socket.getaddrinfo = socket.socketpair = _no_net
if deny:  # seccomp: ptrace, process_vm_readv/writev, pidfd_getfd, process_madvise -> EPERM
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    class _Ins(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]
    class _Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Ins))]
    EPERM, ALLOW = 0x00050001, 0x7FFF0000
    ins = [(0x20, 0, 0, 4), (0x15, 1, 0, deny[0]), (0x06, 0, 0, EPERM), (0x20, 0, 0, 0)]
    if deny[0] == 0xC000003E:  # x86-64: x32 syscall numbers (bit 30) are refused too
        ins += [(0x35, 0, 1, 0x40000000), (0x06, 0, 0, EPERM)]
    for nr in deny[1:]:
        ins += [(0x15, 0, 1, nr), (0x06, 0, 0, EPERM)]
    ins.append((0x06, 0, 0, ALLOW))
    arr = (_Ins * len(ins))(*[_Ins(*i) for i in ins])
    prog = _Prog(len(ins), arr)
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
        _fail("seccomp", os.strerror(ctypes.get_errno()))
    del ctypes, libc, _Ins, _Prog, ins, arr, prog
del mode, tmpfs_mb, hidden, deny
sys.argv = ["main.py"]
import runpy
runpy.run_path("main.py", run_name="__main__")
for _stream in (sys.stdout, sys.stderr):  # the candidate's output first, then the proof that it all ran
    try:
        _stream.flush()
    except BaseException:
        pass
os.write(1, b"\n" + done + b"\n")
"""

PROBE = """
import errno, socket
try:
    socket.create_connection(("127.0.0.1", 9), timeout=2)
except PermissionError:
    pass
except OSError as exc:
    if exc.errno != errno.ENETUNREACH:
        raise SystemExit("network reachable: %r" % exc)
else:
    raise SystemExit("network reachable")
print("tts-sandbox-ok")
"""
