"""Sweeps under Slurm: `tts slurm submit` on a real single-node Slurm that this module starts (Debian's slurmctld,
slurmd and munge, installed by .ci/run), and the driver's SIGTERM handling that Slurm relies on.

The Slurm flow runs the smoke preset with 2 problems a level (34 cells, the real zoo engines on vLLM CPU, Ray
started by the generated script with 2 logical CPUs) through three runs of one sweep folder:
  1. `tts slurm submit ... --requeue`; after the first finished cells, USR1 to the batch shell (what
     `--signal=B:USR1@S` sends S seconds before the time limit): the script stops the driver, which finishes
     the work in flight, stops Ray and requeues the job (`scontrol requeue`);
  2. the requeued run resumes; after more cells, `scancel` (SIGTERM to every process of the job);
  3. the written script resubmitted with `sbatch`: it runs the sweep to completion.
Each rerun must report as "already finished" exactly the cells the folder held before it, and leave their
manifest entries untouched. Slurm holds a requeued job for the credential lifetime (`cred_expire`, 120 s by
default) before it may start again; this cluster sets 10 s. (Forcing `StartTime=now` instead races the revoked
credential of the run before: Slurm kills the job as "non-startable: Job credential revoked".)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tts.store import SweepStore

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
# 5% of RAM per engine's KV cache (conf/engine/cpu.yaml's 20% makes three engines ~15 GB on a 24 GB machine)
SWEEP = [
    "+sweep=smoke",
    "dataset.per_level=2",
    "cluster.max_inflight_per_engine=1",
    "engine.gpu_memory_utilization=0.05",
]
TOTAL = (
    41  # smoke: 2 policies x 15 strong-verifier pool cells + 10 weak-verifier pool cells + 1 beam search cell
)
START = re.compile(r"sweep smoke: \d+ cells, (\d+) already finished")  # each run's first line
SUMMARY = re.compile(
    r"sweep smoke(?P<stopped> stopped by \S+)?.*?: (?P<computed>\d+) cells computed, (?P<skipped>\d+) "
)


# ------------------------------------------------------------------ the driver and SIGTERM (no Slurm needed)
DRIVER = """
import sys
from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.testing.fake_actors import FakeEngineBuilder
grid = expand(["+sweep=smollm2", "results_dir=" + sys.argv[1], "dataset.per_level=2", "cluster.num_cpus=4",
               "cluster.max_inflight_per_engine=1"])
