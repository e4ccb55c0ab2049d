"""Benchmark: beam search with the pooling PRM scoring each beam's prefix in full vs incrementally (vLLM).

    python bench/bench_prm_incremental.py                     # zoo-policy-m + zoo-prm-l, 15 chain problems, N = 16
    python bench/bench_prm_incremental.py --n 8 --per-level 3 --block-size 32

Tree search sends every beam's whole prefix to the PRM each step. Incremental scoring (tts.engines.vllm_prm)
reads vLLM's prefix cache for the shared prefix and takes the cached steps' scores from those it computed
before. One policy engine and one PRM engine (loaded once); both prefix caches are emptied before each run.

Two measurements, both printed as incremental / full:
  search   beam search run with full, then incremental, scoring (the policy samples differently in each run, so
           the beams differ): wall time of `run`, time inside the PRM, PRM tokens computed
  replay   the PRM calls of the full run, replayed in order with incremental scoring: the SAME texts, so the
           token ratio is exact and the scores are compared (max |incremental - full|, goal < 1e-4)
PRM tokens computed = tokens read minus tokens the prefix cache served: what FLOPs are charged on.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class Timed:
    """Forwards to the real PRM; records each call's requests, results and seconds (not a fake)."""

    inner: Any
    calls: list[tuple[list[Any], list[Any]]] = field(default_factory=list)
    seconds: float = 0.0

    def score(self, requests: Sequence[Any]) -> list[Any]:
        start = time.perf_counter()
        out = self.inner.score(requests)
        self.seconds += time.perf_counter() - start
        self.calls.append((list(requests), out))
        return out

    def computed(self) -> int:
        return sum(s.computed_tokens for _, out in self.calls for s in out)

    def read(self) -> int:
        return sum(s.tokens for _, out in self.calls for s in out)


def _fresh(*engines: Any) -> None:
    for engine in engines:
        engine.llm.reset_prefix_cache()
    engines[-1].memo.clear()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--per-level", type=int, default=5)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--beam-width", type=int, default=4)
    ap.add_argument("--kv-share", type=float, default=0.1, help="each engine's RAM share for its KV cache")
    ap.add_argument(
        "--block-size", type=int, default=None, help="PRM KV block size (vLLM's default if unset)"
    )
    args = ap.parse_args()

    from tts.config import sampling_settings
    from tts.data.chain import generate
    from tts.engines.embedded import resolve_model
    from tts.engines.vllm_common import EngineSettings
    from tts.engines.vllm_policy import build
    from tts.engines.vllm_prm import VLLMPoolingPRM
    from tts.grid import expand
    from tts.strategies import STRATEGIES

    cfg = expand(["policy=zoo_policy_m", "prm=zoo_prm_l", "engine=cpu", "dataset=chain"]).cells[0].config
    problems = generate(args.levels, args.per_level, seed=3)
    sampling = sampling_settings(cfg)
    t0 = time.perf_counter()
    engine_cfg = dataclasses.replace(cfg.engine, gpu_memory_utilization=args.kv_share)
    policy = build(cfg.policy, engine_cfg)
    extra = {"block_size": args.block_size} if args.block_size else {}
    prm_engine = VLLMPoolingPRM(
        resolve_model(cfg.prm.model),
        format=cfg.prm.format,
        params=cfg.prm.params,
        engine=dataclasses.replace(EngineSettings.from_config(engine_cfg), extra=extra),
    )
    block = prm_engine.llm.llm_engine.vllm_config.cache_config.block_size
    print(
        f"engines ready in {time.perf_counter() - t0:.0f} s; {len(problems)} problems, N = {args.n}, "
        f"beam width {args.beam_width}, {args.max_steps} steps, PRM KV block {block} tokens"
    )
    params = {"beam_width": args.beam_width, "max_steps": args.max_steps}
    runs = {}
    for mode in ("full", "incremental"):
        _fresh(policy, prm_engine)
        prm_engine.incremental = mode == "incremental"
        prm = Timed(prm_engine)
        start = time.perf_counter()
        STRATEGIES.get("beam_search").run(
            problems, policy, prm, n=args.n, sampling=sampling, seed=0, **params
        )
        runs[mode] = (time.perf_counter() - start, prm)

    _fresh(policy, prm_engine)
    prm_engine.incremental = True
    replay = Timed(prm_engine)
    for requests, _ in runs["full"][1].calls:
        replay.score(requests)
    worst = max(
        (
            abs(a - b)
            for (_, full), (_, inc) in zip(runs["full"][1].calls, replay.calls, strict=True)
            for f, i in zip(full, inc, strict=True)
            for a, b in zip(f.scores, i.scores, strict=True)
        ),
        default=0.0,
    )

    (wall_f, full), (wall_i, inc) = runs["full"], runs["incremental"]
    print(f"{'':22} {'full':>10} {'incremental':>12} {'ratio':>7}")
    rows = [
        ("search wall s", wall_f, wall_i),
        ("search PRM s", full.seconds, inc.seconds),
        ("search PRM tokens", full.computed(), inc.computed()),
        ("replay PRM s", full.seconds, replay.seconds),
        ("replay PRM tokens", full.computed(), replay.computed()),
    ]
    for name, a, b in rows:
        print(f"{name:22} {a:10.1f} {b:12.1f} {b / a if a else float('nan'):7.2f}")
    print(
        f"PRM tokens read: search full {full.read()}, incremental {inc.read()}; replay {replay.read()} "
        f"(a cached step with no remembered score is read twice)"
    )
    print(f"replay: max |incremental - full| step score = {worst:.1e} (goal < 1e-4)")
    policy.shutdown()
    prm_engine.shutdown()
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
