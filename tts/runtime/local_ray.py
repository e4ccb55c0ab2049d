"""Start the local Ray (the default on one machine) so that nothing listens beyond this machine and nobody
else can reach its files: every Ray server on 127.0.0.1, no dashboard, a private temp folder, token auth.

Why each setting (Ray 2.60, checked with `ss -ltnp` in tests/integration/test_local_ray_exposure.py):
- Loopback only. A plain `ray.init()` binds the GCS, raylet, object manager and every core worker's gRPC server
  to `*` (all interfaces, IPv4 and IPv6), the autoscaler monitor to 0.0.0.0 and the runtime-env agent to the
  machine's external address. Ray binds them to loopback when the node IP is 127.0.0.1, but `ray.init`
  (worker.py) and `ray start` (scripts.py) both pass `_node_ip_address` through
  `services.resolve_ip_for_localhost`, which on purpose swaps 127.0.0.1 for the external IP. So for the
  duration of `ray.init` only, that one private function is replaced by the identity; with it every Ray
  process of the session listens on 127.0.0.1 (`[::ffff:127.0.0.1]` for the C++ servers). If a Ray upgrade
  drops the function, `init_local` logs a warning and starts Ray without it (the integration test then
  fails, which is the signal to revisit). The alternative for a Ray where neither works: run local sweeps in
  a network namespace (`unshare -rn`) or behind a host firewall.
- No dashboard (`include_dashboard=False`; if asked for, on 127.0.0.1 only).
- A private temp folder: `tempfile.mkdtemp` (mode 0700, ours) holding Ray's `_temp_dir`. Ray makes its own
  temp folder world-writable (0777); the 0700 parent makes it unreachable for other users all the same.
  Unix socket paths are limited to 107 bytes and Ray adds about 63
  (`/session_<date>_<time>_<us>_<pid>/sockets/plasma_store`), so the parent lives in a short folder
  (`$TMPDIR` when short enough, else /tmp). It is removed at exit, after Ray's own shutdown.
- Token auth: `RAY_AUTH_MODE` is set to the cluster config's `auth_mode`; "token" works locally with this Ray
  (the token is written to ~/.ray/auth_token), "disabled" is for tests that start many short clusters. Ray
  reads the variable when it is imported: set before `import ray` (the driver imports it lazily), or exported.
- A watchdog (tts/runtime/watchdog.py), started before `ray.init`: if the driver dies (`kill -9` included) it
  ends every process of the session within seconds (Ray alone leaves its agents up for ~60-80 s) and removes
  the private folder; `shutdown()` (ray.shutdown, then stop the watchdog) ends a session normally.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tts.runtime import watchdog

log = logging.getLogger(__name__)
_watchdog: watchdog.Watchdog | None = None  # the watchdog of the session init_local started

LOOPBACK = "127.0.0.1"
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
RAY_SOCKET_SUFFIX = len("/ray/session_2026-12-03_09-19-16_458551_1234567/sockets/plasma_store")


def private_temp_dir() -> Path:
    """A fresh 0700 folder short enough for Ray's unix sockets; removed at interpreter exit."""
    base = tempfile.gettempdir()
    if len(base) + len("/tts-ray-xxxxxxxx") + RAY_SOCKET_SUFFIX > SOCKET_PATH_MAX:
        base = "/tmp"
    path = Path(tempfile.mkdtemp(prefix="tts-ray-", dir=base))
    os.chmod(path, 0o700)
    atexit.register(shutil.rmtree, path, True)  # registered before ray.init: runs after Ray's shutdown
    return path


def local_init_kwargs(
    num_cpus: int | None, num_gpus: int | None, log_to_driver: bool, temp_dir: Path
) -> dict[str, Any]:
    """The `ray.init` arguments of a local cluster (module docstring)."""
    return {
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "include_dashboard": False,
        "dashboard_host": LOOPBACK,
        "log_to_driver": log_to_driver,
        "_node_ip_address": LOOPBACK,
        "_temp_dir": str(temp_dir / "ray"),
    }


@contextlib.contextmanager
def _keep_loopback() -> Iterator[None]:
    """Let `_node_ip_address=127.0.0.1` through Ray's localhost -> external IP rewrite (module docstring)."""
    try:
        from ray._private import services
    except ImportError:
        services = None
    original = getattr(services, "resolve_ip_for_localhost", None)
    if original is None:
        log.warning(
            "local Ray: cannot keep it on 127.0.0.1 with this Ray version; it may listen on all interfaces"
        )
        yield
        return
    services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = original


def init_local(
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    *,
    auth_mode: str = "token",
    log_to_driver: bool = True,
) -> Path:
    """`ray.init` a local cluster on 127.0.0.1 with a private temp folder and `RAY_AUTH_MODE=auth_mode`;
    returns the private folder (mode 0700)."""
    before = os.environ.get("RAY_AUTH_MODE")
    if "ray" in sys.modules and before not in (None, auth_mode):
        log.warning(
            "local Ray: RAY_AUTH_MODE was %r when ray was imported; Ray reads it at import, so auth_mode=%r "
            "may not take effect: export RAY_AUTH_MODE=%s before starting",
            before,
            auth_mode,
            auth_mode,
        )
    os.environ["RAY_AUTH_MODE"] = auth_mode
    import ray

    global _watchdog
    temp_dir = private_temp_dir()
    stop_watchdog()  # one session at a time: a previous one was shut down without `shutdown()`
    _watchdog = watchdog.start(temp_dir)
    if _watchdog is not None:
        atexit.register(stop_watchdog)  # runs before Ray's own atexit shutdown: a normal exit is not a death
    try:
        with _keep_loopback():
            ray.init(**local_init_kwargs(num_cpus, num_gpus, log_to_driver, temp_dir))
    except BaseException:
        stop_watchdog()
        raise
    return temp_dir


def stop_watchdog() -> None:
    """Tell the session's watchdog that the session ended normally (it exits and touches nothing)."""
    global _watchdog
    if _watchdog is not None:
        _watchdog.stop()
        _watchdog = None


def shutdown() -> None:
    """`ray.shutdown()`, then stop the local session's watchdog (if `init_local` started one)."""
    import ray

    ray.shutdown()
    stop_watchdog()
