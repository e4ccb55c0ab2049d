"""The summary of a results folder: each cell file scanned once (DuckDB), combined per analysis.

Why DuckDB: a sweep's rows are spread over one Parquet file per cell (thousands of files, 10M+ rows). DuckDB
scans a file list in parallel and reads only the columns a query names; a plain pandas groupby over the same rows
must first build every row in memory. Why parts: a running sweep adds cells, and the analysis should read only
those. Held-out selection needs every configuration's per-problem values, so there is one path: the summary.

`build_summary` brings <results>/summary/ up to date (cheap when nothing changed: the folder's manifests are
fingerprinted):
  cells.parquet     per cell file: path, identity (size, mtime), the part holding its rows, cell_id, config_id
                    (tts.analysis.keys), seed, the configuration's DESCRIPTIVE columns, hyperparams, pool, parallel,
                    and per-cell grading sums (`grading`, the report's fallback section without a scan)
  parts/*.arrow     the rows of the cells scanned together (one part per update): cell and problem ids
                    (dictionary-coded), y (`expected_correct`, else `correct`) and every compute measure; status ok
                    only; one query over the new files, columns projected, no grouping
  configs.parquet   one row per configuration
  binning.parquet   per (policy, method, bin): mean samples / tokens / PRM tokens spent assigning bins (recomputed
                    only when the pools or difficulty.parquet change)
  memo/*.npz        bootstrap sums of the tables' groups, keyed by the identity of the cells they come from
                    (tts.analysis.cube.Index.persist): an analysis after a new cell recomputes only the groups it
                    changed; `tts analyze` deletes the ones it did not use
A new or rewritten cell file is scanned into a new part; files already summarised are not read again; a part no
current cell uses is deleted. `load_summary` combines the parts (a counting sort on integer codes: per (config,
problem, seed) sums, ordered as the rows always were) and the per (config, bin) stats of one difficulty method
into an AnalysisData (tts.analysis.source). bench/bench_compute_optimal.py measures both against the previous
implementation on 10M rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tts.analysis.cube import Index
from tts.analysis.io import (
    NoResultsError,
    connect,
    ensure_difficulty,
    fingerprint,
    result_files,
    results_stamp,
    strategy_traits,
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
# 4: configs carry `parallel` (tts.analysis.revisions); 5: problem values per seed; 6: per-cell parts;
# 7: per-cell grading sums (tts.analysis.io.grading_table without a scan); 8: parts coded by file position
VERSION = 8
PARTS = "parts"
MEMO = "memo"  # bootstrap sums kept across analyses (tts.analysis.cube.Index.persist)
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


def _columns_differ(exc: Exception) -> bool:
    """Whether DuckDB failed because the files do not share their columns (a column some file lacks: a
    strategy option of one strategy only), so the scan must be rerun with union_by_name."""
    text = str(exc)
    return any(k in text for k in ("schema mismatch", "not found", "referenced before it is defined"))


def _run(
    con: duckdb.DuckDBPyConnection, sql: Callable[[bool], str], *, arrow: bool = False
) -> pd.DataFrame | pa.Table:
    """Run sql(union=False) (a DataFrame, or Arrow when `arrow`): files that share their columns scan fastest;
    when some file lacks a column the query names (the store writes only the columns its rows have), rerun with
    union_by_name (NULL-filled)."""

    def go(union: bool) -> pd.DataFrame | pa.Table:
        rel = con.sql(sql(union))
        return rel.to_arrow_table() if arrow else rel.df()

    try:
        return go(False)
    except (duckdb.InvalidInputException, duckdb.BinderException) as exc:
        if not _columns_differ(exc):
            raise
        return go(True)


def _summary_dir(results_dir: str | Path) -> Path:
    from tts.analysis.io import difficulty_path

    return difficulty_path(results_dir).parent / SUMMARY_DIR


def _configs(
    con: duckdb.DuckDBPyConnection, files: Sequence[str], names: Sequence[str], per_file: pd.DataFrame
) -> pd.DataFrame:
    """Per cell file (`part_file`: its position in `files`): cell_id, config_id, seed, the configuration's
    descriptive columns, and the per-cell grading sums and pool flag of `per_file` (`_scan_part`). One group per
    file on DuckDB's file_index (an integer: no string keys hashed per row); the configuration columns are
    constant within a cell file. Identity follows
    tts.analysis.keys.configuration_ids: the written config_id, else a hash of the flattened config.* columns
    minus the seed and sweep-level fields."""
    wanted = [
        c
        for c in names
        if c in (*DESCRIPTIVE, *SEED_COLUMNS, "config_id", "cell_id") or c.startswith("config.")
    ]
    picks = ", ".join(f'any_value("{c}") AS "{c}"' for c in wanted)
    key = "coalesce(config_id, cell_id)" if "config_id" in names else "cell_id"
    cells = _run(
        con,
        lambda union: (
            f"SELECT file_index AS part_file, {picks}, any_value({key}) AS g_key "
            f"FROM {_scan(files, union=union)} GROUP BY file_index ORDER BY file_index"
        ),
    )
    cells = cells.merge(per_file, on="part_file", how="left")
    cells[GRADING[1:]] = cells[GRADING[1:]].fillna(0.0)
    cells["file"] = np.asarray(files, dtype=object)[cells["part_file"].to_numpy(np.int64)]
    cells["config_id"] = configuration_ids(cells)
    cells["seed"] = row_seeds(cells)
    cells["expected_correct"] = np.where(cells.pop("_pool").fillna(False).astype(bool), 1.0, np.nan)
    out = cells[["cell_id", "file", "part_file", "config_id", "seed", *GRADING]]
    return out.merge(configurations(cells), on="config_id", how="left")


GRADING = ["g_key", "g_rows", "g_correct", "g_no_fallback", "g_fallback", "g_unrecorded"]


def _flags_sql(names: Sequence[str]) -> str:
    """Per-row bits behind tts.analysis.io.grading_table's sums (its rows: status ok, correct known) and the
    pool flag: 1 correct known, 2 correct, 4 a fallback extraction, 8 extraction unrecorded, 16 an
    expected_correct (a pool-derived row)."""
    kind = "extraction" if "extraction" in names else "NULL::VARCHAR"
    flag = "coalesce(fallback_extraction, false)" if "fallback_extraction" in names else "false"
    fallback = f"({flag} OR coalesce({kind}, '') = 'last_number')"
    pool = "(expected_correct IS NOT NULL)" if "expected_correct" in names else "false"
    return (
        "((correct IS NOT NULL)::UTINYINT + 2 * coalesce(correct, false)::UTINYINT "
        f"+ 4 * {fallback}::UTINYINT + 8 * ({kind} IS NULL)::UTINYINT + 16 * {pool}::UTINYINT)"
    )


def _per_file(files: np.ndarray, flags: np.ndarray, size: int) -> pd.DataFrame:
    """Per cell file (part_file): the grading sums of its status-ok rows with `correct` known, and whether
    any status-ok row carries expected_correct (`_pool`)."""
    known = (flags & 1) > 0
    f = files[known]
    bits = flags[known]

    def count(mask: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(f if mask is None else f[mask], minlength=size).astype(float)

    return pd.DataFrame(
        {
            "part_file": np.arange(size),
            "g_rows": count(),
            "g_correct": count((bits & 2) > 0),
            "g_no_fallback": count(((bits & 2) > 0) & ((bits & 4) == 0)),
            "g_fallback": count((bits & 4) > 0),
            "g_unrecorded": count((bits & 8) > 0),
            "_pool": np.bincount(files, weights=((flags & 16) > 0).astype(float), minlength=size) > 0,
        }
    )


def grading(results_dir: str | Path) -> pd.DataFrame:
    """tts.analysis.io.grading_table from the summary's per-cell sums (no scan of the rows)."""
    cells = pq.read_table(_summary_dir(results_dir) / "cells.parquet").to_pandas()
    cells = cells[cells["g_rows"] > 0]
    g = cells.groupby("g_key", sort=False)
    out = g[["policy", "prm", "strategy", "n"]].first()
    sums = g[["g_rows", "g_correct", "g_no_fallback", "g_fallback", "g_unrecorded"]].sum()
    out = out.assign(
        rows=sums["g_rows"].astype(np.int64),
        accuracy=sums["g_correct"] / sums["g_rows"],
        accuracy_no_fallback=sums["g_no_fallback"] / sums["g_rows"],
        fallback_share=sums["g_fallback"] / sums["g_rows"],
        unrecorded_share=sums["g_unrecorded"] / sums["g_rows"],
    )
    out = out.rename_axis("config_id").reset_index()
    return out.sort_values(["policy", "prm", "strategy", "n"]).reset_index(drop=True)


