"""The local Ray that `connect()` starts (tts.runtime.local_ray.init_local) listens on loopback only and keeps
its files in a private 0700 folder: `ss -ltnp` during a task and an actor shows no 0.0.0.0 / * / [::]
listener owned by any Ray process of the session (the driver and all its descendants)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

PROBE = textwrap.dedent(
    """
    import json, os, stat, subprocess, time
    import psutil
    from tts.runtime.local_ray import init_local

    temp = init_local(1, auth_mode="token", log_to_driver=False)
    import ray

    @ray.remote
    class Echo:
        def ping(self):
            return os.getpid()

    @ray.remote
    def task():
        return os.getpid()

    actor = Echo.remote()
    pids = ray.get([task.remote(), actor.ping.remote()])
    time.sleep(1.0)
    ours = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    listeners = []
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines():
        owners = [p for p in ours if f"pid={p}," in line]
        if owners:
            listeners.append([line.split()[3], psutil.Process(owners[0]).name()])
    print(json.dumps({
        "listeners": listeners,
        "mode": stat.S_IMODE(os.stat(temp).st_mode),
        "temp": str(temp),
        "node_ip": ray.nodes()[0]["NodeManagerAddress"],
        "workers_seen": pids,
        "auth": os.environ.get("RAY_AUTH_MODE"),
    }))
    ray.shutdown()
    """
)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_local_ray_listens_on_loopback_only_with_a_private_temp_dir() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("RAY_AUTH_MODE", None)  # as a user's shell: init_local sets it before importing ray
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    print(found)
    assert found["node_ip"] == "127.0.0.1" and found["auth"] == "token"
    assert found["listeners"], "no Ray listener seen: the check would pass vacuously"
    loopback = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")
    exposed = [entry for entry in found["listeners"] if not entry[0].startswith(loopback)]
    assert exposed == [], exposed
    assert found["mode"] == 0o700
    assert len(found["temp"]) + 70 <= 107  # room for Ray's socket paths
    assert not os.path.exists(found["temp"])  # removed at exit
