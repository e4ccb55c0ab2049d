"""Benchmark: generation throughput of a sweep on Ray vs a bare engine over the same prompts; engine loads vs cells.

    python bench/bench_sweep_throughput.py                       # embedded SmolLM2-135M, CPU
    python bench/bench_sweep_throughput.py --per-level 4 --n-max 4 --max-tokens 32 --policy-model /path/to/model
    python bench/bench_sweep_throughput.py --baseline-rev b410a6c   # also the old code's sweep, same run

What it does (same machine, same engine settings, same requests):
  bare   one in-process VLLMPolicy: one generate call of N_max samples for every problem (the requests
         `build_pool` makes); throughput = generated tokens / generate wall time (engine start excluded).
  sweep  `tts sweep` of majority vote, best-of-N and weighted best-of-N at N = 1, 2, 4, N_max with the
         rule-based PRM: one engine actor, one pool job (a light Ray task calling the actor), grading,
         selection and atomic Parquet writes; throughput = generated tokens / (last result written - engine
         ready) (engine start excluded, everything else included).
  bare is run before and after the sweep (the machine may be shared; their mean is the reference).
Prints the ratio sweep / bare (target >= 0.9) and engine loads vs cells (target: 1 load for all cells).

With --baseline-rev REV the same sweep also runs on the code of REV (a `git worktree` checked out read-only at
--baseline-dir, removed at the end), interleaved bare / sweep (this code) / sweep (REV) / bare so that machine
load falls on both alike. Each sweep then runs in its own subprocess (`--sweep-worker`, internal) with
PYTHONPATH at its tree; the worker reports where `tts` was imported from (driver and a Ray worker), any tts
module loaded from outside its tree, and the tts.* entry-point groups read (the editable install's entry
points name this checkout's modules), and the problems' hash, which must match across the two trees.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TREE = Path(os.environ.get("TTS_BENCH_TREE") or REPO).resolve()  # a worker's tree (--sweep-worker), else this
sys.path.insert(0, str(TREE))
TARGET_RATIO = 0.9


def overrides(args: argparse.Namespace, results: str) -> list[str]:
    # The same overrides are valid at b410a6c (the last commit before the 2026-12-03 redesign): no adaptation.
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


def _tts_file() -> str:
    """Run as a Ray task: where a Ray worker imports tts from."""
    import tts

    return tts.__file__


def sweep(grid: object, probe: bool = False) -> dict:
    """Run the grid; measure tokens and the window from engine ready to the last result written. `probe`: also
    ask a Ray worker (a zero-CPU task sent at the first event, collected when done) where it imports tts from."""
    from tts.runtime.driver import Driver

    marks: dict[str, float] = {}
    seen: dict[str, object] = {}

    def collect() -> None:
        import ray

        if not probe or "ray_tts_file" in seen or not ray.is_initialized():
            return
        if "ref" not in seen:
            seen["ref"] = ray.remote(num_cpus=0)(_tts_file).remote()
        elif ray.wait([seen["ref"]], timeout=0)[0]:
            seen["ray_tts_file"] = ray.get(seen["ref"])

    # The Driver API used here (on_event, on_result, the summary's fields) is the same at b410a6c.
    class TimedDriver(Driver):
        def on_event(self, kind: str, data: dict) -> None:
            if kind == "engine" and data.get("change") == "ready":
                marks.setdefault("ready", time.perf_counter())
            collect()
            super().on_event(kind, data)

        def on_result(self, work: object, result: object) -> None:
            super().on_result(work, result)
            marks["last"] = time.perf_counter()
            collect()

    summary = TimedDriver(grid, live=False).run()
    return {
        "tokens": summary.tokens,
        "seconds": marks["last"] - marks["ready"],
        "cells": summary.computed,
        "loads": summary.engine_loads,
        "wall": summary.wall_s,
        "ray_tts_file": seen.get("ray_tts_file", "not collected"),
    }


def sweep_worker(args: argparse.Namespace) -> int:
    """--sweep-worker: one sweep on the code of TREE, its measurement and import provenance as JSON."""
    import importlib.metadata as metadata

    groups: list[str] = []
    real_entry_points = metadata.entry_points

    def recording(**kw: object) -> object:  # installed before tts is imported: tts.registry binds this one
        if str(kw.get("group", "")).startswith("tts."):
            groups.append(str(kw["group"]))
        return real_entry_points(**kw)

    metadata.entry_points = recording
    import tts
    from tts.grid import expand
    from tts.runtime.plan import Problems

    grid = expand(overrides(args, tempfile.mkdtemp(prefix="tts_bench_sweep_")))
    problems = Problems()
    problems.load(grid.cells)
    questions = [p.question for p in problems.for_cell(grid.cells[0])]
    out = sweep(grid, probe=True)
    outside = sorted(
        str(m.__file__)
        for name, m in list(sys.modules.items())
        if (name == "tts" or name.startswith("tts."))
        and getattr(m, "__file__", None)
        and not Path(m.__file__).resolve().is_relative_to(TREE)
    )
    out |= {
        "tts_file": tts.__file__,
        "outside_tree": outside,
        "entry_point_groups": sorted(set(groups)),
        "problems_sha": problems_sha(questions),
    }
    Path(args.sweep_worker).write_text(json.dumps(out))
    return 0


def problems_sha(questions: list[str]) -> str:
    return hashlib.sha256("\n\x00".join(questions).encode()).hexdigest()[:12]


def sweep_in(tree: Path, args: argparse.Namespace) -> dict:
    """One sweep in a subprocess whose `tts` is imported from `tree` (PYTHONPATH and TTS_BENCH_TREE)."""
    work = Path(tempfile.mkdtemp(prefix="tts_bench_worker_"))
    report = work / "report.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--sweep-worker", str(report)]
    cmd += ["--levels", *map(str, args.levels), "--per-level", str(args.per_level)]
    cmd += ["--n-max", str(args.n_max), "--max-tokens", str(args.max_tokens)]
    if args.policy_model:
        cmd += ["--policy-model", args.policy_model]
    env = os.environ | {"PYTHONPATH": str(tree), "TTS_BENCH_TREE": str(tree)}
    subprocess.run(cmd, env=env, cwd=work, check=True)
    out = json.loads(report.read_text())
    print(f"  [{tree}] tts imported from {out['tts_file']} (Ray worker: {out['ray_tts_file']})")
    print(
        f"  tts modules outside the tree: {out['outside_tree'] or 'none'}; "
        f"tts.* entry-point groups read: {out['entry_point_groups'] or 'none'}"
    )
    if out["outside_tree"] or not Path(out["tts_file"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"sweep on {tree} imported tts code from outside it")
    return out


def line(label: str, tokens: int, seconds: float, ref: float | None = None, extra: str = "") -> str:
    tps = tokens / seconds
    ratio = f", {tps / ref:.2f} x bare" if ref else ""
    return f"{label:<20}: {tokens} tokens in {seconds:.1f} s = {tps:.1f} tok/s{ratio}{extra}"


def compare(args: argparse.Namespace, cfg: object, plist: list) -> int:
    """bare / sweep (this code) / sweep (baseline rev) / bare, each sweep's ratio to the bare mean, new / old."""
    tree = Path(args.baseline_dir)
    if tree.exists():
        raise SystemExit(
            f"{tree} exists; remove it (git worktree remove --force {tree}) or pass --baseline-dir"
        )
    git = ["git", "-C", str(REPO)]
    subprocess.run([*git, "worktree", "add", "--detach", str(tree), args.baseline_rev], check=True)
    try:
        rev = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        runs: dict[str, dict] = {}
        tokens, seconds = bare(cfg, plist, args.n_max)
        runs["bare (before)"] = {"tokens": tokens, "seconds": seconds}
        runs[f"sweep {rev} (new)"] = sweep_in(REPO, args)
        runs[f"sweep {args.baseline_rev} (old)"] = sweep_in(tree, args)
        tokens, seconds = bare(cfg, plist, args.n_max)
        runs["bare (after)"] = {"tokens": tokens, "seconds": seconds}
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)
    ref = statistics.mean(r["tokens"] / r["seconds"] for k, r in runs.items() if k.startswith("bare"))
    new, old = (runs[k] for k in runs if k.startswith("sweep"))
    shas = {problems_sha([p.question for p in plist]), new["problems_sha"], old["problems_sha"]}
    print(
        f"\nproblems: {len(plist)} x N_max {args.n_max}, max_tokens {args.max_tokens}; hashes equal: {len(shas) == 1}"
    )
    for label, r in runs.items():
        extra = ""
        if "cells" in r:
            extra = f"; {r['loads']} engine load(s) for {r['cells']} cells, {r['wall']:.0f} s wall"
        print(line(label, r["tokens"], r["seconds"], ref, extra))
    ratios = [r["tokens"] / r["seconds"] / ref for r in (new, old)]
    print(f"bare mean: {ref:.1f} tok/s; sweep / bare: new {ratios[0]:.2f}, old {ratios[1]:.2f}")
    print(f"new / old: {ratios[0] / ratios[1]:.2f} (target >= 1 within noise; >= {TARGET_RATIO} vs bare)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--per-level", type=int, default=8)
    p.add_argument("--n-max", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument(
        "--policy-model", default=None, help="a local model folder instead of the embedded SmolLM2"
    )
    p.add_argument("--baseline-rev", default=None, help="also measure the sweep of this git revision")
    p.add_argument("--baseline-dir", default="/tmp/tts_baseline", help="where its worktree goes (removed)")
    p.add_argument("--sweep-worker", default=None, help=argparse.SUPPRESS)  # internal: JSON report path
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if args.sweep_worker:
        return sweep_worker(args)

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
    if args.baseline_rev:
        return compare(args, cfg, plist)

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