def _identity(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def _read_cells(out: Path) -> pd.DataFrame | None:
    path = out / "cells.parquet"
    meta_path = out / "meta.json"
    if not path.is_file() or not meta_path.is_file():
        return None
    if json.loads(meta_path.read_text()).get("version") != VERSION:
        return None
    return pq.read_table(path).to_pandas()


def build_summary(results_dir: str | Path, *, force: bool = False, threads: int | None = None) -> Path:
    """Bring the summary (see module doc) up to date and return its folder: cell files already summarised (same
    path, size and mtime) are kept, new or rewritten ones are scanned into one new part, removed ones dropped;
    `force` rescans every file."""
    out = _summary_dir(results_dir)
    meta_path = out / "meta.json"
    if not force and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") == results_stamp(results_dir) and meta.get("version") == VERSION:
            return out
    files = _files(results_dir)
    difficulty = ensure_difficulty(results_dir)
    stamp = results_stamp(results_dir)
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    if force:
        shutil.rmtree(out / MEMO, ignore_errors=True)
    known = None if force else _read_cells(out)
    ident = pd.DataFrame({"file": files, "ident": [_identity(f) for f in files]})
    if known is not None:
        same = known.merge(ident, on=["file", "ident"], how="inner")
        kept = known[known["file"].isin(set(same["file"]))]
    else:
        kept = pd.DataFrame(columns=["file", "ident", "part", "cell_id"])
    new = ident[~ident["file"].isin(set(kept["file"]))]
    frames = [kept]
    if len(new):
        part = f"{len(list((out / PARTS).glob('*.arrow'))):06d}-{os.getpid()}-{time.time_ns()}"
        con = connect(threads)
        names = [
            r[0]
            for r in con.sql(f"DESCRIBE SELECT * FROM {_scan(new['file'].tolist(), union=True)}").fetchall()
        ]
        per_file = _scan_part(con, new["file"].tolist(), names, out / PARTS / f"{part}.arrow")
        cells = _configs(con, new["file"].tolist(), names, per_file)
        frames.append(cells.merge(ident, on="file", how="left").assign(part=part))
    cells = (
        pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else kept
    )
    # a cell rewritten (same id, new file) keeps only its newest rows: drop its older summary rows
    cells = cells.drop_duplicates("cell_id", keep="last").reset_index(drop=True)
    for stale in set(p.stem for p in (out / PARTS).glob("*.arrow")) - set(cells["part"]):
        (out / PARTS / f"{stale}.arrow").unlink(missing_ok=True)
    _write(cells, out / "cells.parquet")
    cfg = _config_table(cells)
    _write(cfg, out / "configs.parquet")
    methods = sorted(difficulty["method"].unique()) or ["none"]
    pools = fingerprint(result_files(results_dir, "pool")) if len(difficulty) else ""
    old = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    binning = out / "binning.parquet"
    if (
        force
        or not binning.is_file()
        or old.get("pools") != pools
        or old.get("difficulty") != _diff_stamp(results_dir)
    ):
        _write(_binning(results_dir, difficulty), binning)
    meta = {
        "fingerprint": stamp,
        "version": VERSION,
        "methods": methods,
        "pools": pools,
        "difficulty": _diff_stamp(results_dir),
    }
    meta_path.write_text(json.dumps(meta))
    return out


def _diff_stamp(results_dir: str | Path) -> str:
    from tts.analysis.io import difficulty_path

    return fingerprint([difficulty_path(results_dir)])


def _scan_part(
    con: duckdb.DuckDBPyConnection, files: Sequence[str], names: Sequence[str], path: Path
) -> pd.DataFrame:
    """One Arrow file of the rows of `files` (status ok), projected to what the summary sums: `file` (the cell
    file's position in `files`: cells.parquet's part_file), problem_id (dictionary-coded, the dictionary
    sorted), y and every compute measure; returns the per-file grading sums (`_per_file`). No grouping: a
    (cell, problem) has one row in a normal cell, and any repeats are summed where the rows are used. One
    record batch, uncompressed: a load maps the columns without copying them; a measure whose values are all
    exact in float32 (token and generation counts) is stored as float32."""
    import pyarrow.compute as pc
    import pyarrow.feather as feather

    have = set(names)

    def col(name: str) -> str:
        return f"CAST({name} AS DOUBLE)" if name in have else "CAST(NULL AS DOUBLE)"

    # NULL counts as 0 in every sum (as SQL's sum skips it; a sum of only NULLs reads 0, not NULL)
    y = f"COALESCE({col('expected_correct')}, {col('correct')}, 0.0)"
    measures = ", ".join(f"COALESCE({col(m)}, 0.0) AS {m}" for m in COMPUTE_COLUMNS)
    table = _run(
        con,
        lambda union: (
            f"SELECT file_index::INTEGER AS file, problem_id::VARCHAR AS problem_id, {y} AS y, "
            f"{measures}, {_flags_sql(names)} AS flags FROM {_scan(files, union=union)} WHERE status = 'ok'"
        ),
        arrow=True,
    )
    coded = pc.dictionary_encode(table["problem_id"].combine_chunks())
    order = pc.sort_indices(coded.dictionary).to_numpy()
    rank = np.empty(len(order), np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    indices = rank[coded.indices.to_numpy(zero_copy_only=False)] if len(order) else np.zeros(0, np.int32)
    cols: dict[str, pa.Array] = {
        "file": pa.array(_numpy(table["file"]).astype(np.int32)),
        "problem_id": pa.DictionaryArray.from_arrays(
            pa.array(indices, pa.int32()), coded.dictionary.take(order)
        ),
    }
    for m in ("y", *COMPUTE_COLUMNS):
        v = _numpy(table[m]).astype(float, copy=False)
        narrow = v.astype(np.float32)
        cols[m] = pa.array(narrow if np.array_equal(narrow, v) else v)
    per_file = _per_file(cols["file"].to_numpy(), _numpy(table["flags"]).astype(np.uint8), len(files))
    part = pa.table(cols)
    tmp = path.with_name(f".{path.name}.tmp")
    feather.write_feather(part, tmp, compression="uncompressed", chunksize=max(part.num_rows, 1))
    tmp.replace(path)
    return per_file


def _config_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (configs.parquet): its first cell's columns, `pool` if any cell has one."""
    cols = [
        c
        for c in cells.columns
        if c not in ("cell_id", "seed", "file", "ident", "part", "part_file", *GRADING)
    ]
    pool = cells.groupby("config_id")["pool"].any()
    cfg = cells[cols].drop_duplicates("config_id").sort_values("config_id").reset_index(drop=True)
    return cfg.assign(pool=cfg["config_id"].map(pool).astype(bool))


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
    """AnalysisData for one difficulty method from the summary (brought up to date first when `build`): the
    parts combined into per (config, problem, seed) values, and their per (config, bin) stats."""
    out = build_summary(results_dir) if build else _summary_dir(results_dir)
    if not (out / "cells.parquet").is_file() or not (out / "meta.json").is_file():
        raise NoResultsError(f"{out}: no summary; run `tts analyze {results_dir}` (or build_summary) first")
    methods = json.loads((out / "meta.json").read_text())["methods"]
    method = method or pick_method(results_dir, methods)
    if method not in methods:
        raise ValueError(f"method: {method!r} has no bins in {results_dir}; available: {', '.join(methods)}")
    cfg = pq.read_table(out / "configs.parquet").to_pandas()
    combined = _combined(out)
    bins = _bins(results_dir, method, combined, cfg)
    per_bin = bins if method != "none" else None  # without bins: the ALL_BIN rows only
    stats = per_bin_stats(combined, cfg, per_bin).assign(method=method).merge(cfg, on="config_id", how="left")
    binning = pq.read_table(out / "binning.parquet").to_pandas()
    return AnalysisData(
        stats=stats,
        bins=bins,
        method=method,
        values=lambda ids=None: _select(combined.index, ids),
        index=combined.index,
        traits=strategy_traits(results_dir),
        binning=binning[binning["method"] == method].drop(columns="method"),
    )


def _select(index: Index, ids: Sequence[str] | None) -> pd.DataFrame:
    """The values frame (tests, notebooks: the tables read the index itself)."""
    values = index.frame()
    return values if ids is None else values[values["config_id"].isin([str(i) for i in ids])]


_LAST: dict[tuple[str, str], Combined] = {}


def _combined(out: Path) -> Combined:
    """`combine(out)`, reused while the summary is unchanged (its meta.json and cells.parquet): a report loads
    the summary once per difficulty method (the tables' and the adaptive comparison's), and one values frame
    keeps one integer index (tts.analysis.cube). Only the latest summary is held."""
    st = (out / "cells.parquet").stat()
    ident = (str(out.resolve()), f"{(out / 'meta.json').read_text()}|{st.st_size}|{st.st_mtime_ns}")
    if ident not in _LAST:
        _LAST.clear()
        _LAST[ident] = combine(out)
    return _LAST[ident]


@dataclass
class Combined:
    """The current cells' rows of every part: each row's codes (`row_*`: config into `configs`, problem into
    `problems`, both sorted ids, seed into `seeds`, sorted values), the selection's index over them
    (tts.analysis.cube: per (problem, seed) sums of every configuration, its frame the values), and per
    (config, problem) every summed column (`pair_*`: what the per-bin stats add up, bins being per problem)."""

    configs: np.ndarray
    problems: pd.Index
    seeds: np.ndarray
    index: Index
    row_config: np.ndarray
    row_problem: np.ndarray
    row_seed: np.ndarray
    pair_config: np.ndarray
    pair_problem: np.ndarray
    pair_columns: dict[str, np.ndarray]


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as one numpy array: zero-copy for one chunk (a summary part), else concatenated."""
    chunks = [c.to_numpy(zero_copy_only=False) for c in column.chunks]
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks) if chunks else np.zeros(0)


def _config_prints(cells: pd.DataFrame) -> pd.Series:
    """config_id -> identity of its current cell files (ids, sizes, times): what its values come from."""
    text = (cells["cell_id"].astype(str) + "|" + cells["ident"].astype(str)).rename("cell")
    joined = text.groupby(cells["config_id"].astype(str)).agg(lambda v: "\n".join(sorted(v)))
    return joined.map(lambda t: hashlib.sha1(t.encode()).hexdigest())


def combine(out: Path) -> Combined:
    """Read every part and keep the rows of current cells, coded against the sorted ids of all parts: no
    sort of the rows and no string work per row (a part's problems are coded against its own sorted
    dictionary, mapped here once per distinct problem)."""
    import pyarrow.feather as feather

    cells = pq.read_table(
        out / "cells.parquet", columns=["cell_id", "ident", "part", "part_file", "config_id", "seed"]
    ).to_pandas()
    configs = np.sort(cells["config_id"].astype(str).unique()).astype(object)
    cell_seeds = cells["seed"].fillna(0).astype(np.int64).to_numpy()
    seed_vals = np.unique(cell_seeds)
    tables = {
        part: (feather.read_table(out / PARTS / f"{part}.arrow", memory_map=True), mine)
        for part, mine in cells.groupby("part", sort=True)
    }
    dictionaries = {
        part: np.asarray(
            t["problem_id"].chunk(0).dictionary.to_numpy(zero_copy_only=False) if t.num_rows else [],
            dtype=object,
        )
        for part, (t, _) in tables.items()
    }
    found = [d for d in dictionaries.values() if len(d)]
    puniq = pd.Index(np.sort(pd.unique(np.concatenate(found))) if found else np.zeros(0, dtype=object))
    cfg_code = pd.Index(configs).get_indexer(cells["config_id"].astype(str))
    seed_code = np.searchsorted(seed_vals, cell_seeds)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("config", "problem", "seed", "y", *COMPUTE_COLUMNS)}
    for part, (t, mine) in tables.items():
        if not t.num_rows:
            continue
        files = _numpy(t["file"]).astype(np.int64)
        size = int(max(files.max(), mine["part_file"].max())) + 1
        of_cfg, of_seed = np.full(size, -1, np.int64), np.zeros(size, np.int64)
        at = mine["part_file"].to_numpy(np.int64)
        of_cfg[at], of_seed[at] = cfg_code[mine.index], seed_code[mine.index]
        rc = of_cfg[files]
        live = None if (rc >= 0).all() else rc >= 0  # rows of a replaced cell file: not current

        def pick(v: np.ndarray, keep: np.ndarray | None = live) -> np.ndarray:
            return v if keep is None else v[keep]

        problem = pa.chunked_array([c.indices for c in t["problem_id"].chunks])
        pmap = puniq.get_indexer(dictionaries[part])
        parts["config"].append(pick(rc))
        parts["problem"].append(pick(pmap[_numpy(problem)]))
        parts["seed"].append(pick(of_seed[files]))
        for col in ("y", *COMPUTE_COLUMNS):
            parts[col].append(pick(_numpy(t[col])))
    cat = {k: v[0] if len(v) == 1 else np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    rc, rp, rs = (cat.pop(k).astype(np.int64, copy=False) for k in ("config", "problem", "seed"))
    y = cat.pop("y").astype(float, copy=False)
    index = Index.from_codes(configs, puniq, seed_vals, rc, rp, rs, y)
    index.persist(out / MEMO, _config_prints(cells))
    npb = max(len(puniq), 1)
    key = rc * npb + rp
    span = len(configs) * npb
    if span <= 8 * len(key) + 10_000_000:  # a dense count: one pass, no sort
        rows = np.bincount(key, minlength=span)
        pairs = np.flatnonzero(rows)
        row_pair, npairs = None, len(pairs)
    else:
        pairs, row_pair = np.unique(key, return_inverse=True)
        npairs = len(pairs)
        rows = np.bincount(row_pair, minlength=npairs)

    def total(weights: np.ndarray) -> np.ndarray:
        if row_pair is None:
            return np.bincount(key, weights=weights, minlength=span)[pairs]
        return np.bincount(row_pair, weights=weights, minlength=npairs)

    pair = {
        "y_sum": total(y),
        "y_sq": total(y * y),
        "rows": (rows[pairs] if row_pair is None else rows).astype(np.int64),
    }
    for m in COMPUTE_COLUMNS:
        pair[f"{m}_sum"] = total(cat.pop(m))
    return Combined(
        configs,
        puniq,
        seed_vals,
        index,
        rc.astype(np.int32),
        rp.astype(np.int32),
        rs.astype(np.int32),
        (pairs // npb).astype(np.int32),
        (pairs % npb).astype(np.int32),
        pair,
    )


def _bins(results_dir: str | Path, method: str, data: Combined, cfg: pd.DataFrame) -> pd.DataFrame:
    from tts.analysis.io import difficulty_path

    path = difficulty_path(results_dir)
    if method != "none" and path.is_file():
        d = pq.read_table(
            path, columns=["policy", "problem_id", "method", "bin"], filters=[("method", "=", method)]
        ).to_pandas()
        return d.drop(columns="method").astype({"bin": str})
    pairs = pd.DataFrame(
        {
            "config_id": np.asarray(data.configs, dtype=object)[data.pair_config],
            "problem_id": np.asarray(data.problems, dtype=str)[data.pair_problem],
        }
    )
    pv = pairs.merge(cfg[["config_id", "policy"]], on="config_id")
    return pv[["policy", "problem_id"]].drop_duplicates().assign(bin=ALL_BIN).reset_index(drop=True)


def per_bin_stats(data: Combined, cfg: pd.DataFrame, bins: pd.DataFrame | None) -> pd.DataFrame:
    """Per (config, bin) sums (`combine`'s per (config, problem) sums added up), `problems` and `seeds`
    (distinct counts), plus the ALL_BIN rows over every problem; `bins` (policy, problem_id, bin) of one method,
    or None."""
    configs = pd.Index(data.configs)
    policy = cfg.set_index("config_id")["policy"].reindex(configs).astype(str)
    nconf, nprob, nseed = len(configs), max(len(data.problems), 1), max(len(data.seeds), 1)
    ways = []
    if bins is not None and len(bins):
        pol = pd.Index(policy.unique())
        pol_of = pol.get_indexer(policy)
        labels = pd.Index(pd.unique(bins["bin"].astype(str)))
        lookup = np.full((len(pol), nprob), -1, np.int64)
        bp = pol.get_indexer(bins["policy"].astype(str))
        bq = data.problems.get_indexer(bins["problem_id"].astype(str))
        ok = (bp >= 0) & (bq >= 0)
        lookup[bp[ok], bq[ok]] = labels.get_indexer(bins["bin"].astype(str))[ok]

        def bin_of(c: np.ndarray, p: np.ndarray) -> np.ndarray:
            return np.where(pol_of[c] >= 0, lookup[np.maximum(pol_of[c], 0), p], -1)

        ways.append((bin_of, np.asarray(labels, dtype=object)))
    ways.append((lambda c, p: np.zeros(len(c), np.int64), np.asarray([ALL_BIN], dtype=object)))
    out = []
    for bin_of, names in ways:
        nb = len(names)
        size = nconf * nb
        b = bin_of(data.pair_config, data.pair_problem)
        keep = b >= 0
        g = (data.pair_config.astype(np.int64) * nb + b)[keep]
        row = {k: np.bincount(g, weights=v[keep], minlength=size) for k, v in data.pair_columns.items()}
        row["problems"] = np.bincount(g, minlength=size)
        sb = bin_of(data.row_config, data.row_problem)
        sk = sb >= 0
        sg = (data.row_config.astype(np.int64) * nb + sb)[sk]
        seen = np.zeros(size * nseed, bool)
        seen[sg * nseed + data.row_seed[sk]] = True
        row["seeds"] = seen.reshape(size, nseed).sum(1)
        idx = np.flatnonzero(row["rows"] > 0)
        df = pd.DataFrame(
            {
                k: row[k][idx]
                for k in [
                    "y_sum",
                    "y_sq",
                    "rows",
                    *[f"{m}_sum" for m in COMPUTE_COLUMNS],
                    "problems",
                    "seeds",
                ]
            }
        )
        df.insert(0, "bin", names[idx % nb])
        df.insert(0, "config_id", np.asarray(configs, dtype=object)[idx // nb])
        out.append(df)
    stats = pd.concat(out, ignore_index=True)
    return stats.astype({"rows": np.int64, "problems": np.int64, "seeds": np.int64})
