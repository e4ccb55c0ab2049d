"""Benchmark: the compute-optimal table from ~10M result rows (synthetic, the results schema, the store layout).

    python bench/bench_compute_optimal.py                      # data cached in $TTS_BENCH_DIR or /tmp/tts_bench_10m
    python bench/bench_compute_optimal.py --rows 1000000 --repeat 5

Prints, in seconds (median of --repeat runs, DuckDB limited to --threads):
  summary build  materialising <results>/summary once (per-problem and per-bin sufficient statistics)
  from summary   load_summary + compute_optimal_tables: held-out selection, bootstrap CIs redoing the
                 selection in every resample (--replicates)
  pandas         a plain pandas groupby over the same rows (read, join bins, mean, in-sample best per group,
                 no CIs): the floor any table pays to read the rows once
and the ratio pandas / summary.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tts.analysis.keys import DESCRIPTIVE  # noqa: E402
from tts.testing.synthetic import SyntheticSpec, write_results  # noqa: E402

TARGET_SUMMARY_S = 30.0  # held-out selection with 1,000 bootstrap replicates over every group


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.environ.get("TTS_BENCH_DIR", "/tmp/tts_bench_10m"))
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--skip-build", action="store_true", help="reuse the summary if it is up to date")
    args = ap.parse_args(argv)

    import duckdb

    from tts.analysis import summary
    from tts.analysis.settings import load_analysis_config
    from tts.analysis.tables import compute_optimal_tables

    folder = ensure_data(Path(args.dir), args.rows)
    nrows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/cells/*.parquet')").fetchall()[0][0]
    nfiles = len(list((folder / "cells").glob("*.parquet")))
    print(
        f"data: {nrows:,} result rows in {nfiles:,} cell files ({folder}); cpus={os.cpu_count()} "
        f"load avg={os.getloadavg()[0]:.1f}; duckdb threads={args.threads}"
    )

    force = not args.skip_build
    build_s, build_cpu, _ = timed(lambda: summary.build_summary(folder, force=force, threads=args.threads), 1)

    def from_summary():
        cfg = load_analysis_config(overrides=[f"replicates={args.replicates}"])
        return compute_optimal_tables(summary.load_summary(folder), cfg)

    summary_s, summary_cpu, t_sum = timed(from_summary, args.repeat)
    verdict = {True: "OK", False: "MISSED"}
    print("                       wall (median)   CPU (process, all threads)")
    print(f"summary build         {build_s:8.2f} s   {build_cpu:8.2f} s   once per set of result files")
    print(
        f"from summary          {summary_s:8.3f} s   {summary_cpu:8.3f} s   held-out, {args.replicates} replicates; "
        f"target < {TARGET_SUMMARY_S} s {verdict[summary_s < TARGET_SUMMARY_S]}"
    )
    if not args.skip_pandas:
        pandas_s, pandas_cpu, _ = timed(lambda: pandas_table(folder, t_sum.method), 1)
        print(
            f"pandas groupby        {pandas_s:8.2f} s   {pandas_cpu:8.2f} s   read + join + groupby + best, no CIs"
        )
        print(f"ratio pandas / summary = {pandas_s / summary_s:.2f}x (wall)")
    print(f"{len(t_sum.generation)} generation-matched rows; load avg now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
