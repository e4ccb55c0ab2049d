"""The pre-aggregated summary of a results folder, built with DuckDB.

Why DuckDB: a sweep's rows are spread over one Parquet file per cell (thousands of files, 10M+ rows). DuckDB
scans a file list in parallel, reads only the columns a query names, and joins and aggregates without
materialising rows in Python; a plain pandas groupby over the same rows must first build every row in memory
(pyarrow alone has no hash join to the bins; an arrow-dataset scan fed to DuckDB was 2-3x slower than DuckDB's
own Parquet reader). bench/bench_compute_optimal.py, 10M synthetic rows in 2,088 cell files, 2 busy cores:
before held-out selection, table from the summary ~0.2 s, plain pandas ~25-32 s. With held-out selection and
CIs that redo it (every configuration's per-problem values, all groups): 200k rows / 2,088 files, 200
replicates, a loaded 2-core machine: 8.9 s vs pandas' in-sample table without CIs 5.9 s.

Held-out selection needs every configuration's per-problem values, so there is one path: the summary (a raw
scan would have to compute the same per-problem table each time).

`build_summary` materialises, once per set of result files (fingerprinted), under <results>/summary/:
  configs.parquet   config_id + the DESCRIPTIVE columns, hyperparams, pool (tts.analysis.source.configurations)
  problems.parquet  per (config, problem, seed): y_sum, y_sq, rows, and sums of every compute measure; sorted
                    by config_id, so fetching a few configurations' problems reads a few row groups
  stats.parquet     per (config, method, bin): the same sums over the bin's problems, `problems` and `seeds`
  binning.parquet   per (policy, method, bin): mean samples / tokens / PRM tokens spent assigning bins
`load_summary` turns these into an AnalysisData (tts.analysis.source) in well under a second.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tts.analysis.io import (
    NoResultsError,
    connect,
    ensure_difficulty,
    result_files,
    results_stamp,
    sweep_settings,
)
from tts.analysis.keys import (
    ALL_BIN,
    COMPUTE_COLUMNS,
    DESCRIPTIVE,
    SEED_COLUMNS,
    configuration_ids,
    row_seeds,
)
from tts.analysis.source import AnalysisData, configurations

SUMMARY_DIR = "summary"
VERSION = 5  # 4: configs carry `parallel` (tts.analysis.revisions); 5: problem values per seed
METHOD_PREFERENCE = ("oracle_quantile", "dataset_level", "absolute", "predicted")
_Y = "COALESCE(CAST(expected_correct AS DOUBLE), CAST(correct AS DOUBLE))"
_SUMS = ["y_sum", "y_sq", "rows", *[f"{m}_sum" for m in COMPUTE_COLUMNS]]


def _sum_sql(prefix: str = "") -> str:
    parts = [f"sum({_Y}) AS y_sum", f"sum({_Y} * {_Y}) AS y_sq", "count(*) AS rows"]
    parts += [f"sum(CAST({prefix}{m} AS DOUBLE)) AS {m}_sum" for m in COMPUTE_COLUMNS]
    return ", ".join(parts)


def _files(results_dir: str | Path) -> list[str]:
    files = [str(f) for f in result_files(results_dir, "cell")]
    if not files:
        raise NoResultsError(
            f"{results_dir}: the manifest lists no finished cells yet; run or resume `tts sweep`"
        )
    return files


def _scan(files: Sequence[str], *, filename: bool = False, union: bool = False) -> str:
    extra = (", filename=true" if filename else "") + (", union_by_name=true" if union else "")
    return f"read_parquet({list(files)!r}{extra})"


def _run(
    con: duckdb.DuckDBPyConnection, sql: Callable[[bool], str], *, fetch: bool = True
) -> pd.DataFrame | None:
    """Run sql(union=False): files that share their columns scan fastest; when some file lacks a column the
    query names (the store writes only the columns its rows have), rerun with union_by_name (NULL-filled)."""

    def go(union: bool) -> pd.DataFrame | None:
        if fetch:
            return con.sql(sql(union)).df()
        con.execute(sql(union))
        return None

    try:
        return go(False)
    except (duckdb.InvalidInputException, duckdb.BinderException) as exc:
        if "schema mismatch" not in str(exc) and "not found" not in str(exc):
            raise
        return go(True)


def _summary_dir(results_dir: str | Path) -> Path:
    from tts.analysis.io import difficulty_path

    return difficulty_path(results_dir).parent / SUMMARY_DIR


def _configs(con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> pd.DataFrame:
    """cell_id -> config_id, seed and the configuration's descriptive columns (one group per cell: they are
    constant within a cell file). Identity follows tts.analysis.keys.configuration_ids: the written config_id,
    else a hash of the flattened config.* columns minus the seed and sweep-level fields."""
    scan = _scan(files, union=True)
    names = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
    wanted = [c for c in names if c in (*DESCRIPTIVE, *SEED_COLUMNS, "config_id") or c.startswith("config.")]
    picks = ", ".join(f'any_value("{c}") AS "{c}"' for c in wanted)
    pool = "bool_or(expected_correct IS NOT NULL)" if "expected_correct" in names else "false"
    cells = con.sql(f"SELECT cell_id, {picks}, {pool} AS _pool FROM {scan} GROUP BY cell_id").df()
    cells["config_id"] = configuration_ids(cells)
    cells["seed"] = row_seeds(cells)
    cells["expected_correct"] = np.where(cells.pop("_pool").astype(bool), 1.0, np.nan)
    return cells[["cell_id", "config_id", "seed"]].merge(configurations(cells), on="config_id", how="left")


def build_summary(results_dir: str | Path, *, force: bool = False, threads: int | None = None) -> Path:
    """Materialise the summary (see module doc) unless it is up to date; returns its folder."""
    out = _summary_dir(results_dir)
    meta_path = out / "meta.json"
    if not force and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") == results_stamp(results_dir) and meta.get("version") == VERSION:
            return out
    files = _files(results_dir)
    difficulty = ensure_difficulty(results_dir)
    stamp = results_stamp(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = connect(threads)
    cells = _configs(con, files)
    con.register("cellmap", cells[["cell_id", "config_id", "seed"]])
    _run(
        con,
        lambda u: (
            f"""CREATE TEMP TABLE pv AS SELECT c.config_id, r.problem_id, c.seed, {_sum_sql("r.")}
        FROM {_scan(files, union=u)} r JOIN cellmap c USING (cell_id) WHERE r.status = 'ok'
        GROUP BY c.config_id, r.problem_id, c.seed"""
        ),
        fetch=False,
    )
    tmp = out / ".problems.parquet.tmp"
    con.execute(
        f"COPY (SELECT * FROM pv ORDER BY config_id, problem_id, seed) TO '{tmp}' "
        "(FORMAT parquet, ROW_GROUP_SIZE 32768)"
    )
    tmp.replace(out / "problems.parquet")
    cfg = cells.drop(columns=["cell_id", "seed"]).drop_duplicates("config_id").sort_values("config_id")
    con.register("cfg", cfg)
    diff = difficulty[["policy", "problem_id", "method", "bin"]].astype({"bin": str})
    con.register("diff", diff)
    sums = ", ".join(f"sum(pv.{c}) AS {c}" for c in _SUMS)
    counts = "count(DISTINCT pv.problem_id) AS problems, count(DISTINCT pv.seed) AS seeds"
    per_bin = con.sql(f"""SELECT pv.config_id, d.method, d.bin, {sums}, {counts}
        FROM pv JOIN cfg USING (config_id) JOIN diff d ON d.policy = cfg.policy AND d.problem_id = pv.problem_id
        GROUP BY pv.config_id, d.method, d.bin""").df()
    whole = con.sql(f"SELECT config_id, {sums}, {counts} FROM pv GROUP BY config_id").df()
    methods = sorted(diff["method"].unique()) or ["none"]
    stats = pd.concat([per_bin, *[whole.assign(method=m, bin=ALL_BIN) for m in methods]], ignore_index=True)
    _write(cfg, out / "configs.parquet")
    _write(stats, out / "stats.parquet")
    _write(_binning(results_dir, difficulty), out / "binning.parquet")
    meta_path.write_text(json.dumps({"fingerprint": stamp, "version": VERSION, "methods": methods}))
    return out


def _write(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    df.reset_index(drop=True).to_parquet(tmp, index=False)
    tmp.replace(path)


def _binning(results_dir: str | Path, difficulty: pd.DataFrame) -> pd.DataFrame:
    """Mean binning cost per (policy, method, bin) from the sample pools (empty without pools)."""
    from tts.analysis.difficulty import binning_cost
    from tts.analysis.io import read_samples

    cols = ["policy", "method", "bin", "binning_samples", "binning_tokens", "binning_prm_tokens"]
    samples = read_samples(results_dir) if len(difficulty) else None
    if samples is None or difficulty.empty or "tokens_out" not in samples.columns:
        return pd.DataFrame(columns=cols)
    cost = binning_cost(difficulty, samples).merge(
        difficulty[["policy", "method", "problem_id", "bin"]], on=["policy", "method", "problem_id"]
    )
    cost = cost.rename(columns={"samples_used": "binning_samples"})
    per_bin = cost.groupby(["policy", "method", "bin"])[cols[3:]].mean().reset_index()
    whole = cost.groupby(["policy", "method"])[cols[3:]].mean().reset_index().assign(bin=ALL_BIN)
    return pd.concat([per_bin, whole], ignore_index=True)[cols]


def pick_method(results_dir: str | Path, methods: Sequence[str]) -> str:
    """The sweep's difficulty method when it restricted cells to bins (its cells are per bin), else the first of
    METHOD_PREFERENCE present (oracle quantile bins, as Snell et al., when sample pools exist)."""
    settings = sweep_settings(results_dir)
    wanted = settings.get("method") if settings.get("bins") else None
    if wanted in methods:
        return str(wanted)
    for m in METHOD_PREFERENCE:
        if m in methods:
            return m
    return methods[0] if methods else "none"


def load_summary(results_dir: str | Path, method: str | None = None, *, build: bool = True) -> AnalysisData:
    """AnalysisData for one difficulty method from the materialised summary (built first when `build`)."""
    out = build_summary(results_dir) if build else _summary_dir(results_dir)
    if not (out / "stats.parquet").is_file():
        raise NoResultsError(f"{out}: no summary; run `tts analyze {results_dir}` (or build_summary) first")
    methods = json.loads((out / "meta.json").read_text())["methods"]
    method = method or pick_method(results_dir, methods)
    if method not in methods:
        raise ValueError(f"method: {method!r} has no bins in {results_dir}; available: {', '.join(methods)}")
    stats = pq.read_table(out / "stats.parquet", filters=[("method", "=", method)]).to_pandas()
    stats = stats.merge(pq.read_table(out / "configs.parquet").to_pandas(), on="config_id", how="left")
    binning = pq.read_table(out / "binning.parquet").to_pandas()
    return AnalysisData(
        stats=stats,
        bins=_bins(results_dir, method, out),
        method=method,
        values=lambda ids=None: _problem_values(out / "problems.parquet", ids),
        binning=binning[binning["method"] == method].drop(columns="method"),
    )


def _bins(results_dir: str | Path, method: str, out: Path) -> pd.DataFrame:
    from tts.analysis.io import difficulty_path

    path = difficulty_path(results_dir)
    if method != "none" and path.is_file():
        d = pq.read_table(
            path, columns=["policy", "problem_id", "method", "bin"], filters=[("method", "=", method)]
        ).to_pandas()
        return d.drop(columns="method").astype({"bin": str})
    pv = pq.read_table(out / "problems.parquet", columns=["config_id", "problem_id"]).to_pandas()
    cfg = pq.read_table(out / "configs.parquet", columns=["config_id", "policy"]).to_pandas()
    return pv.merge(cfg, on="config_id")[["policy", "problem_id"]].drop_duplicates().assign(bin=ALL_BIN)


def _problem_values(path: Path, ids: Sequence[str] | None) -> pd.DataFrame:
    cols = ["config_id", "problem_id", "seed", "y_sum", "rows"]
    filters = None if ids is None else [("config_id", "in", [str(i) for i in ids])]
    if ids is not None and not len(filters[0][2]):
        return pd.DataFrame(columns=cols)
    return pq.read_table(path, columns=cols, filters=filters).to_pandas()
