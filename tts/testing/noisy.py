"""Cell rows of many configurations whose true accuracy is known: the fake that tests held-out selection.

Why: the argmax over many configurations of equal true accuracy, scored on the problems that chose it, shows a
gain that is pure noise; held-out selection must show none. `noisy_configs` builds exactly that world (and,
with `better`, one where a single configuration truly wins), in the cell-row contract the analysis reads.

    rows = noisy_configs(configs=30, problems=200, accuracy=0.5, seed=0)
    rows = noisy_configs(configs=30, problems=400, accuracy=0.5, better={7: 0.15})
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def noisy_configs(
    *,
    configs: int = 30,
    problems: int = 200,
    accuracy: float = 0.5,
    better: dict[int, float] | None = None,
    problem_sd: float = 1.5,
    baseline: str = "baseline",
    strategy: str = "searcher",
    seed: int = 0,
) -> pd.DataFrame:
    """One policy / PRM / dataset at N = 4: configuration 0 is `baseline`, 1..configs-1 are `strategy` with
    hyperparameter config.strategy.width = index. All share `accuracy` on average (problem difficulties vary
    with `problem_sd` on the logit scale, so per-problem outcomes correlate across configurations, as real
    ones do); `better` adds {index: accuracy gain} for configurations that are truly better. Each row's
    `correct` is a Bernoulli draw: the noise a winner is picked from."""
    rng = np.random.default_rng(seed)
    logit = np.log(accuracy / (1 - accuracy))
    d = rng.normal(0.0, problem_sd, problems)
    ids = [f"noisy/{i:05d}" for i in range(problems)]
    frames = []
    for k in range(configs):
        base = 1.0 / (1.0 + np.exp(-(logit + d)))
        p = np.clip(base + (better or {}).get(k, 0.0), 0.0, 1.0)
        correct = rng.random(problems) < p
        name = baseline if k == 0 else strategy
        tokens = np.full(problems, 400 + k)  # a slightly different cost per configuration: no exact ties
        frames.append(
            pd.DataFrame(
                {
                    "status": "ok",
                    "problem_id": ids,
                    "policy": "pol",
                    "policy_params": 1_000_000,
                    "prm": "prm",
                    "prm_kind": "rule_arithmetic",
                    "prm_params": 0,
                    "dataset": "noisy",
                    "strategy": name,
                    "n": 4,
                    "aggregation": "last",
                    "temperature": 0.8,
                    "correct": correct,
                    "true_p": p,
                    "generations": 4,
                    "tokens_in": 100,
                    "tokens_cached": 0,
                    "tokens_out": tokens,
                    "prm_tokens": 0,
                    "flops_policy": 2.0 * 1_000_000 * (100 + tokens),
                    "flops_prm": 0.0,
                    "flops": 2.0 * 1_000_000 * (100 + tokens),
                    "config.policy.name": "pol",
                    "config.prm.name": "prm",
                    "config.strategy.name": name,
                    "config.strategy.width": k,
                    "config.n": 4,
                    "config.seed": 0,
                    "config.dataset.name": "noisy",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
