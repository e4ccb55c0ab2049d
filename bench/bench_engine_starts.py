"""Benchmark: how long a sweep waits for its engines when engines share GPUs, on a simulated two-node cluster.

    python bench/bench_engine_starts.py                              # this checkout
    python bench/bench_engine_starts.py --baseline-rev d0faeaf       # and the code before per-device starts

The cluster: a loopback `ray.cluster_utils.Cluster` (every node on 127.0.0.1) with a head that does no work and
2 nodes x 2 simulated GPUs (`num_gpus=2`, no real device). The sweep: 2 zoo policies x 2 zoo PRMs, best-of-N at
N = 2 on 3 chain problems, `engine=gpu_shared` (every engine takes 0.5 GPU): 4 half-GPU engines. The engines are
tts.testing's fakes whose load takes `--load-s` seconds (a stand-in for a vLLM load: only the start order is
measured). Measured: wall time from the sweep's start to the moment its 4 engines are all ready, and where each
one landed (node, GPU).

Before (the engine pool created fractional engines one at a time across the whole cluster) the 4 loads run one
after the other; after (tts.runtime.device_lock: one at a time per GPU) engines on different GPUs or nodes load at
the same time. Each run is a subprocess with PYTHONPATH at its tree; with --baseline-rev the old code runs from a
`git worktree` at --baseline-dir (removed at the end), and the two are interleaved new / old / new / old.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, os, sys, tempfile, time
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "disabled"
import ray
from ray.cluster_utils import Cluster
from tts.grid import expand
from tts.runtime.driver import Driver
from tts.testing.fake_actors import FakeEngineBuilder
import tts

load_s = float(sys.argv[1])
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0, "node_ip_address": "127.0.0.1"})
nodes = [cluster.add_node(num_cpus=4, num_gpus=2, node_ip_address="127.0.0.1") for _ in range(2)]
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
grid = expand(["results_dir=" + tempfile.mkdtemp(), "policy=zoo_policy_s,zoo_policy_m", "prm=zoo_prm_l,zoo_prm_s",
               "strategy=best_of_n", "n=2", "dataset=chain", "dataset.levels=[1,3,5]", "dataset.per_level=1",
               "engine=gpu_shared", "cluster=ray", "cluster.address=" + cluster.address, "cluster.auth_mode=disabled"])
driver = Driver(grid, builder=FakeEngineBuilder(load_s=load_s), live=False)
ready = {}
on_event = driver.on_event
def timed(kind, data):
    if kind == "engine" and data.get("change") == "ready":
        ready.setdefault(data["key"], time.monotonic())
    on_event(kind, data)
driver.on_event = timed
started = time.monotonic()
summary = driver.run()
engines = driver.engine_pool.engines.values()
placed = [(r.info or {}).get("node_id", "?")[:8] + ":gpu" + ",".join((r.info or {}).get("gpu_ids", []))
          for e in engines for r in e.replicas]
print(json.dumps({"all_ready_s": max(ready.values()) - started, "engines": len(ready), "placed": sorted(placed),
                  "computed": summary.computed, "failed": summary.failed, "tts": os.path.dirname(tts.__file__)}))
ray.shutdown()
cluster.shutdown()
"""


def run(tree: Path, load_s: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "RAY_AUTH_MODE": "disabled"}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(load_s)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"worker in {tree} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1])
    if not result["tts"].startswith(str(tree)):
        raise RuntimeError(f"worker for {tree} imported tts from {result['tts']}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--load-s", type=float, default=5.0, help="simulated load time of each engine")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--baseline-rev", default=None, help="also measure this git revision (the code before)")
    ap.add_argument(
        "--baseline-dir", default=os.path.join(tempfile.gettempdir(), "tts_baseline_engine_starts")
    )
    args = ap.parse_args()
    trees = {"new": REPO}
    if args.baseline_rev:
        tree = Path(args.baseline_dir)
        if tree.exists():
            sys.exit(f"{tree} exists; remove it (git worktree remove --force {tree}) or pass --baseline-dir")
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), args.baseline_rev], check=True
        )
        trees["old"] = tree
    results: dict[str, list[dict]] = {k: [] for k in trees}
    try:
        for i in range(args.repeats):
            for name, tree in trees.items():
                t0 = time.monotonic()
                r = run(tree, args.load_s)
                results[name].append(r)
                print(
                    f"run {i + 1} {name:3}: 4 half-GPU engines ready {r['all_ready_s']:5.1f} s after the sweep "
                    f"started (load {args.load_s:g} s each; {r['computed']} cells, {r['failed']} failed; "
                    f"{time.monotonic() - t0:.0f} s in all); placed {r['placed']}",
                    flush=True,
                )
    finally:
        if args.baseline_rev:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", args.baseline_dir], check=False
            )
    best = {k: min(r["all_ready_s"] for r in v) for k, v in results.items()}
    line = ", ".join(f"{k} {v:.1f} s ({v / args.load_s:.1f} loads)" for k, v in best.items())
    print(f"all engines ready (best of {args.repeats}): {line}")
    if "old" in best:
        print(f"new / old: {best['new'] / best['old']:.2f}")


if __name__ == "__main__":
    main()
