"""`tts export DIR --to mlflow|wandb`: runs, parameters, metrics and artifacts read back equal what report.md shows.

MLflow: a real local tracking store (a file store: mlflow-skinny, the extra, has no SQL store), read back through MlflowClient; a second export changes nothing
(idempotent). W&B: offline mode, read back from the run files it writes (its transaction log, run-<id>.wandb). The
folder: a small sweep on the fake engines through the real Ray runtime, analyzed by `tts analyze`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tts.cli import main
from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.testing.fake_actors import FakeEngineBuilder

pytestmark = pytest.mark.integration
SETS = ["--set", "replicates=20"]


@pytest.fixture(scope="module")
def analyzed(ray_local: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    grid = expand(
        [
            f"results_dir={root}",
            "sweep.name=exp",
            "strategy=best_of_n,majority_vote",
            "n=1,2,4",
            "prm=rule_arithmetic",
            "dataset.per_level=3",
        ]
    )
    assert run_sweep(grid, builder=FakeEngineBuilder(), live=False).failed == 0
    assert main(["analyze", str(root / "exp"), *SETS]) == 0
    return root / "exp"


def _md_table(report: str, heading: str) -> list[dict[str, str]]:
    block = report.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")), strict=True)) for ln in lines[2:]]


def _expected(folder: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    report = (folder / "report.md").read_text()
    return _md_table(report, "## Compute accounting"), _md_table(report, "## Generation-matched")


def test_mlflow_export_reads_back_as_the_report_shows(
    analyzed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this opt-in
    uri = (tmp_path / "mlruns").as_uri()  # a file store: mlflow-skinny has no SQL store
    args = ["export", str(analyzed), "--to", "mlflow", "--tracking-uri", uri, *SETS]
    assert main(args) == 0
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tts-exp")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    configs = [r for r in runs if r.data.tags.get("tts.kind") == "configuration"]
    sweep = [r for r in runs if r.data.tags.get("tts.kind") == "sweep"]
    accounting, winners = _expected(analyzed)
    assert len(sweep) == 1 and len(configs) == len(accounting) == 6

    def find(**params: str) -> Any:
        hits = [r for r in configs if all(r.data.params.get(k) == v for k, v in params.items())]
        assert len(hits) == 1, params
        return hits[0]

    for row in accounting:
        run = find(policy=row["policy"], prm=row["prm"], strategy=row["strategy"], n=row["n"])
        assert run.data.params["hyperparams"] == row["hyperparams"]
        assert run.data.tags["mlflow.parentRunId"] == sweep[0].info.run_id
        assert f"{run.data.metrics['accuracy']:.3f}" == row["accuracy"]
        assert float(row["generations"]) == pytest.approx(run.data.metrics["generations"], abs=1e-3)
        assert float(row["flops"]) == pytest.approx(run.data.metrics["flops"], rel=1e-2)
    checked = 0
    for w in winners:
        hp = w["hyperparameters"].replace(" (incomplete)", "")
        run = find(policy=w["policy"], strategy=w["chosen strategy"], n=w["N"], hyperparams=hp)
        key = f"heldout_accuracy.bin_{w['bin']}.budget_{w['budget (generations)']}"
        value, ci = w["held-out accuracy [CI]"].split(" ", 1)
        assert f"{run.data.metrics[key]:.3f}" == value
        lo, hi = ci.strip("[]").split(", ")
        assert (f"{run.data.metrics[key + '.ci_low']:.3f}", f"{run.data.metrics[key + '.ci_high']:.3f}") == (
            lo,
            hi,
        )
        checked += 1
    assert checked == len(winners) > 0
    names = {a.path for a in client.list_artifacts(sweep[0].info.run_id)}
    assert {"report.md", "report.html", "plots"} <= names
    plots = {a.path for a in client.list_artifacts(sweep[0].info.run_id, "plots")}
    assert plots == {f"plots/{p.name}" for p in (analyzed / "plots").glob("*.png")} and plots

    # idempotent: a second export adds no run and changes no value
    before = {r.info.run_id: (r.data.params, r.data.metrics) for r in runs}
    assert main(args) == 0
    again = client.search_runs([exp.experiment_id], max_results=1000)
    assert {r.info.run_id: (r.data.params, r.data.metrics) for r in again} == before


def _wandb_records(path: Path) -> Iterator[Any]:
    """The records of an offline run's transaction log (run-<id>.wandb): a 7-byte W&B header, then LevelDB-log
    framing (32 KiB blocks; 7-byte chunk headers: crc, little-endian length, type full/first/middle/last) of
    wandb_internal_pb2.Record messages. wandb ships no Python reader for it (wandb-core writes it)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, buf = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if left < 7 or kind == 0:  # block trailer / zero padding
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            yield rec


def _wandb_runs(out: Path) -> dict[str, dict[str, Any]]:
    """run id -> name, config, summary and saved files, read back from the offline runs under `out`."""
    runs: dict[str, dict[str, Any]] = {}
    for log in sorted((out / "wandb").glob("offline-run-*/run-*.wandb")):
        run: dict[str, Any] = {"config": {}, "summary": {}, "files": set()}
        for rec in _wandb_records(log):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                run["id"], run["name"] = rec.run.run_id, rec.run.display_name
                run["config"].update({u.key: json.loads(u.value_json) for u in rec.run.config.update})
            elif kind == "config":
                run["config"].update({u.key: json.loads(u.value_json) for u in rec.config.update})
            elif kind == "summary":
                run["summary"].update({u.key: json.loads(u.value_json) for u in rec.summary.update if u.key})
            elif kind == "files":
                run["files"] |= {f.path for f in rec.files.files}
        runs[run["id"]] = run
    return runs


def test_wandb_offline_export_writes_each_configuration(
    analyzed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    out = tmp_path / "wb"
    args = ["export", str(analyzed), "--to", "wandb", "--mode", "offline", "--wandb-dir", str(out), *SETS]
    assert main(args) == 0
    runs = _wandb_runs(out)
    accounting, winners = _expected(analyzed)
    configs = [r for r in runs.values() if "strategy" in r["config"]]
    sweep = [r for r in runs.values() if "strategy" not in r["config"]]
    assert len(configs) == len(accounting) and len(sweep) == 1
    for row in accounting:
        keys = ("policy", "prm", "strategy", "n", "hyperparams")
        hits = [r for r in configs if all(r["config"][k] == row[k] for k in keys)]
        assert len(hits) == 1, row
        assert f"{hits[0]['summary']['accuracy']:.3f}" == row["accuracy"]
        assert float(row["generations"]) == pytest.approx(hits[0]["summary"]["generations"], abs=1e-3)
    for w in winners:
        hp = w["hyperparameters"].replace(" (incomplete)", "")
        want = {"policy": w["policy"], "strategy": w["chosen strategy"], "n": w["N"], "hyperparams": hp}
        (run,) = [r for r in configs if all(r["config"][k] == v for k, v in want.items())]
        key = f"heldout_accuracy.bin_{w['bin']}.budget_{w['budget (generations)']}"
        assert f"{run['summary'][key]:.3f}" == w["held-out accuracy [CI]"].split(" ")[0]
    assert {"report.md", "report.html"} <= sweep[0]["files"]
    assert {f"plots/{p.name}" for p in (analyzed / "plots").glob("*.png")} <= sweep[0]["files"]
    # idempotent: a second export resumes the same run ids
    assert main(args) == 0
    assert set(_wandb_runs(out)) == set(runs)