summary = run_sweep(grid, builder=FakeEngineBuilder(delay_s=float(sys.argv[2])), live=False)
print("STOPPED", summary.stopped, summary.computed, summary.skipped, flush=True)
"""


def _finished(root: Path) -> dict[str, Any]:
    return SweepStore(root).verified("cell")[0] if (root / "manifest.jsonl").is_file() else {}


def test_a_sigtermed_driver_finishes_its_work_in_flight_then_a_rerun_recomputes_none_of_it(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path), "0.2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    root = tmp_path / "smollm2"
    deadline = time.monotonic() + 240
    while len(_finished(root)) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    at_signal = len(_finished(root))
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    stopped = out.split("STOPPED")[-1].split()
    print(f"cells finished at SIGTERM: {at_signal}; at exit: {len(_finished(root))}; driver said {stopped}")
    assert proc.returncode == 0 and stopped[0] == "SIGTERM", out[-2000:]
    before = _finished(root)
    assert 5 <= at_signal <= len(before) < 29, "stopped mid-sweep, keeping what it had and what was in flight"
    rerun = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path), "0"], cwd=REPO, env=env, capture_output=True, text=True
    )
    _, computed, skipped = rerun.stdout.split("STOPPED")[-1].split()
    assert (int(skipped), int(computed)) == (len(before), 29 - len(before)), rerun.stdout[-2000:]
    after = SweepStore(root).entries()
    assert all(after[("cell", cid)] == entry for cid, entry in before.items())


# ------------------------------------------------------------------------------------- a real Slurm
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLURM_CONF = """\
ClusterName=ttstest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ReturnToService=2
KillWait=20
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _munge_ok() -> bool:
    try:
        return (
            subprocess.run("munge -n | unmunge", shell=True, capture_output=True, timeout=10).returncode == 0
        )
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A one-node Slurm (slurmctld + slurmd as root, munge auth) of this module's own; the environment for
    its commands (SLURM_CONF)."""
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "munged") if shutil.which(b) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root and Slurm ({', '.join(missing) or 'not root'}): .ci/run installs them")
    root = tmp_path_factory.mktemp("slurm")
    for d in ("state", "spool"):
        (root / d).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            root=root, ctld_port=_free_port(), slurmd_port=_free_port(), cpus=os.cpu_count() or 2
        )
    )
    # the jobs' Ray: no memory monitor (it judges the whole shared machine, not the job; see ray_cluster.py)
    env = {**os.environ, "SLURM_CONF": str(conf), "RAY_memory_monitor_refresh_ms": "0"}
    procs: list[subprocess.Popen[bytes]] = []
    if not _munge_ok():
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        procs.append(subprocess.Popen(["runuser", "-u", "munge", "--", "munged", "--foreground"]))
        deadline = time.monotonic() + 20
        while not _munge_ok() and time.monotonic() < deadline:
            time.sleep(0.2)
    logs = open(root / "daemons.out", "wb")  # noqa: SIM115 - closed at teardown
    procs.append(
        subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=env, stdout=logs, stderr=logs)
    )
    procs.append(
        subprocess.Popen(
            ["slurmd", "-D", "-N", "localhost", "-f", str(conf)], env=env, stdout=logs, stderr=logs
        )
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout
        if out.strip() == "idle":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"Slurm did not come up: {(root / 'slurmctld.log').read_text()[-2000:]}")
    try:
        yield env
    finally:
        subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True)
        time.sleep(2)
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        logs.close()


def _job(env: dict[str, str], job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "-o", "show", "job", job_id], env=env, capture_output=True, text=True
    ).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def _wait(what: str, check: Any, timeout: float = 900) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _summaries(log: Path) -> list[dict[str, Any]]:
    return [m.groupdict() for m in SUMMARY.finditer(log.read_text())] if log.is_file() else []


def _starts(log: Path) -> list[int]:
    """Per run of the sweep command in this log: the cells it found finished."""
    return [int(n) for n in START.findall(log.read_text())] if log.is_file() else []


@pytest.fixture(scope="module")
def flow(slurm: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The three runs of the module docstring; what each saw and left."""
    results = tmp_path_factory.mktemp("results")
    root = results / "smoke"
    submit = subprocess.run(
        ["tts", "slurm", "submit", *SWEEP, f"results_dir={results}", "--nodes", "1", "--gpus-per-node", "0"]
        + ["--cpus-per-node", str(os.cpu_count() or 2), "--time", "00:40:00", "--requeue"],
        cwd=REPO,
        env=slurm,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submit.returncode == 0, submit.stderr
    job = re.search(r"submitted job (\d+)", submit.stdout).group(1)
    (script,) = (root / "slurm").glob("*.sbatch")
    log = root / "slurm" / f"{job}.out"
    t0 = time.monotonic()

    # run 1: the time limit is near (USR1 to the batch shell): stop, requeue
    _wait("the first finished cells", lambda: _finished(root))
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm, check=True)
    _wait("the requeue", lambda: _job(slurm, job).get("Restarts") == "1", timeout=300)
    before_requeue = _finished(root)

    def started() -> bool:  # a requeued job waits cred_expire (10 s here) before it may start again
        return _job(slurm, job).get("JobState") == "RUNNING"

    _wait("the requeued run", started, timeout=300)

    # run 2: resumes; scancel after it finished more cells
    _wait("more finished cells", lambda: len(_finished(root)) > len(before_requeue))
    subprocess.run(["scancel", job], env=slurm, check=True)
    _wait("the cancellation", lambda: _job(slurm, job).get("JobState") == "CANCELLED", timeout=120)
    before_resubmit = _finished(root)

    # run 3: the written script, resubmitted
    again = subprocess.run(["sbatch", "--parsable", str(script)], env=slurm, capture_output=True, text=True)
    job2 = again.stdout.strip()
    _wait(
        "the resubmitted job",
        lambda: _job(slurm, job2).get("JobState") in ("COMPLETED", "FAILED", "CANCELLED"),
    )
    print(f"Slurm flow: {time.monotonic() - t0:.0f} s for 3 runs")
    return {
        "root": root,
        "script": script,
        "log1": log,
        "log2": root / "slurm" / f"{job2}.out",
        "job2": _job(slurm, job2),
        "before_requeue": before_requeue,
        "before_resubmit": before_resubmit,
    }


def test_slurm_submit_runs_the_smoke_sweep_to_completion_on_a_ray_cluster_it_starts(
    flow: dict[str, Any],
) -> None:
    assert flow["job2"]["JobState"] == "COMPLETED" and flow["job2"]["ExitCode"] == "0:0", flow[
        "log2"
    ].read_text()[-3000:]
    final = _finished(flow["root"])
    assert len(final) == TOTAL and all(e.status == "ok" for e in final.values())
    text = flow["script"].read_text()
    assert "ray start --head" in text and "RAY_AUTH_MODE=token" in text, "the script is kept in the results"
    log = flow["log2"].read_text()
    assert "Ray at " in log and "node(s) up" in log and "sweep exited with 0; stopping Ray" in log


def test_usr1_before_the_time_limit_requeues_and_the_requeued_run_recomputes_no_finished_cell(
    flow: dict[str, Any],
) -> None:
    log = flow["log1"]
    first = _summaries(log)[0]
    n = len(flow["before_requeue"])
    print(f"run 1: {first['computed']} cells, then USR1; the requeued run found {_starts(log)[1:]} finished")
    assert first["stopped"] == " stopped by SIGTERM" and 0 < n < TOTAL and int(first["computed"]) == n
    assert "requeueing job" in log.read_text()
    assert _starts(log) == [0, n], "the requeued run resumed: it found every cell of run 1 finished"


def test_scancel_mid_sweep_then_a_resubmit_recomputes_none_of_the_cells_finished_before(
    flow: dict[str, Any],
) -> None:
    before = flow["before_resubmit"]
    assert _starts(flow["log2"]) == [len(before)]
    (last,) = _summaries(flow["log2"])
    print(f"finished before the resubmit: {len(before)}; the resubmitted run computed {last['computed']}")
    assert len(flow["before_requeue"]) < len(before) < TOTAL
    assert (int(last["skipped"]), int(last["computed"])) == (len(before), TOTAL - len(before))
    after = SweepStore(flow["root"]).entries()
    assert all(after[("cell", cid)] == entry for cid, entry in before.items()), (
        "finished cells were rewritten"
    )
