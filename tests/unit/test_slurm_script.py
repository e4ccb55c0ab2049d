"""`tts slurm submit`: the sbatch script it writes (bash syntax, what it asks Slurm for, how it starts Ray, per-job
ports and token, how it stops), checked without Slurm (`--dry-run`); tests/integration/test_slurm.py runs it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tts.runtime.slurm import PORT_BLOCK, SlurmJob, main, render

OVERRIDES = ["+sweep=smoke", "dataset.per_level=2"]


def _script(**kw: object) -> str:
    job = SlurmJob(**{"nodes": 4, "gpus_per_node": 8, "time": "12:00:00", **kw})
    return render(job, OVERRIDES, "smoke", Path("/r/smoke/slurm"), Path("/work"), Path("/venv/bin"))


def test_script_is_valid_bash_and_asks_slurm_for_the_allocation() -> None:
    text = _script(partition="gpu", account="lab", requeue=True, sbatch_args=["--qos=high"])
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    sbatch = re.findall(r"^#SBATCH (.*)$", text, flags=re.M)
    for line in (
        "--nodes=4",
        "--ntasks-per-node=1",
        "--gpus-per-node=8",
        "--cpus-per-task=32",  # 4 CPUs per GPU by default
        "--time=12:00:00",
        "--partition=gpu",
        "--account=lab",
        "--requeue",
        "--signal=B:USR1@300",
        "--qos=high",
        "--output=/r/smoke/slurm/%j.out",
        "--open-mode=append",
        "--chdir=/work",
    ):
        assert line in sbatch, line
    assert "tts slurm submit +sweep=smoke dataset.per_level=2 --nodes 4 --gpus-per-node 8" in text


def test_script_starts_a_head_and_workers_with_token_auth_and_runs_the_sweep_against_them() -> None:
    text = _script()
    assert "export RAY_AUTH_MODE=token" in text and "secrets.token_hex(32)" in text
    head = text[text.index("ray start --head") - 120 :]
    assert '-w "$HEAD_NODE"' in head and "--gpus-per-task=8" in head and "--include-dashboard=false" in head
    assert '--exclude="$HEAD_NODE"' in text and 'ray start --address="$ADDRESS"' in text
    assert "--num-cpus=32 --num-gpus=8" in text and '--temp-dir="$RAY_TMP"' in text
    assert 'tts slurm wait-nodes --address "$ADDRESS" --nodes "$NODES"' in text
    assert (
        'tts sweep --no-live +sweep=smoke dataset.per_level=2 cluster=ray "cluster.address=$ADDRESS" '
        "cluster.auth_mode=token cluster.fixed_size=true &"
    ) in text
    assert "ray stop" not in text.replace("`ray stop`", ""), "never `ray stop`: it stops other jobs' Ray too"


def test_two_jobs_get_disjoint_ports_and_temp_folders() -> None:
    text = _script()
    base_line = next(ln for ln in text.splitlines() if ln.startswith("BASE="))

    def base(job_id: int) -> int:
        out = subprocess.run(
            ["bash", "-c", f"SLURM_JOB_ID={job_id}; {base_line}; echo $BASE"], capture_output=True, text=True
        )
        return int(out.stdout)

    bases = sorted(base(j) for j in range(1000, 1250))  # 250 consecutive job ids
    assert all(b2 - b1 >= PORT_BLOCK for b1, b2 in zip(bases, bases[1:], strict=False))
    assert bases[0] >= 10000 and bases[-1] + PORT_BLOCK <= 65536
    assert (
        'RAY_TMP="${TMPDIR:-/tmp}/ray-tts-$SLURM_JOB_ID"' in text
        and 'RAY_TMP="/tmp/ray-tts-$SLURM_JOB_ID"' in text
    )


def test_sigterm_and_usr1_stop_the_driver_and_usr1_requeues_only_when_asked() -> None:
    text = _script(requeue=True, stop_before_s=120)
    assert "#SBATCH --signal=B:USR1@120" in text
    assert "trap 'stop_sweep SIGTERM' TERM" in text and 'kill -TERM "$DRIVER"' in text
    assert "REQUEUE=1" in text and 'scontrol requeue "$SLURM_JOB_ID"' in text
    assert "REQUEUE=0" in _script()
    assert "--signal" not in _script(stop_before_s=0)


def test_dry_run_writes_the_script_to_the_results_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["submit", *OVERRIDES, f"results_dir={tmp_path}", "--nodes", "1", "--gpus-per-node", "0"]
    assert main([*argv, "--time", "00:30:00", "--dry-run"]) == 0
    (script,) = (tmp_path / "smoke" / "slurm").glob("*.sbatch")
    assert str(script) in capsys.readouterr().out
    text = script.read_text()
    assert "#SBATCH --gpus" not in text and "--num-gpus=0" in text and "$SLURM_CPUS_ON_NODE" in text
    assert f"results_dir={tmp_path}" in text


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--time", "12h"], "--time"),
        (["--time", "01:00:00", "--nodes", "0"], "--nodes"),
        (["--time", "01:00:00", "strategy=nope"], "strategy"),
        (["--time", "01:00:00", "engine=gpu"], "--gpus-per-node"),  # GPU engines, no GPUs asked for
    ],
)
def test_bad_arguments_fail_before_slurm_naming_the_field(
    extra: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["submit", *OVERRIDES, f"results_dir={tmp_path}", "--nodes", "1", "--gpus-per-node", "0", *extra]
    assert main([*argv, "--dry-run"]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "smoke").exists()
