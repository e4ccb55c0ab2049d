"""Per-level difficulty ladder of a policy on a problem set: pass@1, pass@N, majority@N, verifier best-of-N and
weighted best-of-N, all from ONE sample pool of N per problem (tts.strategies.pool) graded with tts.grading.

Why: the built-in set and the policy's prompt must be tuned together so that the easiest level is solvable and
verifier-guided selection has something to find (pass@N well above majority@N). This prints the table the issue
tracker asks for, in-process (no Ray), with the same builders as `tts sweep`:

    python scripts/level_report.py                                  # SmolLM2 + rule verifier, N=8, all levels
    python scripts/level_report.py n=8 dataset.per_level=12 prm=judge_smollm2
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

from tts.config import compose, sampling_settings, validate
from tts.data import DATASETS
from tts.engines import PRM_KINDS
from tts.engines.vllm_policy import build as build_policy
from tts.grading import grade
from tts.strategies.estimators import pass_at_k
from tts.strategies.pool import build_pool, expected_correct


def main(argv: list[str]) -> int:
    cfg = validate(compose(argv))
    problems = DATASETS.get(cfg.dataset.name)(cfg.dataset)
    sampling = sampling_settings(cfg)
    n = cfg.n
    t0 = time.perf_counter()
    policy = build_policy(cfg.policy, cfg.engine)
    prm = PRM_KINDS.get(cfg.prm.kind)(cfg.prm, cfg.engine, policy=policy)
    t1 = time.perf_counter()
    pools = build_pool(problems, policy, prm, n_max=n, sampling=sampling, seed=cfg.seed)
    wall = time.perf_counter() - t1
    rows: dict[int | None, list[tuple[float, ...]]] = defaultdict(list)
    tokens = boxed = samples = 0
    for problem, pool in zip(problems, pools, strict=True):
        grades = [grade(problem, c.text, c.finish_reason) for c in pool.candidates]
        correct = [g.correct for g in grades]
        tokens += sum(c.tokens_out for c in pool.candidates)
        boxed += sum(not g.no_answer and not g.fallback_extraction for g in grades)
        samples += len(grades)
        agg = cfg.prm.aggregation
        rows[problem.level].append(
            (
                sum(correct) / n,
                pass_at_k(n, sum(correct), n),
                expected_correct(pool, "majority_vote", n, agg, correct).value,
                expected_correct(pool, "best_of_n", n, agg, correct).value,
                expected_correct(pool, "weighted_best_of_n", n, agg, correct).value,
            )
        )
    print(
        f"policy {cfg.policy.name}, verifier {cfg.prm.name} ({cfg.prm.aggregation}), N={n}, T={sampling.temperature}"
    )
    print(f"| level | problems | pass@1 | pass@{n} | majority@{n} | best-of-{n} | weighted-best-of-{n} |")
    print("|---|---|---|---|---|---|---|")
    for level in sorted(rows, key=lambda x: (x is None, x)):
        cols = list(zip(*rows[level], strict=True))
        means = " | ".join(f"{sum(c) / len(c):.2f}" for c in cols)
        print(f"| {level} | {len(rows[level])} | {means} |")
    print(
        f"{tokens} tokens in {wall:.1f} s ({tokens / wall:.1f} tok/s); engines ready in {t1 - t0:.1f} s; "
        f"answers boxed {boxed / max(samples, 1):.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
