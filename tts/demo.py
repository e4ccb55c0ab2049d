"""`tts demo`: run ONE strategy on a handful of built-in arithmetic problems, in this process (no Ray), and print
accuracy and tokens/s. The quickest way to see the whole stack work on a laptop CPU:

    python -m tts.demo                                   # best-of-4 with the rule-based verifier, SmolLM2-135M
    python -m tts.demo strategy=best_of_n n=8
    python -m tts.demo strategy=beam_search n=8 strategy.beam_width=2 prm=rule_arithmetic
    python -m tts.demo strategy=majority_vote n=8 prm=none dataset.levels=[1,2] dataset.per_level=4

Arguments are Hydra overrides of conf/config.yaml, exactly as for `tts sweep`: the config is composed, validated
(a bad value fails here, before any model loads) and turned into plain arguments by the same builders the
runtime uses. Unless overridden, the demo takes 2 problems per level (`dataset.per_level=2`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from tts.config import ConfigError, sampling_settings, strategy_params, validate
from tts.grid import compose

DEMO_DEFAULTS = ("dataset.per_level=2",)


def _overrides(argv: Sequence[str]) -> list[str]:
    """The user's overrides, preceded by the demo's defaults for keys the user did not set."""
    keys = {a.split("=", 1)[0].lstrip("+~") for a in argv}
    return [d for d in DEMO_DEFAULTS if d.split("=", 1)[0] not in keys] + list(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns a process exit code (0 ok, 2 bad config)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    try:
        cfg = validate(compose(_overrides(args)))
    except ConfigError as exc:
        print(f"tts demo: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # Hydra composition errors: unknown group option, bad override syntax
        print(f"tts demo: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2

    from tts.data import DATASETS
    from tts.engines import PRM_KINDS
    from tts.engines.vllm_policy import build as build_policy
    from tts.grading import grade
    from tts.strategies import STRATEGIES

    problems = DATASETS.get(cfg.dataset.name)(cfg.dataset)
    name = cfg.strategy.name
    print(
        f"tts demo: {name}, N={cfg.n}, {len(problems)} problems from {cfg.dataset.name}, policy {cfg.policy.name}"
    )
    print(f"          verifier {cfg.prm.name} ({cfg.prm.kind}, aggregation {cfg.prm.aggregation})")
    start = time.perf_counter()
    policy = build_policy(cfg.policy, cfg.engine)
    try:
        prm = PRM_KINDS.get(cfg.prm.kind)(cfg.prm, cfg.engine, policy=policy)
        loaded = time.perf_counter()
        print(f"engines ready in {loaded - start:.1f} s")
        results = STRATEGIES.get(name).run(
            problems,
            policy,
            prm,
            n=cfg.n,
            sampling=sampling_settings(cfg),
            seed=cfg.seed,
            **strategy_params(cfg),
        )
        wall = time.perf_counter() - loaded
    finally:
        shutdown = getattr(policy, "shutdown", None)
        if shutdown is not None:
            shutdown()

    correct = 0
    for problem, result in zip(problems, results, strict=True):
        verdict = grade(problem, result.text, "length" if result.truncated else "eos")
        correct += verdict.correct
        mark = "ok " if verdict.correct else "-- "
        print(
            f"  {mark}{problem.id:<16} {problem.question:<18} = {problem.answer:<6} answered {verdict.answer}"
        )
    tokens_out = sum(r.tokens_out for r in results)
    tokens_in = sum(r.tokens_in for r in results)
    cached = sum(r.tokens_cached for r in results)
    print(
        f"accuracy {correct}/{len(problems)} = {correct / max(len(problems), 1):.2f} | {tokens_out} tokens "
        f"generated ({tokens_in} prompt, {cached} of them cached) in {wall:.1f} s = {tokens_out / wall:.1f} tokens/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
