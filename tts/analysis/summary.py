"""The pre-aggregated summary of a results folder, and the raw-Parquet scan, both with DuckDB.

Why DuckDB: a sweep's rows are spread over one Parquet file per cell (thousands of files, 10M+ rows). DuckDB
scans a file list in parallel, reads only the columns a query names, and joins and aggregates without
materialising rows in Python; a plain pandas groupby over the same rows must first build every row in memory
(pyarrow alone has no hash join to the bins; an arrow-dataset scan fed to DuckDB was 2-3x slower than DuckDB's
own Parquet reader). bench/bench_compute_optimal.py, 10M synthetic rows in 2,088 cell files, 2 busy cores:
table from the summary ~0.2 s (CIs included), from raw Parquet ~3-4 s, plain pandas ~25-32 s.

`build_summary` materialises, once per set of result files (fingerprinted), under <results>/summary/:
  configs.parquet   config_id + CONFIG_KEYS (a cell without its seed)
  problems.parquet  per (config, problem): y_sum, y_sq, rows, and sums of every compute measure; sorted by
                    config_id, so fetching a few configurations' problems reads a few row groups
  stats.parquet     per (config, method, bin): the same sums over the bin's problems, and `problems`
  binning.parquet   per (policy, method, bin): mean samples / tokens / PRM tokens spent assigning bins
`load_summary` turns these into an AnalysisData (tts.analysis.source) in well under a second; `scan_raw`
computes the same AnalysisData straight from the cell files, for one difficulty method.
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
from tts.analysis.keys import ALL_BIN, COMPUTE_COLUMNS, CONFIG_KEYS
from tts.analysis.source import AnalysisData

SUMMARY_DIR = "summary"
VERSION = 2
CI_SPEC = (1000, 0)  # (replicates, seed) of the CIs materialised in cis.parquet
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
    """cell_id -> config key columns (one group per cell: the key columns are constant within a cell file)."""
    keys = ", ".join(f"any_value({k}) AS {k}" for k in CONFIG_KEYS)
    cells = _run(
        con,
        lambda u: (
            f"SELECT cell_id, {keys}, any_value(filename) AS file "
            f"FROM {_scan(files, filename=True, union=u)} GROUP BY cell_id"
        ),
    )
    cfg = cells[list(CONFIG_KEYS)].drop_duplicates().sort_values(list(CONFIG_KEYS), na_position="last")
    cfg = cfg.reset_index(drop=True)
    cfg["config_id"] = np.arange(len(cfg), dtype="int64")
    cells = cells.merge(cfg, on=list(CONFIG_KEYS), how="left")
    return cells


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
    con.register("cellmap", cells[["cell_id", "config_id"]])
    _run(
        con,
        lambda u: (
            f"""CREATE TEMP TABLE pv AS SELECT c.config_id, r.problem_id, {_sum_sql("r.")}
        FROM {_scan(files, union=u)} r JOIN cellmap c USING (cell_id) WHERE r.status = 'ok'
        GROUP BY c.config_id, r.problem_id"""
        ),
        fetch=False,
    )
    tmp = out / ".problems.parquet.tmp"
    con.execute(
        f"COPY (SELECT * FROM pv ORDER BY config_id, problem_id) TO '{tmp}' "
        "(FORMAT parquet, ROW_GROUP_SIZE 32768)"
    )
    tmp.replace(out / "problems.parquet")
    cfg = cells.drop(columns=["cell_id", "file"]).drop_duplicates("config_id").sort_values("config_id")
    con.register("cfg", cfg)
    diff = difficulty[["policy", "problem_id", "method", "bin"]].astype({"bin": str})
    con.register("diff", diff)
    sums = ", ".join(f"sum(pv.{c}) AS {c}" for c in _SUMS)
    per_bin = con.sql(f"""SELECT pv.config_id, d.method, d.bin, {sums}, count(*) AS problems
        FROM pv JOIN cfg USING (config_id) JOIN diff d ON d.policy = cfg.policy AND d.problem_id = pv.problem_id
        GROUP BY pv.config_id, d.method, d.bin""").df()
    whole = con.sql(f"SELECT config_id, {sums}, count(*) AS problems FROM pv GROUP BY config_id").df()
    methods = sorted(diff["method"].unique()) or ["none"]
    stats = pd.concat([per_bin, *[whole.assign(method=m, bin=ALL_BIN) for m in methods]], ignore_index=True)
    _write(cfg, out / "configs.parquet")
    _write(stats, out / "stats.parquet")
    pv = con.sql("SELECT config_id, problem_id, y_sum, rows FROM pv").df()
    _write(_all_cis(pv, cfg, diff, methods), out / "cis.parquet")
    _write(_binning(results_dir, difficulty), out / "binning.parquet")
    meta_path.write_text(json.dumps({"fingerprint": stamp, "version": VERSION, "methods": methods}))
    return out


def _all_cis(pv: pd.DataFrame, cfg: pd.DataFrame, diff: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Bootstrap CIs (CI_SPEC, DEFAULT_LEVELS) of every configuration in every bin, exactly as a query would
    compute them for a winner (same problem lists, seed keys and weights)."""
    from tts.analysis.bootstrap import DEFAULT_LEVELS, bin_members, group_cis
    from tts.analysis.tables import ci_key

    replicates, seed = CI_SPEC
    uniques = np.sort(
        pd.unique(np.concatenate([np.asarray(pv["problem_id"]), np.asarray(diff["problem_id"])]))
    )
    index = pd.Index(uniques)  # integer codes in string order: sorting codes sorts problem ids
    pv = pv.assign(problem_id=index.get_indexer(np.asarray(pv["problem_id"])))
    diff = diff.assign(problem_id=index.get_indexer(np.asarray(diff["problem_id"])))
    frames = []
    for (policy, dataset), configs in cfg.groupby(["policy", "dataset"], sort=True):
        vals = pv[pv["config_id"].isin(configs["config_id"])]
        for method in methods:
            bins = diff[diff["method"] == method]
            if bins.empty:  # no bins: the policy's problems with results form the one bin
                bins = vals[["problem_id"]].drop_duplicates().assign(policy=policy, bin=ALL_BIN)
            labels = [*sorted(bins.loc[bins["policy"] == policy, "bin"].astype(str).unique()), ALL_BIN]
            for label in dict.fromkeys(labels):
                members = bin_members(bins, policy, label, ALL_BIN)
                cis = group_cis(
                    members,
                    vals,
                    levels=DEFAULT_LEVELS,
                    replicates=replicates,
                    seed=seed,
                    key=ci_key(policy, dataset, label),
                )
                frames.append(cis.assign(method=method, bin=label))
    cols = ["config_id", "method", "bin", "ci", "ci_low", "ci_high"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


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


def available_methods(results_dir: str | Path) -> list[str]:
    meta = _summary_dir(results_dir) / "meta.json"
    return json.loads(meta.read_text()).get("methods", []) if meta.is_file() else []


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
        values=lambda ids: _problem_values(out / "problems.parquet", ids),
        binning=binning[binning["method"] == method].drop(columns="method"),
        cis=pq.read_table(out / "cis.parquet", filters=[("method", "=", method)])
        .to_pandas()
        .drop(columns="method"),
        ci_spec=CI_SPEC,
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


def _problem_values(path: Path, ids: Sequence[int]) -> pd.DataFrame:
    ids = [int(i) for i in ids]
    if not ids:
        return pd.DataFrame(columns=["config_id", "problem_id", "y_sum", "rows"])
    table = pq.read_table(
        path, columns=["config_id", "problem_id", "y_sum", "rows"], filters=[("config_id", "in", ids)]
    )
    return table.to_pandas()


def scan_raw(
    results_dir: str | Path, method: str | None = None, *, threads: int | None = None
) -> AnalysisData:
    """AnalysisData straight from the cell files (no summary): one DuckDB pass joins every row to its bin and
    sums per (file, bin); per-problem values for the bootstrap are read later from the winners' files only.
    Problems and bins travel as integer codes (problem codes in problem-id order, as the summary's CIs)."""
    files = _files(results_dir)
    difficulty = ensure_difficulty(results_dir)
    methods = sorted(difficulty["method"].unique())
    method = method or pick_method(results_dir, methods)
    con = connect(threads)
    if method in methods:
        bins = difficulty.loc[difficulty["method"] == method, ["policy", "problem_id", "bin"]]
        bins = bins.astype({"bin": str})
    elif method == "none":
        bins = _raw_bins(con, files)
    else:
        raise ValueError(
            f"method: {method!r} has no bins in {results_dir}; available: {', '.join(methods) or 'none'}"
        )
    problems = np.asarray(bins["problem_id"])
    bidx, labels = pd.factorize(bins["bin"])
    codes = bins.assign(code=pd.Index(np.sort(pd.unique(problems))).get_indexer(problems), bidx=bidx)
    con.register("codes", codes[["policy", "problem_id", "code", "bidx"]])
    keys = ", ".join(f"any_value(r.{k}) AS {k}" for k in CONFIG_KEYS)
    per_file = _run(
        con,
        lambda u: (
            f"""SELECT r.file_index AS f, COALESCE(k.bidx, -1) AS bidx, {keys}, {_sum_sql("r.")}
        FROM {_scan(files, union=u)} r LEFT JOIN codes k ON k.policy = r.policy AND k.problem_id = r.problem_id
        WHERE r.status = 'ok' GROUP BY f, k.bidx"""
        ),
    )
    names = np.append(np.asarray(labels, dtype=object), "unbinned")
    per_file["bin"] = names[per_file["bidx"].to_numpy()]  # -1 -> "unbinned"
    cfg = per_file[list(CONFIG_KEYS)].drop_duplicates().reset_index(drop=True)
    cfg["config_id"] = np.arange(len(cfg), dtype="int64")
    per_file = per_file.merge(cfg, on=list(CONFIG_KEYS), how="left")
    if set(labels) != {ALL_BIN}:
        whole = per_file.groupby("f", as_index=False).agg(
            {**dict.fromkeys(_SUMS, "sum"), "config_id": "first"}
        )
        per_file = pd.concat([per_file, whole.assign(bin=ALL_BIN)], ignore_index=True)
    per_file["problems"] = per_file["rows"]  # a cell has one row per problem
    g = per_file.groupby(["config_id", "bin"], as_index=False)
    stats = g[_SUMS].sum().merge(g["problems"].max(), on=["config_id", "bin"]).merge(cfg, on="config_id")
    file_cfg = per_file.drop_duplicates("f").set_index("f")["config_id"]
    file_cfg = pd.DataFrame({"file": np.asarray(files)[file_cfg.index], "config_id": file_cfg.to_numpy()})

    def values(ids: Sequence[int]) -> pd.DataFrame:
        chosen = file_cfg[file_cfg["config_id"].isin([int(i) for i in ids])].reset_index(drop=True)
        if chosen.empty:
            return pd.DataFrame(columns=["config_id", "problem_id", "y_sum", "rows"])
        con.register("chosen", chosen.assign(f=np.arange(len(chosen)))[["f", "config_id"]])
        sql = f"""SELECT c.config_id, k.code AS problem_id, sum({_Y}) AS y_sum, count(*) AS rows
            FROM {{scan}} r JOIN chosen c ON c.f = r.file_index
            JOIN codes k ON k.policy = r.policy AND k.problem_id = r.problem_id
            WHERE r.status = 'ok' GROUP BY c.config_id, k.code"""
        return _run(con, lambda u: sql.format(scan=_scan(list(chosen["file"]), union=u)))

    return AnalysisData(
        stats=stats,
        bins=codes[["policy", "code", "bin"]].rename(columns={"code": "problem_id"}),
        values=values,
        method=method,
        binning=_binning_from_difficulty(results_dir, difficulty, method),
    )


def _raw_bins(con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> pd.DataFrame:
    df = _run(con, lambda u: f"SELECT DISTINCT policy, problem_id FROM {_scan(files, union=u)}")
    return df.assign(bin=ALL_BIN)


def _binning_from_difficulty(
    results_dir: str | Path, difficulty: pd.DataFrame, method: str
) -> pd.DataFrame | None:
    """Binning costs for the raw path: the summary's binning.parquet when present (cheap), else None."""
    path = _summary_dir(results_dir) / "binning.parquet"
    if path.is_file():
        b = pd.read_parquet(path)
        return b[b["method"] == method].drop(columns="method")
    return None
