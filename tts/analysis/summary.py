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
A new or rewritten cell file is scanned into a new part; files already summarised are not read again; a part no
current cell uses is deleted. `load_summary` combines the parts (a counting sort on integer codes: per (config,
problem, seed) sums, ordered as the rows always were) and the per (config, bin) stats of one difficulty method
into an AnalysisData (tts.analysis.source). bench/bench_compute_optimal.py measures both against the previous
implementation on 10M rows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tts.analysis.io import (
    NoResultsError,
    connect,
    ensure_difficulty,
    fingerprint,
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
# 4: configs carry `parallel` (tts.analysis.revisions); 5: problem values per seed; 6: per-cell parts;
# 7: per-cell grading sums (tts.analysis.io.grading_table without a scan)
VERSION = 7
PARTS = "parts"
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
    cells = con.sql(
        f"SELECT cell_id, {picks}, {pool} AS _pool, any_value(filename) AS file, {_grading_sql(names)} "
        f"FROM {_scan(files, filename=True, union=True)} GROUP BY cell_id"
    ).df()
    cells["config_id"] = configuration_ids(cells)
    cells["seed"] = row_seeds(cells)
    cells["expected_correct"] = np.where(cells.pop("_pool").astype(bool), 1.0, np.nan)
    out = cells[["cell_id", "file", "config_id", "seed", *GRADING]]
    return out.merge(configurations(cells), on="config_id", how="left")


GRADING = ["g_key", "g_rows", "g_correct", "g_no_fallback", "g_fallback", "g_unrecorded"]


def _grading_sql(names: Sequence[str]) -> str:
    """Per-cell sums behind tts.analysis.io.grading_table (its rows: status ok, correct known)."""
    kind = "extraction" if "extraction" in names else "NULL::VARCHAR"
    key = "coalesce(config_id, cell_id)" if "config_id" in names else "cell_id"
    flag = "coalesce(fallback_extraction, false)" if "fallback_extraction" in names else "false"
    fallback = f"({flag} OR coalesce({kind}, '') = 'last_number')"
    where = "FILTER (WHERE status = 'ok' AND correct IS NOT NULL)"
    return (
        f"any_value({key}) AS g_key, count(*) {where} AS g_rows, "
        f"coalesce(sum(correct::DOUBLE) {where}, 0) AS g_correct, "
        f"coalesce(sum((correct AND NOT {fallback})::DOUBLE) {where}, 0) AS g_no_fallback, "
        f"coalesce(sum({fallback}::DOUBLE) {where}, 0) AS g_fallback, "
        f"coalesce(sum(({kind} IS NULL)::DOUBLE) {where}, 0) AS g_unrecorded"
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
        cells = _configs(con, new["file"].tolist()).merge(ident, on="file", how="left").assign(part=part)
        _scan_part(con, new["file"].tolist(), out / PARTS / f"{part}.arrow")
        frames.append(cells)
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


def _scan_part(con: duckdb.DuckDBPyConnection, files: Sequence[str], path: Path) -> None:
    """One Arrow file of the rows of `files` (status ok), projected to what the summary sums: cell and problem
    (dictionary-coded), y, y^2 and every compute measure. No grouping here: a (cell, problem) has one row in a
    normal cell, and any repeats are summed when parts are combined."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.feather as feather

    names = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {_scan(files, union=True)}").fetchall()}

    def col(name: str) -> str:
        return f"CAST({name} AS DOUBLE)" if name in names else "CAST(NULL AS DOUBLE)"

    # NULL counts as 0 in every sum (as SQL's sum skips it; a sum of only NULLs reads 0, not NULL)
    y = f"COALESCE({col('expected_correct')}, {col('correct')}, 0.0)"
    measures = ", ".join(f"COALESCE({col(m)}, 0.0) AS {m}" for m in COMPUTE_COLUMNS)

    def go(union: bool) -> pa.Table:
        return con.sql(
            f"SELECT cell_id, problem_id, {y} AS y, {measures} FROM {_scan(files, union=union)} "
            "WHERE status = 'ok'"
        ).to_arrow_table()

    try:
        table = go(False)
    except (duckdb.InvalidInputException, duckdb.BinderException) as exc:
        if "schema mismatch" not in str(exc) and "not found" not in str(exc):
            raise
        table = go(True)
    table = table.combine_chunks()
    cols = {
        "cell_id": pc.dictionary_encode(table["cell_id"].cast(pa.string())),
        "problem_id": pc.dictionary_encode(table["problem_id"].cast(pa.string())),
        "y": table["y"],
        **{m: table[m] for m in COMPUTE_COLUMNS},
    }
    tmp = path.with_name(f".{path.name}.tmp")
    feather.write_feather(pa.table(cols), tmp, compression="lz4")
    tmp.replace(path)


def _config_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (configs.parquet): its first cell's columns, `pool` if any cell has one."""
    cols = [c for c in cells.columns if c not in ("cell_id", "seed", "file", "ident", "part", *GRADING)]
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
    values = combined.values
    bins = _bins(results_dir, method, out, values, cfg)
    per_bin = bins if method != "none" else None  # without bins: the ALL_BIN rows only
    stats = per_bin_stats(combined, cfg, per_bin).assign(method=method).merge(cfg, on="config_id", how="left")
    binning = pq.read_table(out / "binning.parquet").to_pandas()
    return AnalysisData(
        stats=stats,
        bins=bins,
        method=method,
        values=lambda ids=None: _select(values, ids),
        binning=binning[binning["method"] == method].drop(columns="method"),
    )


def _select(values: pd.DataFrame, ids: Sequence[str] | None) -> pd.DataFrame:
    if ids is None:
        return (
            values  # the one frame: every AnalysisData of this summary shares its index (tts.analysis.cube)
        )
    return values[values["config_id"].isin([str(i) for i in ids])]


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
    """The current cells' rows of every part, summed: per (config, problem, seed) in `values` (ordered by
    config_id, problem_id, seed; `slot_*` the codes of each of its rows: config into `configs`, problem into
    `problems`, sorted ids, seed into `seeds`), and per (config, problem) every summed column (`pair_*`: what
    the per-bin stats add up, bins being per problem)."""

    configs: np.ndarray
    problems: pd.Index
    seeds: np.ndarray
    values: pd.DataFrame
    slot_config: np.ndarray
    slot_problem: np.ndarray
    slot_seed: np.ndarray
    pair_config: np.ndarray
    pair_problem: np.ndarray
    pair_columns: dict[str, np.ndarray]


def _rank_codes(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, code of every entry), by hashing rather than sorting every entry."""
    codes, found = pd.factorize(raw)
    found = np.asarray(found)
    rank = np.empty(len(found), np.int64)
    rank[np.argsort(found, kind="stable")] = np.arange(len(found))
    return np.sort(found), rank[codes] if len(codes) else codes.astype(np.int64)


def combine(out: Path) -> Combined:
    """Read every part, keep the rows of current cells, and sum them per (config, problem, seed)."""
    import pyarrow as pa
    import pyarrow.feather as feather

    cells = pq.read_table(out / "cells.parquet", columns=["cell_id", "part", "config_id", "seed"]).to_pandas()
    configs = np.sort(cells["config_id"].astype(str).unique()).astype(object)
    tables = []
    for part, mine in cells.groupby("part", sort=True):
        tables.append((feather.read_table(out / PARTS / f"{part}.arrow", memory_map=True), mine))
    problems = pa.chunked_array(
        [t["problem_id"].combine_chunks().dictionary for t, _ in tables] or [pa.array([], pa.string())]
    )
    # problem codes in id order: values come out ordered (config_id, problem_id, seed), as the rows always were
    puniq = pd.Index(np.sort(pd.unique(np.asarray(problems.to_numpy(zero_copy_only=False), dtype=object))))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("config", "problem", "seed", "y", *COMPUTE_COLUMNS)}
    for t, mine in tables:
        cell = t["cell_id"].combine_chunks()
        names = pd.Index(np.asarray(cell.dictionary.to_numpy(zero_copy_only=False), dtype=object))
        current = mine.drop_duplicates("cell_id").set_index("cell_id").reindex(names)  # NaN: replaced cells
        cfg_code = pd.Index(configs).get_indexer(
            current["config_id"].astype(object).where(current["config_id"].notna(), "")
        )
        rows = cell.indices.to_numpy(zero_copy_only=False)
        live = cfg_code[rows] >= 0
        keep = None if live.all() else live

        def pick(v: np.ndarray, keep: np.ndarray | None = keep) -> np.ndarray:
            return v if keep is None else v[keep]

        prob = t["problem_id"].combine_chunks()
        pmap = puniq.get_indexer(np.asarray(prob.dictionary.to_numpy(zero_copy_only=False), dtype=object))
        parts["config"].append(pick(cfg_code[rows]))
        parts["problem"].append(pick(pmap[prob.indices.to_numpy(zero_copy_only=False)]))
        parts["seed"].append(pick(current["seed"].fillna(0).to_numpy(np.int64)[rows]))
        for col in ("y", *COMPUTE_COLUMNS):
            parts[col].append(pick(t[col].to_numpy()))
    cat = {k: v[0] if len(v) == 1 else np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    cc, pc_ = cat.pop("config").astype(np.int64), cat.pop("problem").astype(np.int64)
    seed_vals, sd = _rank_codes(cat.pop("seed").astype(np.int64))
    ns, npb = max(len(seed_vals), 1), max(len(puniq), 1)
    key = (cc * npb + pc_) * ns + sd
    span = len(configs) * npb * ns
    if span <= 8 * len(key) + 10_000_000:  # a counting sort: one pass, repeats summed by bincount
        cnt = np.bincount(key, minlength=span)
        slots = cnt > 0
        row_slot = (np.cumsum(slots) - 1)[key]
        size = int(slots.sum())
        key, counts = np.flatnonzero(slots), cnt[slots]
    else:
        order = np.argsort(key, kind="stable")
        skey = key[order]
        first = np.diff(skey, prepend=-1) != 0
        row_slot = np.empty(len(key), np.int64)
        row_slot[order] = np.cumsum(first) - 1
        key = skey[first]
        size = len(key)
        counts = np.bincount(row_slot, minlength=size)
    y_sum = np.bincount(row_slot, weights=cat["y"], minlength=size)
    kc, kp, ks = key // (npb * ns), (key // ns) % npb, key % ns
    first_pair = np.diff(kc * npb + kp, prepend=-1) != 0
    pair_of_slot = np.cumsum(first_pair) - 1
    npairs = int(first_pair.sum())
    row_pair = pair_of_slot[row_slot]
    del row_slot
    y = cat.pop("y")
    pair = {
        "y_sum": np.bincount(row_pair, weights=y, minlength=npairs),
        "y_sq": np.bincount(row_pair, weights=y * y, minlength=npairs),
        "rows": np.bincount(row_pair, minlength=npairs).astype(np.int64),
    }
    del y
    for m in COMPUTE_COLUMNS:
        pair[f"{m}_sum"] = np.bincount(row_pair, weights=cat.pop(m), minlength=npairs)
    del row_pair, cat, cc, pc_, sd
    values = pd.DataFrame(
        {
            "config_id": pd.Categorical.from_codes(kc, categories=configs),
            "problem_id": pd.Categorical.from_codes(kp, categories=puniq.astype(str)),
            "seed": seed_vals[ks] if len(seed_vals) else np.zeros(len(key), np.int64),
            "y_sum": y_sum,
            "rows": counts.astype(np.int64),
        }
    )
    return Combined(
        configs,
        puniq,
        seed_vals,
        values,
        kc.astype(np.int32),
        kp.astype(np.int32),
        ks.astype(np.int32),
        kc[first_pair].astype(np.int32),
        kp[first_pair].astype(np.int32),
        pair,
    )


def _bins(
    results_dir: str | Path, method: str, out: Path, values: pd.DataFrame, cfg: pd.DataFrame
) -> pd.DataFrame:
    from tts.analysis.io import difficulty_path

    path = difficulty_path(results_dir)
    if method != "none" and path.is_file():
        d = pq.read_table(
            path, columns=["policy", "problem_id", "method", "bin"], filters=[("method", "=", method)]
        ).to_pandas()
        return d.drop(columns="method").astype({"bin": str})
    pairs = values[["config_id", "problem_id"]].astype(str).drop_duplicates()
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
        sb = bin_of(data.slot_config, data.slot_problem)
        sk = sb >= 0
        sg = (data.slot_config.astype(np.int64) * nb + sb)[sk]
        seen = np.zeros(size * nseed, bool)
        seen[sg * nseed + data.slot_seed[sk]] = True
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
