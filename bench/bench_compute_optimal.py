"""Benchmark: the compute-optimal table from ~10M result rows (synthetic, the results schema, the store layout).

    python bench/bench_compute_optimal.py                      # data cached in $TTS_BENCH_DIR or /tmp/tts_bench_10m
    python bench/bench_compute_optimal.py --rows 1000000 --repeat 5
    python bench/bench_compute_optimal.py --baseline-rev a4135e1 --incremental   # old code too, same run

Prints, in seconds (median of --repeat runs, DuckDB limited to --threads):
  summary build  materialising <results>/summary from scratch (per-cell parts of the projected rows)
  from summary   load_summary + compute_optimal_tables: held-out selection, bootstrap CIs redoing the
                 selection in every resample (--replicates)
  pandas         a plain pandas groupby over the same rows (read, join bins, mean, in-sample best per group,
                 no CIs): the floor any table pays to read the rows once
and the ratio pandas / summary.

With --baseline-rev REV each phase (build, tables) runs in its own subprocess, once with this checkout and once
with REV checked out as a `git worktree` at --baseline-dir (removed at the end), PYTHONPATH at that tree; each
reports its wall and CPU seconds, its peak RSS (ru_maxrss of that process) and where `tts` was imported from.
The ratio old / new is printed per phase, and the tables of both are compared cell by cell (rtol 1e-9).
With --incremental: the folder is copied (cell files hard-linked), `tts analyze --no-plots` runs on the copy (a
watched sweep's previous round), one new cell file is written into the copy through tts.store, and `tts analyze
--no-plots` is timed again (this code only): the summary scans the new file alone, and bootstrap sums of the
groups the cell did not change are read back (summary/memo).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("TTS_BENCH_TREE") or str(REPO))  # a worker imports its own tree's tts

from tts.analysis.keys import DESCRIPTIVE  # noqa: E402
from tts.testing.synthetic import SyntheticSpec, write_results  # noqa: E402

TARGET_BUILD_S = 5.0  # summary from scratch, 10M rows (issue 26)
TARGET_SUMMARY_S = 10.0  # held-out selection with 1,000 bootstrap replicates over every group
TARGET_RSS_GB = 4.0
TARGET_INCREMENTAL_S = 2.0  # `tts analyze` after one new cell file
TABLES = ("generation", "flops", "tokens", "cross_size")


def bench_spec(rows: int) -> SyntheticSpec:
    """3 policies x 2 PRMs x 6 strategies x 2 aggregations x 9 budgets x 4 seeds = 2,088 cells; problems fill
    the row count (4,800 problems for 10M rows)."""
    base = SyntheticSpec(
        sweep="bench",
        aggregations=("last", "min"),
        budgets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        seeds=(0, 1, 2, 3),
        pool_size=8,
        n_problems=1,
    )
    from tts.testing.synthetic import cell_configs

    cells = len(cell_configs(base))
    return SyntheticSpec(**{**base.__dict__, "n_problems": max(rows // cells, 10)})


def ensure_data(folder: Path, rows: int) -> Path:
    stamp = folder / "bench_rows.txt"
    if stamp.is_file() and stamp.read_text().strip() == str(rows):
        return folder
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    t = time.perf_counter()
    write_results(folder, bench_spec(rows))
    stamp.write_text(str(rows))
    print(f"wrote synthetic results to {folder} in {time.perf_counter() - t:.1f} s")
    return folder


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """(median wall seconds, median process CPU seconds, last result)."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def pandas_table(folder: Path, method: str):
    """The plain-pandas way: read every row, join bins, group, pick the best strategy per group."""
    import pandas as pd
    import pyarrow.parquet as pq

    from tts.analysis.io import result_files

    cols = [*DESCRIPTIVE, "problem_id", "correct", "expected_correct", "flops", "status"]
    strings = ["policy", "prm", "prm_kind", "dataset", "strategy", "aggregation", "problem_id", "status"]
    # string columns as pandas categoricals: the memory-lean way to hold 10M rows in pandas
    table = pq.read_table([str(f) for f in result_files(folder)], columns=cols, read_dictionary=strings)
    rows = table.to_pandas()
    rows = rows[rows["status"] == "ok"]
    rows["y"] = rows["expected_correct"].fillna(rows["correct"].astype(float))
    diff = pd.read_parquet(folder / "difficulty.parquet")
    diff = diff[diff["method"] == method][["policy", "problem_id", "bin"]]
    rows = rows.merge(diff, on=["policy", "problem_id"], how="left")
    keys = [*DESCRIPTIVE, "bin"]
    acc = rows.groupby(keys, dropna=False, observed=True)[["y", "flops"]].mean().reset_index()
    acc["_acc"] = acc["y"].round(12)
    acc = acc.sort_values(["_acc", "flops", "strategy"], ascending=[False, True, True])
    return acc.drop_duplicates(["policy", "prm", "dataset", "bin", "n"])


