"""Benchmark: sequential revisions in lockstep, and what the prefix cache serves across rounds (zoo, vLLM).

    python bench/bench_revisions.py                        # zoo-policy-m, 45 chain problems, N = 8
    python bench/bench_revisions.py --policy zoo_policy_r --n 8 --per-level 15 --levels 1 3 5

One in-process policy engine (loaded once; no PRM: majority selection, so only the policy is measured), the
same problems, sampling settings and seed for every split. For each split P x L of N (and a history window
that keeps every earlier attempt, or only the last one) it reports: generate calls per round (goal: exactly 1,
all chains of all problems), wall time of `run`, prompt tokens, the prefix-cache hit rate (cached / prompt
tokens, as vLLM reported them) and generated tokens. Then the lockstep ratio: the same revisions issued as one
generate call per problem per round, against one call per round for all problems (time ratio, >= 1 means the
lockstep batch is faster).
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


@dataclass
class Counting:
    """Forwards to a real engine and counts calls and tokens (not a fake)."""

    inner: Any
    calls: int = 0
    prompt: int = 0
    cached: int = 0

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        self.calls += 1
        out = self.inner.generate(requests)
        self.prompt += sum(g.prompt_tokens for g in out)
        self.cached += sum(g.cached_prompt_tokens for g in out)
        return out

    def render(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.render(*args, **kwargs)


@dataclass
class OnePerProblem:
    """Issues each request as a generate call of its own: the non-lockstep baseline."""

    inner: Any

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        return [g for r in requests for g in self.inner.generate([r])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="zoo_policy_m")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--per-level", type=int, default=15)
    args = ap.parse_args()

    from tts.config import sampling_settings
    from tts.data.chain import generate
    from tts.engines.none_prm import NonePRM
    from tts.engines.vllm_policy import build
    from tts.grading import grade
    from tts.grid import expand
    from tts.strategies.sequential_revision import run

    cfg = expand([f"policy={args.policy}", "engine=cpu", "dataset=chain"]).cells[0].config
    problems = generate(args.levels, args.per_level, seed=3)
    sampling = sampling_settings(cfg)
    t0 = time.perf_counter()
    engine = build(cfg.policy, cfg.engine)
    print(f"engine ready in {time.perf_counter() - t0:.0f} s; {len(problems)} problems, N = {args.n}")
    splits = [p for p in (1, 2, 4, 8, 16) if p <= args.n and args.n % p == 0]
    print(
        f"{'P x L':>7} {'history':>7} {'calls/round':>11} {'seconds':>8} {'prompt tok':>10} {'cache hit':>9} "
        f"{'gen tok':>8} {'accuracy':>8}"
    )
    for parallel in splits:
        for history in sorted({4, 1}) if args.n // parallel > 2 else [4]:
            policy = Counting(engine)
            start = time.perf_counter()
            results = run(
                problems,
                policy,
                NonePRM(),
                n=args.n,
                sampling=sampling,
                seed=0,
                parallel=parallel,
                history=history,
                final_selection="majority",
            )
            seconds = time.perf_counter() - start
            rounds = args.n // parallel
            acc = sum(grade(p, r.text).correct for p, r in zip(problems, results, strict=True)) / len(
                problems
            )
            out = sum(r.tokens_out for r in results)
            hit = policy.cached / policy.prompt if policy.prompt else 0.0
            print(
                f"{parallel:>3} x {rounds:<3} {history:>7} {policy.calls / rounds:>11.2f} {seconds:>8.1f} "
                f"{policy.prompt:>10,} {hit:>9.1%} {out:>8,} {acc:>8.3f}"
            )
    # lockstep vs one generate call per problem per round, the same revisions (P = 1, L = N)
    times = {}
    for name, wrap in (("lockstep", lambda e: e), ("one call per problem", OnePerProblem)):
        start = time.perf_counter()
        run(
            problems,
            wrap(engine),
            NonePRM(),
            n=args.n,
            sampling=sampling,
            seed=0,
            parallel=1,
            final_selection="majority",
        )
        times[name] = time.perf_counter() - start
    ratio = times["one call per problem"] / times["lockstep"]
    print(
        f"\nP = 1, L = {args.n}: lockstep {times['lockstep']:.1f} s, one call per problem per round "
        f"{times['one call per problem']:.1f} s: ratio {ratio:.2f}x"
    )
    engine.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
