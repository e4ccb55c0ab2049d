"""Benchmark: generation throughput of a sweep on Ray vs a bare engine over the same prompts; engine loads vs cells.

    python bench/bench_sweep_throughput.py                       # embedded SmolLM2-135M, CPU
    python bench/bench_sweep_throughput.py --per-level 4 --n-max 4 --max-tokens 32 --policy-model /path/to/model

What it does (same machine, same engine settings, same requests):
  bare   one in-process VLLMPolicy: one generate call of N_max samples for every problem (the requests
         `build_pool` makes); throughput = generated tokens / generate wall time (engine start excluded).
  sweep  `tts sweep` of majority vote, best-of-N and weighted best-of-N at N = 1, 2, 4, N_max with the
         rule-based PRM: one engine actor, one pool job (a light Ray task calling the actor), grading,
         selection and atomic Parquet writes; throughput = generated tokens / (last result written - engine
         ready) (engine start excluded, everything else included).
  bare is run before and after the sweep (the machine may be shared; their mean is the reference).
Prints the ratio sweep / bare (target >= 0.9) and engine loads vs cells (target: 1 load for all cells).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
TARGET_RATIO = 0.9


def overrides(args: argparse.Namespace, results: str) -> list[str]:
    out = [
        f"results_dir={results}",
        "sweep.name=bench_throughput",
        "strategy=majority_vote,best_of_n,weighted_best_of_n",
        f"n={','.join(str(n) for n in sorted({1, 2, 4, args.n_max}))}",
        "prm=rule_arithmetic",
        f"dataset.levels=[{','.join(str(lv) for lv in args.levels)}]",
        f"dataset.per_level={args.per_level}",
        f"policy.max_tokens={args.max_tokens}",
        "cluster.max_inflight_per_engine=2",
    ]
    if args.policy_model:
        out.append(f"policy.model={args.policy_model}")
    return out


def bare(cfg: object, problems: list, n_max: int) -> tuple[int, float]:
    """(tokens generated, seconds) for one generate call of the pool's requests on an in-process engine."""
    from tts.config import sampling_settings
    from tts.engines.protocols import Conversation, GenerationRequest
    from tts.engines.vllm_policy import build

    policy = build(cfg.policy, cfg.engine)
    s = sampling_settings(cfg)
    requests = [
        GenerationRequest(
            policy.render(Conversation(p.question)),
            n=n_max,
            max_tokens=s.max_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
        )
        for p in problems
    ]
    start = time.perf_counter()
    out = policy.generate(requests)
    seconds = time.perf_counter() - start
    tokens = sum(c.tokens_out for g in out for c in g.completions)
    policy.shutdown()
    del policy
    gc.collect()
    return tokens, seconds


def sweep(grid: object) -> dict[str, float]:
    """Run the grid; measure tokens and the window from engine ready to the last result written."""
    from tts.runtime.driver import Driver

    marks: dict[str, float] = {}

    class TimedDriver(Driver):
        def on_event(self, kind: str, data: dict) -> None:
            if kind == "engine" and data.get("change") == "ready":
                marks.setdefault("ready", time.perf_counter())
            super().on_event(kind, data)

        def on_result(self, work: object, result: object) -> None:
            super().on_result(work, result)
            marks["last"] = time.perf_counter()

    summary = TimedDriver(grid, live=False).run()
    return {
        "tokens": summary.tokens,
        "seconds": marks["last"] - marks["ready"],
        "cells": summary.computed,
        "loads": summary.engine_loads,
        "wall": summary.wall_s,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--per-level", type=int, default=8)
    p.add_argument("--n-max", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument(
        "--policy-model", default=None, help="a local model folder instead of the embedded SmolLM2"
    )
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from tts.grid import expand
    from tts.runtime.plan import Problems

    results = tempfile.mkdtemp(prefix="tts_bench_sweep_")
    grid = expand(overrides(args, results))
    problems = Problems()
    problems.load(grid.cells)
    cfg = grid.cells[0].config
    plist = problems.for_cell(grid.cells[0])
    print(
        f"{len(plist)} problems x N_max {args.n_max}, max_tokens {args.max_tokens}, {len(grid.cells)} cells"
    )

    bare_runs = []
    tokens, seconds = bare(cfg, plist, args.n_max)
    bare_runs.append(tokens / seconds)
    print(f"bare   (before): {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s")
    s = sweep(grid)
    sweep_tps = s["tokens"] / s["seconds"]
    print(
        f"sweep          : {s['tokens']} tokens in {s['seconds']:.1f} s = {sweep_tps:.1f} tok/s "
        f"({s['cells']} cells, {s['loads']} engine load(s), {s['wall']:.0f} s wall with Ray and engine start)"
    )
    tokens, seconds = bare(cfg, plist, args.n_max)
    bare_runs.append(tokens / seconds)
    print(f"bare   (after) : {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s")
    ref = statistics.mean(bare_runs)
    ratio = sweep_tps / ref
    print(
        f"throughput ratio sweep / bare: {ratio:.2f} (target >= {TARGET_RATIO}) "
        f"{'OK' if ratio >= TARGET_RATIO else 'BELOW TARGET'}"
    )
    print(
        f"engine loads vs cells: {s['loads']} load(s) for {s['cells']} cells "
        f"({s['cells'] / max(s['loads'], 1):.0f} cells per load)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