def worker(args: argparse.Namespace) -> int:
    """One phase in this process (tts from TTS_BENCH_TREE): prints one JSON line."""
    import tts
    from tts.analysis import summary
    from tts.analysis.settings import load_analysis_config
    from tts.analysis.tables import compute_optimal_tables

    folder = Path(args.dir)
    out: dict = {"phase": args.worker, "tts": str(Path(tts.__file__).resolve().parents[1])}
    if args.worker == "build":
        out["wall"], out["cpu"], _ = timed(
            lambda: summary.build_summary(folder, force=True, threads=args.threads), 1
        )
    else:

        def from_summary():
            import shutil

            # cold: no bootstrap sums kept from an earlier analysis (summary/memo, this code only)
            shutil.rmtree(folder / "summary" / "memo", ignore_errors=True)
            getattr(summary, "_LAST", {}).clear()
            cfg = load_analysis_config(overrides=[f"replicates={args.replicates}"])
            return compute_optimal_tables(summary.load_summary(folder), cfg)

        out["wall"], out["cpu"], tables = timed(from_summary, args.repeat)
        out["method"] = tables.method
        out["generation_rows"] = len(tables.generation)
        if args.out:
            for name in TABLES:
                getattr(tables, name).to_parquet(Path(args.out) / f"{name}.parquet", index=False)
    out["rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print("BENCH " + json.dumps(out), flush=True)
    return 0


def run_phase(tree: Path, phase: str, args: argparse.Namespace, out: Path | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", phase, "--dir", args.dir]
    cmd += [
        "--threads",
        str(args.threads),
        "--replicates",
        str(args.replicates),
        "--repeat",
        str(args.repeat),
    ]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        cmd += ["--out", str(out)]
    env = {**os.environ, "TTS_BENCH_TREE": str(tree), "PYTHONPATH": str(tree)}
    proc = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")]
    if proc.returncode or not lines:
        raise SystemExit(
            f"{phase} in {tree} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("BENCH ") :])


def same_tables(new: Path, old: Path) -> str:
    """Every cell of every table compared (floats to rtol 1e-9): 'equal' or what differs."""
    import numpy as np
    import pandas as pd

    problems = []
    for name in TABLES:
        a, b = pd.read_parquet(new / f"{name}.parquet"), pd.read_parquet(old / f"{name}.parquet")
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            problems.append(f"{name}: shape {a.shape} vs {b.shape}")
            continue
        for col in b.columns:
            x, y = a[col], b[col]
            if pd.api.types.is_float_dtype(y) and pd.api.types.is_numeric_dtype(x):
                ok = np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-9, atol=1e-12, equal_nan=True)
            else:
                ok = x.astype(str).tolist() == y.astype(str).tolist()
            if not ok:
                problems.append(f"{name}.{col}")
    return "equal (every cell, rtol 1e-9)" if not problems else "DIFFER: " + ", ".join(problems)


def incremental(folder: Path, args: argparse.Namespace) -> dict:
    """Copy the folder (cell files and parts hard-linked), analyze it once, land one new cell in the copy through
    tts.store, time `tts analyze --no-plots` on it, then once more with nothing new."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tts.store import SweepStore

    copy = Path(str(folder) + "_incremental")
    if copy.exists():
        shutil.rmtree(copy)

    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith((".parquet", ".arrow")):  # never rewritten in place (atomic replaces)
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(folder, copy, copy_function=link_or_copy)
    cmd = [
        sys.executable,
        "-m",
        "tts.analysis.report",
        str(copy),
        "--no-plots",
        "--set",
        f"replicates={args.replicates}",
    ]
    # the analysis before the cell lands (a watched sweep's previous round): untimed
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    before = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"tts analyze failed:\n{proc.stderr[-3000:]}")
    src = sorted((copy / "cells").glob("*.parquet"))[0]
    table = pq.read_table(src)
    cell_id = "bench-new-cell"  # a fifth seed of an existing configuration
    table = table.set_column(
        table.schema.get_field_index("cell_id"), "cell_id", pa.array([cell_id] * len(table))
    )
    for col in ("seed", "config.seed"):
        if col in table.column_names:
            i = table.schema.get_field_index(col)
            table = table.set_column(i, col, pa.array([99] * len(table), table.schema.field(col).type))
    SweepStore(copy).write("cell", cell_id, table)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if proc.returncode:
            raise SystemExit(f"tts analyze failed:\n{proc.stderr[-3000:]}")
    shutil.rmtree(copy)
    return {"before": before, "new_cell": times[0], "nothing_new": times[1]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.environ.get("TTS_BENCH_DIR", "/tmp/tts_bench_10m"))
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--baseline-rev", default=None, help="also measure the analysis of this git revision")
    ap.add_argument("--baseline-dir", default="/tmp/tts_baseline_analysis", help="its worktree (removed)")
    ap.add_argument("--incremental", action="store_true", help="time `tts analyze` after one new cell lands")
    ap.add_argument("--worker", choices=["build", "tables"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    import tempfile

    import duckdb

    folder = ensure_data(Path(args.dir), args.rows)
    args.dir = str(folder)
    nrows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/cells/*.parquet')").fetchall()[0][0]
    nfiles = len(list((folder / "cells").glob("*.parquet")))
    print(
        f"data: {nrows:,} result rows in {nfiles:,} cell files ({folder}); cpus={os.cpu_count()} "
        f"load avg={os.getloadavg()[0]:.1f}; duckdb threads={args.threads}; {args.replicates} replicates"
    )
    trees = {"new": REPO}
    scratch = Path(tempfile.mkdtemp(prefix="tts_bench_tables_"))
    if args.baseline_rev:
        tree = Path(args.baseline_dir)
        if tree.exists():
            raise SystemExit(
                f"{tree} exists; remove it (git worktree remove --force {tree}) or pass --baseline-dir"
            )
        git = ["git", "-C", str(REPO)]
        subprocess.run([*git, "worktree", "add", "--detach", str(tree), args.baseline_rev], check=True)
        trees["old"] = tree
    results: dict[str, dict[str, dict]] = {}
    try:
        for label, tree in trees.items():  # new first: the old code leaves its own summary layout behind
            results[label] = {
                "build": run_phase(tree, "build", args),
                "tables": run_phase(tree, "tables", args, scratch / label),
            }
            print(f"{label}: tts from {results[label]['build']['tts']}", flush=True)
    finally:
        if args.baseline_rev:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", args.baseline_dir], check=False
            )
    verdict = {True: "OK", False: "MISSED"}
    print("                       wall          CPU (process)   peak RSS")
    for label, phases in results.items():
        b, t = phases["build"], phases["tables"]
        print(
            f"{label:<4} summary build  {b['wall']:8.2f} s   {b['cpu']:8.2f} s   {b['rss_gb']:5.2f} GB   "
            f"target <= {TARGET_BUILD_S} s {verdict[b['wall'] <= TARGET_BUILD_S] if label == 'new' else ''}"
        )
        print(
            f"{label:<4} from summary   {t['wall']:8.2f} s   {t['cpu']:8.2f} s   {t['rss_gb']:5.2f} GB   "
            f"target <= {TARGET_SUMMARY_S} s {verdict[t['wall'] <= TARGET_SUMMARY_S] if label == 'new' else ''}"
        )
    new = results["new"]
    peak = max(new["build"]["rss_gb"], new["tables"]["rss_gb"])
    print(f"new peak RSS {peak:.2f} GB: target <= {TARGET_RSS_GB} GB {verdict[peak <= TARGET_RSS_GB]}")
    if "old" in results:
        old = results["old"]
        for phase in ("build", "tables"):
            print(
                f"ratio old / new, {phase}: {old[phase]['wall'] / new[phase]['wall']:.1f}x (wall), "
                f"{old[phase]['cpu'] / new[phase]['cpu']:.1f}x (CPU: on a shared machine the steadier one)"
            )
        print(f"tables new vs old ({args.baseline_rev}): {same_tables(scratch / 'new', scratch / 'old')}")
    shutil.rmtree(scratch, ignore_errors=True)
    if args.incremental:
        inc = incremental(folder, args)
        print(
            f"tts analyze --no-plots on the folder: {inc['before']:.2f} s; then after one new cell: "
            f"{inc['new_cell']:.2f} s "
            f"(target <= {TARGET_INCREMENTAL_S} s {verdict[inc['new_cell'] <= TARGET_INCREMENTAL_S]}); "
            f"again with nothing new: {inc['nothing_new']:.2f} s"
        )
    if not args.skip_pandas:
        pandas_s, pandas_cpu, _ = timed(lambda: pandas_table(folder, new["tables"]["method"]), 1)
        print(
            f"pandas groupby  {pandas_s:8.2f} s   {pandas_cpu:8.2f} s   read + join + groupby + best, no CIs"
        )
        print(f"ratio pandas / from summary (new) = {pandas_s / new['tables']['wall']:.2f}x (wall)")
    print(
        f"{new['tables']['generation_rows']} generation-matched rows; load avg now {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
