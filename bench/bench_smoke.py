"""Benchmark: the smoke sweep on the zoo, end to end with the real CLI, as a new user runs it.

    python bench/bench_smoke.py                    # tts sweep +sweep=smoke into a fresh temp folder, then analyze
    python bench/bench_smoke.py --results DIR      # keep the results (e.g. for the README's tables)

Prints the sweep's wall time (engine loads included; target <= 360 s on 2 cores), the number of problems per
difficulty bin (target >= 45 in >= 3 bins), and per (policy, verifier, strategy, N) the accuracy with its 95% CI half-width
over problems (target about +-0.15 or narrower at N = 16). A second run of the same command would compute
nothing (resume), so the folder must be fresh.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_SECONDS = 360


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=None, help="results root (default: a fresh temp folder)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for the sweep")
    args = ap.parse_args()
    root = args.results or Path(tempfile.mkdtemp(prefix="bench_smoke_"))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "tts.cli", "sweep", "+sweep=smoke", f"results_dir={root}", *args.overrides]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    analyze = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tts.cli", "analyze", str(root / "smoke")], check=True, env=env, cwd=ROOT
    )
    analyze = time.perf_counter() - analyze

    import tts.store

    df = tts.store.load(root / "smoke")
    bins = df.groupby("level")["problem_id"].nunique()
    print(f"\nsweep wall time: {wall:.0f} s (target <= {TARGET_SECONDS} s); analyze: {analyze:.0f} s")
    print("problems per level: " + ", ".join(f"L{k}: {v}" for k, v in bins.items()))
    value = df["expected_correct"].fillna(df["correct"].astype(float))
    df = df.assign(value=value)
    print(
        f"\n{'policy':14} {'verifier':12} {'strategy':20} {'N':>3} "
        + " ".join(f"{'L' + str(lv):>13}" for lv in bins.index)
    )
    for (policy, prm, strategy, n), g in df.groupby(["policy", "prm", "strategy", "n"]):
        cells = []
        for lv in bins.index:
            v = g[g["level"] == lv]["value"]
            half = 1.96 * math.sqrt(max(v.var(ddof=1), 0) / len(v)) if len(v) > 1 else float("nan")
            cells.append(f"{v.mean():.2f}+-{half:.2f}".rjust(13))
        print(f"{policy:14} {prm:12} {strategy:20} {n:3d} " + " ".join(cells))
    return 0 if wall <= TARGET_SECONDS and len(bins) >= 3 and bins.min() >= 45 else 1


if __name__ == "__main__":
    raise SystemExit(main())
