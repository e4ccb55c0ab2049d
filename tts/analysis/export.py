"""`tts export DIR --to mlflow|wandb`: a sweep's analysis into an experiment tracker, one run per configuration.

    tts export results/smoke --to mlflow --tracking-uri ./mlruns     # pip install 'tts-sweep[mlflow]'
    tts export results/smoke --to wandb --project tts-smoke [--mode offline]    # pip install 'tts-sweep[wandb]'

Why: labs keep their runs in MLflow or Weights & Biases. Each configuration (`config_id`: every config field but
the seed) becomes a run whose parameters are its configuration (policy, PRM, strategy, N, hyperparameters,
dataset) and whose metrics are what report.md shows for it: accuracy per difficulty bin and over all problems,
generations, tokens and FLOPs spent per problem, and the held-out accuracy (with CI bounds) of every budget and
bin it wins in the generation-matched table. A parent run per sweep carries report.md, report.html and the plots
as artifacts. Re-exporting is idempotent: runs are found again by their tags (tts.sweep, tts.config_id) or, in
W&B, by a run id derived from them, and updated in place. The numbers come from the same analysis as the report
(tts.analysis.summary / tables, same analysis config and seed), so they equal it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tts.analysis.keys import ALL_BIN

PARAM_COLUMNS = ("policy", "prm", "strategy", "n", "hyperparams", "aggregation", "temperature", "dataset")


@dataclass
class ConfigRun:
    """What one configuration's run holds."""

    config_id: str
    name: str
    params: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class SweepExport:
    """A sweep's runs and the files its parent run carries."""

    sweep: str
    method: str
    runs: list[ConfigRun]
    artifacts: list[Path]


def collect(root: Path, method: str | None = None, sets: Sequence[str] = ()) -> SweepExport:
    """The runs of a results folder, from the same analysis `tts analyze` makes (its summary is reused)."""
    from tts.analysis.settings import load_analysis_config
    from tts.analysis.summary import build_summary, load_summary
    from tts.analysis.tables import candidates, compute_optimal_tables

    cfg = load_analysis_config(None, list(sets))
    build_summary(root)
    data = load_summary(root, method, build=False)
    cands = candidates(data, charge=cfg.charges(data.method))
    gen = compute_optimal_tables(data, cfg).generation
    runs: dict[str, ConfigRun] = {}
    for r in cands.sort_values(["policy", "prm", "strategy", "hyperparams", "n"]).to_dict("records"):
        run = runs.get(r["config_id"])
        if run is None:
            params = {c: str(r[c]) for c in PARAM_COLUMNS if c in r and not _missing(r[c])}
            name = f"{r['policy']} | {r['prm']} | {r['strategy']} N={r['n']}"
            run = runs[r["config_id"]] = ConfigRun(
                r["config_id"], name, {**params, "config_id": r["config_id"]}
            )
        b = _key(r["bin"])
        run.metrics[f"accuracy.bin_{b}"] = float(r["accuracy"])
        if r["bin"] == ALL_BIN:
            for c in ("accuracy", "generations", "tokens", "tokens_out", "flops", "problems"):
                if not _missing(r.get(c)):
                    run.metrics[c] = float(r[c])
    for r in gen.to_dict("records") if len(gen) else []:
        run = runs.get(r["config_id"])
        if run is None:
            continue
        key = f"heldout_accuracy.bin_{_key(r['bin'])}.budget_{_key(r['budget'])}"
        run.metrics[key] = float(r["accuracy"])
        for bound in ("ci_low", "ci_high"):
            if not _missing(r.get(bound)):
                run.metrics[f"{key}.{bound}"] = float(r[bound])
    files = [root / "report.md", root / "report.html"]
    plots = sorted((root / "plots").glob("*.png")) if (root / "plots").is_dir() else []
    return SweepExport(root.name, data.method, list(runs.values()), [f for f in files if f.exists()] + plots)


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _key(v: object) -> str:
    """A metric-name part: MLflow and W&B accept letters, digits, _ - . / and spaces."""
    text = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def to_mlflow(sx: SweepExport, tracking_uri: str | None, experiment: str | None) -> dict[str, str]:
    """Log to MLflow; returns config_id -> run id (the parent under "sweep")."""
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise SystemExit(
            "tts export --to mlflow: mlflow is not installed; pip install 'tts-sweep[mlflow]'"
        ) from None
    client = MlflowClient(tracking_uri=tracking_uri)
    name = experiment or f"tts-{sx.sweep}"
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else client.create_experiment(name)

    def run_for(tags: dict[str, str], run_name: str) -> str:
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        found = client.search_runs([exp_id], filter_string=query, max_results=1)
        if found:
            return found[0].info.run_id
        return client.create_run(exp_id, tags=tags, run_name=run_name).info.run_id

    ids = {"sweep": run_for({"tts.sweep": sx.sweep, "tts.kind": "sweep"}, f"sweep {sx.sweep}")}
    client.log_param(ids["sweep"], "difficulty_method", sx.method)
    for f in sx.artifacts:
        client.log_artifact(ids["sweep"], str(f), artifact_path="plots" if f.parent.name == "plots" else None)
    client.set_terminated(ids["sweep"])
    for run in sx.runs:
        tags = {"tts.sweep": sx.sweep, "tts.kind": "configuration", "tts.config_id": run.config_id}
        rid = ids[run.config_id] = run_for({**tags, "mlflow.parentRunId": ids["sweep"]}, run.name)
        client.log_batch(
            rid,
            params=[_param(k, v) for k, v in run.params.items()],
            metrics=[_metric(k, v) for k, v in run.metrics.items()],
        )
        client.set_terminated(rid)
    return ids


