"""Benchmark: particle filtering and REBASE against beam search at equal N, on the zoo's shipped models (vLLM).

    python bench/bench_search_family.py                      # zoo-policy-m + zoo-prm-l, 30 chain problems, N = 8
    python bench/bench_search_family.py --n 16 --per-level 20 --levels 1 3 5

One in-process policy engine and one PRM engine (loaded once), the same problems, sampling settings and seed for
every strategy. Beam search runs first and last (the machine may be shared; their mean is the reference). For
each strategy: wall time of `run` (engine start excluded), its ratio to beam search (goal <= 1.2), engine calls
per search step (goal: 1 policy + 1 PRM), generated tokens and PRM tokens (computed: read minus prefix-cached).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
TARGET_RATIO = 1.2


@dataclass
class Counting:
    """Forwards to a real engine and counts calls (not a fake)."""

    inner: Any
    calls: int = 0

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        self.calls += 1
        return self.inner.generate(requests)

    def score(self, requests: Sequence[Any]) -> list[Any]:
        self.calls += 1
        return self.inner.score(requests)

    def render(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.render(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--per-level", type=int, default=10)
    ap.add_argument("--max-steps", type=int, default=6)
    args = ap.parse_args()

    from tts.config import sampling_settings
    from tts.data.chain import generate
    from tts.engines import PRM_KINDS
    from tts.engines.vllm_policy import build
    from tts.grading import grade
    from tts.grid import expand
    from tts.strategies import STRATEGIES

    cfg = expand(["policy=zoo_policy_m", "prm=zoo_prm_l", "engine=cpu", "dataset=chain"]).cells[0].config
    problems = generate(args.levels, args.per_level, seed=3)
    sampling = sampling_settings(cfg)
    t0 = time.perf_counter()
    policy_engine = build(cfg.policy, cfg.engine)
    prm_engine = PRM_KINDS.get(cfg.prm.kind)(cfg.prm, cfg.engine)
    print(f"engines ready in {time.perf_counter() - t0:.0f} s; {len(problems)} problems, N = {args.n}")
    plans = [
        ("beam_search", {"beam_width": 4, "max_steps": args.max_steps}),
        ("particle_filtering", {"max_steps": args.max_steps}),
        ("rebase", {"max_steps": args.max_steps}),
        ("beam_search", {"beam_width": 4, "max_steps": args.max_steps}),
    ]
    rows = []
    for name, params in plans:
        policy, prm = Counting(policy_engine), Counting(prm_engine)
        start = time.perf_counter()
        results = STRATEGIES.get(name).run(
            problems, policy, prm, n=args.n, sampling=sampling, seed=0, **params
        )
        wall = time.perf_counter() - start
        steps = max(r.extra.get("steps", 0) for r in results) or 1
        acc = sum(grade(p, r.text).correct for r, p in zip(results, problems, strict=True)) / len(problems)
        rows.append(
            (
                name,
                wall,
                policy.calls / steps,
                prm.calls / steps,
                sum(r.tokens_out for r in results),
                sum(r.prm_tokens for r in results),
                acc,
            )
        )
    beam = sum(r[1] for r in rows if r[0] == "beam_search") / 2
    print(
        f"{'strategy':20} {'wall s':>7} {'x beam':>7} {'policy/step':>11} {'PRM/step':>8} "
        f"{'tokens out':>10} {'PRM tokens':>10} {'accuracy':>10}"
    )
    for name, wall, pc, rc, out, prm_t, acc in rows:
        print(
            f"{name:20} {wall:7.1f} {wall / beam:7.2f} {pc:11.2f} {rc:8.2f} {out:10d} {prm_t:10d} {acc:10.2f}"
        )
    worst = max(r[1] for r in rows if r[0] != "beam_search") / beam
    print(f"worst ratio to beam search: {worst:.2f} (goal <= {TARGET_RATIO})")
    policy_engine.shutdown()
    prm_engine.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
