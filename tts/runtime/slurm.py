"""`tts slurm submit`: run a sweep on a Slurm allocation, on a Ray cluster started across it by an sbatch script.

    tts slurm submit +sweep=snell_prm_search engine=gpu --nodes 4 --gpus-per-node 8 --time 12:00:00 \
        [--partition P] [--account A] [--cpus-per-node C] [--requeue] [--stop-before 300] [--dry-run]

Why a generated script and not a Python launcher (submitit) or `ray symmetric-run`: the script is the whole
recipe, written to `results/<sweep>/slurm/` where it can be read, edited and resubmitted with plain `sbatch`,
and it follows Ray's documented Slurm pattern (head via `srun` on the first node, workers via `srun` on the rest,
`ray start --block`). `ray symmetric-run` (Ray 2.60) refuses to start when any Ray runs on the node and ends
with `ray stop`, which stops every Ray of the user on the node, so two jobs sharing a node would collide.

What the script does (`render`), one job at a time:
  - a token of its own (`RAY_AUTH_MODE=token`, `RAY_AUTH_TOKEN` in the job's environment only, never in a file),
    and ports and a Ray temp folder of its own, derived from the job id (`PORT_BLOCK` ports from
    `10000 + (job id % 250) * 200`; `$TMPDIR/ray-tts-<job id>`, or /tmp when that path is long), so two jobs
    on one node do not collide;
  - the Ray head on the first node (the batch host), workers on the other nodes, each with the node's CPUs and
    GPUs; waits for every node (`tts slurm wait-nodes`);
  - `tts sweep <overrides> cluster=ray cluster.address=<head>` (the driver runs on the head node);
  - stops its own Ray processes at the end (never `ray stop`: that would stop other jobs' Ray too).
Stopping and resuming: SIGTERM (preemption, `scancel`) reaches the driver, which stops taking work; finished
cells are written atomically and stay finished. `--stop-before S` asks Slurm for USR1 S seconds before the time
limit: the script then sends the driver SIGTERM, waits for the work in flight, stops Ray and, with `--requeue`,
requeues the job (`scontrol requeue`), which reruns the same sweep command: it resumes, computing no finished
cell. With `--requeue` Slurm also requeues the job itself after a preemption or a node failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PORT_BLOCK = 200  # ports per job: head / node services at base + 0..9, workers at base + 20 .. base + 199
TIME_RE = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")  # Slurm's --time: MM, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]


@dataclass
class SlurmJob:
    """What `tts slurm submit` asks Slurm for."""

    nodes: int
    gpus_per_node: int
    time: str
    partition: str | None = None
    account: str | None = None
    cpus_per_node: int | None = None  # None: 4 per GPU, or (no GPUs) what Slurm gives a task
    requeue: bool = False
    stop_before_s: int = 300  # USR1 this long before the time limit: the sweep stops (and requeues)
    sbatch_args: list[str] = field(default_factory=list)  # more `#SBATCH` lines, e.g. --qos=high

    @property
    def cpus(self) -> int | None:
        return self.cpus_per_node or (4 * self.gpus_per_node if self.gpus_per_node else None)

    def flags(self) -> list[str]:
        """The command-line flags that ask for this job (the script's header repeats them)."""
        out = ["--nodes", str(self.nodes), "--gpus-per-node", str(self.gpus_per_node), "--time", self.time]
        for flag, value in (("--partition", self.partition), ("--account", self.account)):
            if value:
                out += [flag, value]
        if self.cpus_per_node:
            out += ["--cpus-per-node", str(self.cpus_per_node)]
        if self.requeue:
            out.append("--requeue")
        out += ["--stop-before", str(self.stop_before_s)]
        return out + [f"--sbatch={a}" for a in self.sbatch_args]

    def check(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"--nodes: invalid value {self.nodes}; must be >= 1")
        if self.gpus_per_node < 0:
            raise ValueError(f"--gpus-per-node: invalid value {self.gpus_per_node}; must be >= 0")
        if self.cpus_per_node is not None and self.cpus_per_node < 1:
            raise ValueError(f"--cpus-per-node: invalid value {self.cpus_per_node}; must be >= 1")
        if not TIME_RE.match(self.time):
            raise ValueError(
                f"--time: invalid value {self.time!r}; give HH:MM:SS (or D-HH:MM:SS), e.g. 12:00:00"
            )
        if self.stop_before_s < 0:
            raise ValueError(f"--stop-before: invalid value {self.stop_before_s}; must be >= 0 seconds")


def render(
    job: SlurmJob, overrides: list[str], sweep: str, log_dir: Path, workdir: Path, bindir: Path
) -> str:
    """The sbatch script (module docstring). `overrides` are the user's `tts sweep` overrides."""
    sb = [
        f"--job-name=tts-{sweep}",
        f"--nodes={job.nodes}",
        "--ntasks-per-node=1",
        f"--time={job.time}",
        f"--output={log_dir}/%j.out",
        "--open-mode=append",  # a requeued run appends to the same log
        f"--chdir={workdir}",
    ]
    if job.cpus:
        sb.append(f"--cpus-per-task={job.cpus}")
    if job.gpus_per_node:
        sb.append(f"--gpus-per-node={job.gpus_per_node}")
    if job.partition:
        sb.append(f"--partition={job.partition}")
    if job.account:
        sb.append(f"--account={job.account}")
    if job.stop_before_s:
        sb.append(f"--signal=B:USR1@{job.stop_before_s}")
    if job.requeue:
        sb.append("--requeue")
    sb += job.sbatch_args
    cpus = str(job.cpus) if job.cpus else "$SLURM_CPUS_ON_NODE"
    step = f"--ntasks-per-node=1 --cpus-per-task={cpus}"
    if job.gpus_per_node:
        step += f" --gpus-per-task={job.gpus_per_node}"
    sweep_cmd = " ".join(shlex.quote(o) for o in ["tts", "sweep", "--no-live", *overrides])
    submit_cmd = " ".join(shlex.quote(a) for a in ["tts", "slurm", "submit", *overrides, *job.flags()])
    return SCRIPT.format(
        created=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        submit_cmd=submit_cmd,
        sbatch="\n".join(f"#SBATCH {line}" for line in sb),
        bindir=shlex.quote(str(bindir)),
        nodes=job.nodes,
        cpus=cpus,
        gpus=job.gpus_per_node,
        step=step,
        requeue=int(job.requeue),
        block=PORT_BLOCK,
        sweep_cmd=sweep_cmd,
    )


SCRIPT = r"""#!/bin/bash
# tts-sweep on Slurm, written by `tts slurm submit` ({created}):
#   {submit_cmd}
# Edit freely and resubmit with `sbatch <this file>`. What it does (tts/runtime/slurm.py): starts a Ray cluster
# across the allocation (head on the first node, a worker on every other node; token auth; ports and a temp
# folder of this job's own), waits for all nodes, runs the sweep against it, stops its Ray. SIGTERM or USR1 (the
# time limit is near): the sweep takes no new work, finished cells stay finished; a rerun resumes.
{sbatch}
set -uo pipefail
export PATH={bindir}:"$PATH"
export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN="$(python -c 'import secrets; print(secrets.token_hex(32))')"  # this job's own token
export RAY_AUTH_TOKEN
NODES={nodes}
REQUEUE={requeue}
# This job's ports and temp folder (two jobs on one node must not share them).
BASE=$(( 10000 + (SLURM_JOB_ID % 250) * {block} ))
RAY_TMP="${{TMPDIR:-/tmp}}/ray-tts-$SLURM_JOB_ID"  # the job's TMPDIR when Slurm gives one (it cleans it up)
(( ${{#RAY_TMP}} > 40 )) && RAY_TMP="/tmp/ray-tts-$SLURM_JOB_ID"  # Ray's socket paths need a short prefix
rm -rf "$RAY_TMP"  # a requeued run has the same job id
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
HEAD_IP="${{TTS_HEAD_IP:-$(hostname -I | awk '{{print $1}}')}}"  # set TTS_HEAD_IP to use another network
ADDRESS="$HEAD_IP:$BASE"
NODE_ARGS=(--block --disable-usage-stats --temp-dir="$RAY_TMP" --num-cpus={cpus} --num-gpus={gpus}
  --node-manager-port=$((BASE + 1)) --object-manager-port=$((BASE + 2))
  --dashboard-agent-listen-port=$((BASE + 4)) --dashboard-agent-grpc-port=$((BASE + 5))
  --runtime-env-agent-port=$((BASE + 6)) --metrics-export-port=$((BASE + 7))
  --min-worker-port=$((BASE + 20)) --max-worker-port=$((BASE + {block} - 1)))
say() {{ echo "[tts-slurm $(date +%H:%M:%S)] $*"; }}

DRIVER=""
STOPPING=0
stop_sweep() {{  # $1: why. The driver takes no new work, finishes what is in flight, writes it, exits.
  [[ $STOPPING == 1 ]] && return
  STOPPING=1
  say "$1: stopping the sweep (finished cells stay finished; a rerun resumes)"
  [[ -n "$DRIVER" ]] && kill -TERM "$DRIVER" 2>/dev/null
}}
trap 'stop_sweep SIGTERM' TERM
trap 'stop_sweep "time limit near (USR1)"; [[ $REQUEUE == 1 ]] && REQUEUE_NOW=1' USR1
REQUEUE_NOW=0

stop_ray() {{  # this job's Ray only (srun forwards the signal to `ray start --block`, which stops its node)
  [[ -n "${{WORKERS:-}}" ]] && kill -TERM "$WORKERS" 2>/dev/null
  [[ -n "${{HEAD:-}}" ]] && kill -TERM "$HEAD" 2>/dev/null
  rm -rf "$RAY_TMP"  # now as well as after: a cancelled job may be killed (KillWait) while it waits
  wait 2>/dev/null
  rm -rf "$RAY_TMP"
}}

say "job $SLURM_JOB_ID (restart ${{SLURM_RESTART_COUNT:-0}}): Ray head on $HEAD_NODE at $ADDRESS, $NODES node(s)"
srun --nodes=1 --ntasks=1 {step} -w "$HEAD_NODE" \
  ray start --head --node-ip-address="$HEAD_IP" --port="$BASE" --ray-client-server-port=$((BASE + 3)) \
  --include-dashboard=false "${{NODE_ARGS[@]}}" &
HEAD=$!
tts slurm wait-nodes --address "$ADDRESS" --nodes 1 --timeout 300 || {{ stop_ray; exit 1; }}
if (( NODES > 1 )); then
  srun --nodes=$((NODES - 1)) --ntasks=$((NODES - 1)) {step} --exclude="$HEAD_NODE" \
    ray start --address="$ADDRESS" "${{NODE_ARGS[@]}}" &
  WORKERS=$!
fi
tts slurm wait-nodes --address "$ADDRESS" --nodes "$NODES" --timeout 600 || {{ stop_ray; exit 1; }}

if [[ $STOPPING == 0 ]]; then
  {sweep_cmd} cluster=ray "cluster.address=$ADDRESS" cluster.auth_mode=token cluster.fixed_size=true &
  DRIVER=$!
  wait "$DRIVER"; RC=$?
  while kill -0 "$DRIVER" 2>/dev/null; do wait "$DRIVER"; RC=$?; done  # a trapped signal interrupts `wait`
else
  RC=143
fi
say "sweep exited with $RC; stopping Ray"
stop_ray
if [[ $REQUEUE_NOW == 1 ]]; then
  say "requeueing job $SLURM_JOB_ID: the rerun resumes the sweep"
  scontrol requeue "$SLURM_JOB_ID"
fi
exit $RC
"""


def check_devices(grid: Any, job: SlurmJob) -> None:
    """Engines that need GPUs on an allocation without any would wait for ever: refuse before submitting. GPUs
    that no engine asks for are only warned about (the sweep runs, on the CPUs)."""
    need = max(
        (c.config.engine.num_gpus * c.config.engine.tensor_parallel_size for c in grid.cells), default=0
    )
    if need and not job.gpus_per_node:
        raise ValueError(
            f"--gpus-per-node: invalid value 0; the sweep's engines need {need:g} GPU(s) each (engine.num_gpus); "
            "ask for GPUs, or run CPU engines with engine=cpu"
        )
    if need > job.gpus_per_node:
        raise ValueError(
            f"--gpus-per-node: invalid value {job.gpus_per_node}; an engine needs {need:g} GPUs on one node "
            "(engine.tensor_parallel_size)"
        )
    if job.gpus_per_node and not need:
        print(
            f"warning: {job.gpus_per_node} GPU(s) per node asked for, but the engines take none (engine.num_gpus "
            "= 0, e.g. engine=cpu); add engine=gpu to use them",
            file=sys.stderr,
        )


def submit(
    overrides: list[str], job: SlurmJob, *, dry_run: bool = False, sbatch: str = "sbatch"
) -> tuple[Path, str | None]:
    """Write the script to results/<sweep>/slurm/ and submit it; (script path, job id or None on a dry run)."""
    from tts.grid import expand
    from tts.runtime.driver import sweep_dir

    job.check()
    grid = expand([*overrides, "cluster=ray"])  # fails here, before Slurm, on a bad override
    check_devices(grid, job)
    folder = sweep_dir(grid).resolve() / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    script = folder / f"{stamp}.sbatch"
    text = render(job, overrides, grid.name, folder, Path.cwd(), Path(sys.executable).parent)
    script.write_text(text)
    script.chmod(0o755)
    if dry_run:
        return script, None
    if shutil.which(sbatch) is None:
        raise FileNotFoundError(
            f"{sbatch} not found: run this on a Slurm login node (the script is written: {script}; "
            "--dry-run only writes it)"
        )
    out = subprocess.run([sbatch, "--parsable", str(script)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"sbatch refused {script}: {out.stderr.strip() or out.stdout.strip()}")
    return script, out.stdout.strip().split(";")[0]


def wait_nodes(address: str, nodes: int, timeout_s: float) -> int:
    """Wait until the Ray cluster at `address` has `nodes` live nodes; 0 when it has, 1 on timeout."""
    import ray

    deadline = time.monotonic() + timeout_s
    while True:  # the GCS may not listen yet: retry the connection itself
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            break
        except Exception as exc:  # ConnectionError, or Ray's own on a GCS that is still starting
            if time.monotonic() > deadline:
                print(f"error: no Ray cluster at {address} after {timeout_s:.0f} s: {exc}", file=sys.stderr)
                return 1
            time.sleep(2)
    try:
        while True:
            alive = sum(1 for n in ray.nodes() if n.get("Alive"))
            if alive >= nodes:
                print(f"Ray at {address}: {alive} node(s) up", flush=True)
                return 0
            if time.monotonic() > deadline:
                print(
                    f"error: Ray at {address}: {alive} of {nodes} nodes after {timeout_s:.0f} s",
                    file=sys.stderr,
                )
                return 1
            time.sleep(2)
    finally:
        ray.shutdown()


def _submit_parser() -> argparse.ArgumentParser:
    s = argparse.ArgumentParser(
        prog="tts slurm submit",
        description="Writes results/<sweep>/slurm/<time>.sbatch (Ray across the allocation: head on the first "
        "node, workers on the rest, token auth, ports and temp folder of the job's own; then `tts sweep ... "
        "cluster=ray`; then stops its Ray) and submits it. SIGTERM / USR1 before the time limit: the sweep stops "
        "taking work; finished cells stay finished; rerunning resumes. README: 'On Slurm'.",
    )
    s.add_argument("overrides", nargs="*", help="`tts sweep` overrides, e.g. +sweep=smoke engine=gpu")
    s.add_argument("--nodes", type=int, required=True, help="nodes in the allocation (the head is the first)")
    s.add_argument("--gpus-per-node", type=int, required=True, help="GPUs per node (0 for CPU engines)")
    s.add_argument("--time", required=True, help="time limit, HH:MM:SS or D-HH:MM:SS")
    s.add_argument("--partition", default=None)
    s.add_argument("--account", default=None)
    s.add_argument(
        "--cpus-per-node", type=int, default=None, help="CPUs per node (default: 4 per GPU; no GPUs: Slurm's)"
    )
    s.add_argument(
        "--requeue", action="store_true", help="requeue on preemption, node failure and time limit"
    )
    s.add_argument(
        "--stop-before", type=int, default=300, help="seconds before the time limit to stop the sweep (USR1)"
    )
    s.add_argument("--sbatch", action="append", default=[], metavar="ARG", help="another #SBATCH line")
    s.add_argument("--dry-run", action="store_true", help="write the script, do not submit it")
    return s


def _wait_parser() -> argparse.ArgumentParser:
    w = argparse.ArgumentParser(
        prog="tts slurm wait-nodes", description="(used by the script) wait for nodes"
    )
    w.add_argument("--address", required=True)
    w.add_argument("--nodes", type=int, required=True)
    w.add_argument("--timeout", type=float, default=600)
    return w


USAGE = """usage: tts slurm submit [OVERRIDES ...] --nodes K --gpus-per-node G --time HH:MM:SS [--partition P]
                        [--account A] [--cpus-per-node C] [--requeue] [--stop-before S] [--dry-run]
       tts slurm wait-nodes --address HOST:PORT --nodes K [--timeout S]     (used inside the script)
`tts slurm submit -h` explains the options; README, 'On Slurm', the script."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[2:] if argv is None else argv)
    if not argv or argv[0] not in ("submit", "wait-nodes"):
        print(USAGE, file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] == "wait-nodes":
        w = _wait_parser().parse_args(argv[1:])
        return wait_nodes(w.address, w.nodes, w.timeout)
    args = _submit_parser().parse_intermixed_args(argv[1:])
    from tts.config import ConfigError

    job = SlurmJob(
        args.nodes,
        args.gpus_per_node,
        args.time,
        args.partition,
        args.account,
        args.cpus_per_node,
        args.requeue,
        args.stop_before,
        list(args.sbatch),
    )
    try:
        script, job_id = submit(list(args.overrides), job, dry_run=args.dry_run)
    except (ValueError, ConfigError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = script.parent / f"{job_id or '<job id>'}.out"
    if job_id is None:
        print(f"wrote {script} (not submitted: --dry-run); submit it with: sbatch {script}")
        return 0
    print(
        f"submitted job {job_id}: {script}\n"
        f"  log: {log}   (tail -f {log})\n"
        f"  stop: scancel {job_id}; resume: sbatch {script} (finished cells are not recomputed)"
    )
    return 0