def _param(k: str, v: str):  # noqa: ANN202 - mlflow.entities is imported only when exporting
    from mlflow.entities import Param

    return Param(k, v[:6000])


def _metric(k: str, v: float):  # noqa: ANN202
    from mlflow.entities import Metric

    return Metric(k, v, 0, 0)  # timestamp 0, step 0: a re-export writes the same point


def to_wandb(sx: SweepExport, project: str | None, mode: str, directory: Path | None) -> dict[str, str]:
    """Log to W&B (mode online | offline); returns config_id -> run id. Run ids derive from the sweep and the
    configuration, and runs resume, so a re-export updates them."""
    try:
        import wandb
    except ImportError:
        raise SystemExit(
            "tts export --to wandb: wandb is not installed; pip install 'tts-sweep[wandb]'"
        ) from None
    ids: dict[str, str] = {}
    common = {"project": project or f"tts-{sx.sweep}", "mode": mode, "group": sx.sweep, "resume": "allow"}
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        common["dir"] = str(directory)
    sweep_id = _wandb_id(sx.sweep, "sweep")
    with wandb.init(id=sweep_id, name=f"sweep {sx.sweep}", job_type="sweep", **common) as run:
        run.config.update({"difficulty_method": sx.method}, allow_val_change=True)
        for f in sx.artifacts:
            run.save(
                str(f), base_path=str(f.parent.parent if f.parent.name == "plots" else f.parent), policy="now"
            )
        ids["sweep"] = sweep_id
    for cr in sx.runs:
        rid = _wandb_id(sx.sweep, cr.config_id)
        with wandb.init(id=rid, name=cr.name, job_type="configuration", config=cr.params, **common) as run:
            run.summary.update(cr.metrics)
        ids[cr.config_id] = rid
    wandb.teardown()  # waits for W&B's service to write every run out (offline: the run files are complete)
    return ids


def _wandb_id(sweep: str, key: str) -> str:
    return hashlib.blake2b(f"{sweep}/{key}".encode(), digest_size=8).hexdigest()


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="tts export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("results_dir", help="an analyzed sweep folder (tts analyze DIR first for report.html)")
    ap.add_argument("--to", required=True, choices=("mlflow", "wandb"), help="the tracker")
    ap.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow: a folder (file store), a server URL, or sqlite:///x.db with the full mlflow package",
    )
    ap.add_argument("--experiment", default=None, help="MLflow experiment (default tts-<sweep>)")
    ap.add_argument("--project", default=None, help="W&B project (default tts-<sweep>)")
    ap.add_argument("--mode", default="online", choices=("online", "offline"), help="W&B mode")
    ap.add_argument("--wandb-dir", default=None, help="W&B: where its run files go (default ./wandb)")
    ap.add_argument("--method", default=None, help="difficulty method, as tts analyze --method")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as tts analyze --set")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    root = Path(args.results_dir)
    if not root.is_dir():
        print(
            f"tts export: {root}: no such folder; give a sweep's results folder, e.g. results/smoke",
            file=sys.stderr,
        )
        return 2
    sx = collect(root, args.method, args.set)
    if args.to == "mlflow":
        ids = to_mlflow(sx, args.tracking_uri, args.experiment)
    else:
        ids = to_wandb(sx, args.project, args.mode, Path(args.wandb_dir) if args.wandb_dir else None)
    print(
        f"tts export: {len(sx.runs)} configuration runs and 1 sweep run ({len(sx.artifacts)} files) -> {args.to}"
    )
    return 0 if ids else 1


if __name__ == "__main__":
    sys.exit(main())
