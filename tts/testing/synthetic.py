"""Synthetic sweep results with a known answer, in the exact results contract (tts/results_schema.py).

Why: the analysis (difficulty bins, FLOPs, compute-optimal tables, plots, the notebook and the 10M-row bench)
must be testable without running a sweep, and tests need results whose optimal strategy per bin is known.

The truth model: problem i has a latent difficulty d_i; policy j solves it in one sample with probability
p = sigmoid(ability_j - d_i). A strategy at budget n reaches accuracy q = truth(strategy, n, p, verifier):
coverage c = 1 - (1 - p)^n is the ceiling, majority vote closes the gap only on easy problems (p > 0.25),
verifier-guided search closes more of it on hard problems but over-optimises easy ones (Snell et al. 2024).
Pool strategies get `expected_correct = q` (the exact-estimator column) and all rows `correct ~ Bernoulli(q)`.

    spec = SyntheticSpec(n_problems=200)
    res = generate(spec, seed=0)        # res.cells, res.samples, res.truth (cell_id, problem_id, q)
    write_results("results/synth", spec)  # cells/*.parquet, samples/*.parquet, manifest.jsonl, sweep.yaml

`binned_world` is the other, more direct truth model: the caller states each configuration's accuracy per
difficulty bin (the difficulty-adaptive allocation's tests need a world whose compute-optimal curve and
best-of-N curve are known exactly, tts.analysis.adaptive):

    acc = pd.DataFrame({"strategy": ..., "n": ..., "bin": ..., "q": ...})
    w = binned_world(acc, problems_per_bin=400, seeds=(0, 1))   # w.rows, w.difficulty, w.binning
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tts.results_schema import CELL_COLUMNS, SAMPLE_COLUMNS

POOL = ("majority_vote", "best_of_n", "weighted_best_of_n")  # derived from one sample pool (expected_correct)
AGG_QUALITY = {"last": 1.0, "mean": 0.97, "min": 0.95, "prod": 0.9}


@dataclass(frozen=True)
class SynthPolicy:
    name: str
    params: int
    ability: float  # logit shift: higher solves more


@dataclass(frozen=True)
class SynthPRM:
    name: str
    kind: str
    params: int
    quality: float  # 0 = useless verifier, 1 = perfect ranking
    model: str | None = None


@dataclass(frozen=True)
class SynthStrategy:
    name: str
    params: tuple[tuple[str, int], ...] = ()  # beam_width / max_steps / lookahead

    def get(self, key: str) -> int | None:
        return dict(self.params).get(key)


DEFAULT_POLICIES = (
    SynthPolicy("small-135m", 135_000_000, -1.0),
    SynthPolicy("medium-1.5b", 1_500_000_000, 0.5),
    SynthPolicy("large-7b", 7_000_000_000, 1.5),
)
DEFAULT_PRMS = (
    SynthPRM("rule", "rule_arithmetic", 0, 0.7),
    SynthPRM("prm-1.5b", "vllm_pooling", 1_500_000_000, 0.9, "synthetic/prm-1.5b"),
)
TREE = (("beam_width", 4), ("max_steps", 8))
DEFAULT_STRATEGIES = (
    SynthStrategy("majority_vote"),
    SynthStrategy("best_of_n"),
    SynthStrategy("weighted_best_of_n"),
    SynthStrategy("beam_search", TREE),
    SynthStrategy("dvts", TREE),
    SynthStrategy("lookahead", (*TREE, ("lookahead", 2))),
)


@dataclass(frozen=True)
class SyntheticSpec:
    sweep: str = "synthetic"
    dataset: str = "synthmath"
    n_problems: int = 200
    policies: tuple[SynthPolicy, ...] = DEFAULT_POLICIES
    prms: tuple[SynthPRM, ...] = DEFAULT_PRMS
    strategies: tuple[SynthStrategy, ...] = DEFAULT_STRATEGIES
    aggregations: tuple[str, ...] = ("last",)
    budgets: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    seeds: tuple[int, ...] = (0,)
    pool_size: int = 16  # samples per (policy, PRM, seed, problem) in samples/
    temperature: float = 0.8
    failed_fraction: float = 0.0  # rows with status "failed"
    difficulty_sd: float = 2.0


@dataclass
class SyntheticResults:
    cells: pd.DataFrame
    samples: pd.DataFrame
    truth: pd.DataFrame  # cell_id, problem_id, q (the row's true success probability)
    problems: pd.DataFrame  # problem_id, level, difficulty
    configs: list[dict[str, Any]] = field(default_factory=list)


def truth(strategy: str, n: int, p: np.ndarray, verifier: float, lookahead: int = 0) -> np.ndarray:
    """True accuracy of `strategy` at budget n on problems of pass@1 p with a verifier of quality `verifier`."""
    p = np.asarray(p, dtype=float)
    gap = (1.0 - (1.0 - p) ** n) - p  # what coverage adds over one sample
    vote = 0.9 * np.clip((p - 0.25) / 0.5, 0.0, 1.0)  # majority helps only when the mode is right
    over = 0.25 * p * (1.0 - 1.0 / n)  # search over-optimising the verifier on easy problems
    if strategy == "majority_vote":
        q = p + gap * vote
    elif strategy == "best_of_n":
        q = p + gap * 0.55 * verifier
    elif strategy == "weighted_best_of_n":
        q = p + gap * np.maximum(0.5 * verifier, vote)
    elif strategy == "beam_search":
        q = p + gap * 0.85 * verifier - over
    elif strategy == "dvts":
        q = p + gap * 0.7 * verifier - 0.3 * over
    elif strategy == "lookahead":
        q = p + gap * min(1.0, 0.85 + 0.03 * lookahead) * verifier - over
    else:
        raise ValueError(f"strategy: unknown synthetic strategy {strategy!r}; allowed: {', '.join(STRATS)}")
    return np.clip(q, 0.0, 1.0)


STRATS = ("majority_vote", "best_of_n", "weighted_best_of_n", "beam_search", "dvts", "lookahead")


def _hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _problems(spec: SyntheticSpec, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 7])
    d = rng.normal(0.0, spec.difficulty_sd, spec.n_problems)
    noisy = d + rng.normal(0.0, 0.6, spec.n_problems)  # the dataset's level is a noisy view of difficulty
    level = 1 + np.searchsorted(np.quantile(noisy, [0.2, 0.4, 0.6, 0.8]), noisy)
    ids = [f"{spec.dataset}/{i:05d}" for i in range(spec.n_problems)]
    return pd.DataFrame({"problem_id": ids, "level": level.astype("int64"), "difficulty": d})


def cell_configs(spec: SyntheticSpec) -> list[dict[str, Any]]:
    """Every grid point of the spec (tree strategies only at budgets that are multiples of their beam width)."""
    out = []
    for pol in spec.policies:
        for prm in spec.prms:
            for strat in spec.strategies:
                aggs = ("last",) if strat.name == "majority_vote" else spec.aggregations
                for agg in aggs:
                    for n in spec.budgets:
                        bw = strat.get("beam_width")
                        if bw and n % bw:
                            continue
                        for seed in spec.seeds:
                            out.append(
                                {
                                    "policy": pol,
                                    "prm": prm,
                                    "strategy": strat,
                                    "aggregation": agg,
                                    "n": n,
                                    "seed": seed,
                                }
                            )
    return out


def _cell_table(spec: SyntheticSpec, cfg: dict[str, Any], probs: pd.DataFrame, seed: int, idx: int):
    """One cell's rows (a pyarrow Table in CELL_COLUMNS order + config.* columns) and its true q."""
    from tts.compute import flops_arrays

    pol, prm, strat, n = cfg["policy"], cfg["prm"], cfg["strategy"], cfg["n"]
    rng = np.random.default_rng([seed, idx, 11])
    size = len(probs)
    level = probs["level"].to_numpy()
    p = 1.0 / (1.0 + np.exp(-(pol.ability - probs["difficulty"].to_numpy())))
    k = strat.get("lookahead") or 0
    verifier = prm.quality * AGG_QUALITY[cfg["aggregation"]]
    q = truth(strat.name, n, p, verifier, k)
    correct = rng.random(size) < q
    prompt = 60 + 15 * level
    length = np.round((80 + 30 * level) * rng.uniform(0.9, 1.1, size)).astype("int64")
    steps = strat.get("max_steps") or 1
    if strat.name in POOL:
        t_in, t_cached, t_out = prompt.astype("int64"), np.zeros(size, "int64"), n * length
        prm_tok = np.zeros(size, "int64") if strat.name == "majority_vote" else n * (prompt + length)
    else:
        per = (1 + k) * n * steps
        t_in = (per * (prompt + length // 2)).astype("int64")
        t_out = (1 + k) * n * length
        t_cached = np.maximum(t_in - t_out, 0)
        prm_tok = (per * (prompt + length // 2)).astype("int64")
    prm_params = prm.params
    f_pol, f_prm = flops_arrays(pol.params, t_in, t_cached, t_out, prm_params, prm_tok)
    failed = rng.random(size) < spec.failed_fraction
    config = {
        "policy": pol.name,
        "prm": prm.name,
        "aggregation": cfg["aggregation"],
        "strategy": strat.name,
        "params": dict(strat.params),
        "n": n,
        "seed": cfg["seed"],
        "dataset": spec.dataset,
    }
    cell_id = _hash(config)
    pool = strat.name in POOL
    pool_id = _hash([pol.name, prm.name, spec.dataset, cfg["seed"], spec.pool_size]) if pool else None
    cols: dict[str, pa.Array | list] = {
        "sweep": [spec.sweep] * size,
        "cell_id": [cell_id] * size,
        "config_id": [_hash({k: v for k, v in config.items() if k != "seed"})] * size,
        "pool_id": pa.array([pool_id] * size, pa.string()),
        "pool_sha256": pa.nulls(size, pa.string()),  # synthetic pools are written after their cells
        "problem_id": probs["problem_id"].tolist(),
        "dataset": [spec.dataset] * size,
        "level": pa.array(level, pa.int64()),
        "kind": ["math"] * size,
        "policy": [pol.name] * size,
        "policy_model": [f"synthetic/{pol.name}"] * size,
        "policy_params": pa.array([pol.params] * size, pa.int64()),
        "prm": [prm.name] * size,
        "prm_kind": [prm.kind] * size,
        "prm_model": pa.array([prm.model] * size, pa.string()),
        "prm_params": pa.array([prm_params] * size, pa.int64()),
        "aggregation": [cfg["aggregation"]] * size,
        "strategy": [strat.name] * size,
        "n": pa.array([n] * size, pa.int64()),
        "seed": pa.array([cfg["seed"]] * size, pa.int64()),
        "seeding": ["per_request"] * size,
        "retries": pa.array([0] * size, pa.int64()),
        "endpoint_ignored": pa.nulls(size, pa.string()),
        "temperature": [spec.temperature] * size,
        "answer": np.where(correct, "1", "0"),
        "reference": ["1"] * size,
        "correct": correct,
        "expected_correct": pa.array(q, pa.float64()) if pool else pa.nulls(size, pa.float64()),
        "no_answer": np.zeros(size, bool),
        "fallback_extraction": np.zeros(size, bool),
        "extraction": ["boxed"] * size,
        "truncated": np.zeros(size, bool),
        "grade_status": ["ok"] * size,
        "generations": pa.array([n] * size, pa.int64()),
        "tokens_in": t_in,
        "tokens_cached": t_cached,
        "tokens_out": t_out,
        "prm_tokens": prm_tok,
        "flops_policy": f_pol,
        "flops_prm": f_prm,
        "flops": f_pol + f_prm,
        "candidate_answers": pa.nulls(size, pa.list_(pa.string())),
        "candidate_scores": pa.nulls(size, pa.list_(pa.float64())),
        "candidate_correct": pa.nulls(size, pa.list_(pa.bool_())),
        "candidate_finish_reasons": pa.nulls(size, pa.list_(pa.string())),
        "trace": pa.nulls(size, pa.string()),  # results schema 6: search traces (none in synthetic cells)
        "wall_time_s": rng.uniform(0.5, 2.0, size) * n,
        "status": np.where(failed, "failed", "ok"),
        "error": pa.array(np.where(failed, "synthetic failure", None), pa.string()),
        "git_sha": ["synthetic"] * size,
        "tts_version": ["0.1.0"] * size,
        "config.policy.name": [pol.name] * size,
        "config.policy.temperature": [spec.temperature] * size,
        "config.prm.name": [prm.name] * size,
        "config.prm.aggregation": [cfg["aggregation"]] * size,
        "config.strategy.name": [strat.name] * size,
        **{
            f"config.strategy.{k}": pa.array([strat.get(k)] * size, pa.int64())
            for k in ("beam_width", "max_steps", "lookahead")
        },
        "config.n": pa.array([n] * size, pa.int64()),
        "config.seed": pa.array([cfg["seed"]] * size, pa.int64()),
        "config.dataset.name": [spec.dataset] * size,
    }
    # in CELL_COLUMNS order, then the config.* columns; a column the schema does not list (yet) is left out
    missing = [c for c in CELL_COLUMNS if c not in cols]
    assert not missing, f"synthetic cells lack column(s) {missing} of tts.results_schema.CELL_COLUMNS"
    cols = {k: cols[k] for k in CELL_COLUMNS} | {k: v for k, v in cols.items() if k.startswith("config.")}
    return cell_id, config, pa.table(cols), q


def iter_cells(
    spec: SyntheticSpec, seed: int = 0
) -> Iterator[tuple[str, dict[str, Any], pa.Table, np.ndarray]]:
    """(cell_id, config, table, q) per cell; streams, so 10M rows never sit in memory at once."""
    probs = _problems(spec, seed)
    for idx, cfg in enumerate(cell_configs(spec)):
        yield _cell_table(spec, cfg, probs, seed, idx)


def samples_frame(spec: SyntheticSpec, seed: int = 0) -> pd.DataFrame:
    """The sample pools: pool_size samples per (policy, PRM, seed, problem), SAMPLE_COLUMNS."""
    probs = _problems(spec, seed)
    frames = []
    for pi, pol in enumerate(spec.policies):
        p = 1.0 / (1.0 + np.exp(-(pol.ability - probs["difficulty"].to_numpy())))
        for ri, prm in enumerate(spec.prms):
            for s in spec.seeds:
                rng = np.random.default_rng([seed, pi, ri, s, 13])
                k, size = spec.pool_size, len(probs)
                pid = _hash([pol.name, prm.name, spec.dataset, s, spec.pool_size])
                corr = rng.random((size, k)) < p[:, None]
                logit = (
                    1.5 * (2 * corr - 1) * prm.quality
                    + 0.8 * (pol.ability - probs["difficulty"].to_numpy())[:, None]
                )
                final = 1.0 / (1.0 + np.exp(-(logit + rng.normal(0, 0.5, (size, k)))))
                early = np.clip(final[..., None] + rng.normal(0, 0.1, (size, k, 2)), 0, 1)
                steps = np.concatenate([early, final[..., None]], axis=2).reshape(size * k, 3)
                level = np.repeat(probs["level"].to_numpy(), k)
                out = np.round(
                    np.repeat(80 + 30 * probs["level"].to_numpy(), k) * rng.uniform(0.9, 1.1, size * k)
                )
                flat = corr.reshape(-1)
                frames.append(
                    pd.DataFrame(
                        {
                            "pool_id": pid,
                            "sweep": spec.sweep,
                            "policy": pol.name,
                            "prm": prm.name,
                            "problem_id": np.repeat(probs["problem_id"].to_numpy(), k),
                            "dataset": spec.dataset,
                            "level": level,
                            "seed": s,
                            "seeding": "per_request",
                            "sample_idx": np.tile(np.arange(k), size),
                            "text": np.where(
                                flat,
                                "Step.\n\nThe answer is \\boxed{1}.",
                                "Step.\n\nThe answer is \\boxed{0}.",
                            ),
                            "answer": np.where(flat, "1", "0"),
                            "correct": flat,
                            "grade_status": "ok",
                            "no_answer": False,
                            "fallback_extraction": False,
                            "extraction": "boxed",
                            "truncated": False,
                            "finish_reason": "eos",
                            "tokens_out": out.astype("int64"),
                            "prompt_tokens": 60 + 15 * level,
                            "cached_prompt_tokens": 0,
                            "step_scores": list(steps),
                            "score": final.reshape(-1),
                            "prm_tokens": (60 + 15 * level + out).astype("int64") if prm.params else 0,
                        }
                    )
                )
    df = pd.concat(frames, ignore_index=True)
    df["step_scores"] = df["step_scores"].map(list)
    return df[list(SAMPLE_COLUMNS)]


def generate(spec: SyntheticSpec, seed: int = 0) -> SyntheticResults:
    """Everything in memory (small specs: tests, the notebook fallback)."""
    tables, truths, configs = [], [], []
    for cell_id, config, table, q in iter_cells(spec, seed):
        tables.append(table)
        configs.append({"cell_id": cell_id, **config})
        truths.append(
            pd.DataFrame({"cell_id": cell_id, "problem_id": table["problem_id"].to_pylist(), "q": q})
        )
    cells = pa.concat_tables(tables).to_pandas()
    return SyntheticResults(
        cells, samples_frame(spec, seed), pd.concat(truths, ignore_index=True), _problems(spec, seed), configs
    )


def write_results(results_dir: str | Path, spec: SyntheticSpec, seed: int = 0) -> Path:
    """Write the spec's results through tts.store (the store layout: cells/, samples/, manifest.jsonl,
    sweep.yaml), as a sweep would."""
    from tts.store import SweepStore

    store = SweepStore(results_dir)
    for cell_id, config, table, _ in iter_cells(spec, seed):
        store.write("cell", cell_id, table, config=config)
    samples = samples_frame(spec, seed)
    for pool_id, grp in samples.groupby("pool_id", sort=True):
        store.write(
            "pool",
            str(pool_id),
            pa.Table.from_pandas(grp, preserve_index=False),
            meta={"n_max": spec.pool_size},
        )
    store.write_text(
        "sweep.yaml",
        f"# synthetic results (tts.testing.synthetic)\nname: {spec.sweep}\n"
        "difficulty:\n  method: oracle_quantile\n  num_bins: 5\n",
    )
    return Path(results_dir)


@dataclass
class BinnedWorld:
    """Cell rows drawn from stated per-bin accuracies. rows: the cell columns the analysis reads (one per
    configuration x problem x seed); difficulty: DIFFICULTY_COLUMNS of one method (the stated bins, each problem
    charged `samples_used` binning samples); binning: AnalysisData.binning (mean cost per problem, per bin and
    ALL_BIN "all"); truth: the stated accuracies (strategy, n, aggregation, bin, q, generations): the population
    accuracy of each configuration in each bin."""

    rows: pd.DataFrame
    difficulty: pd.DataFrame
    binning: pd.DataFrame
    truth: pd.DataFrame

    def true_ratios(self, baseline: str) -> pd.DataFrame:
        """The known answer of the difficulty-adaptive comparison against `baseline` (a strategy), from the
        stated accuracies alone (bins of equal size). Per budget B of the stated n values: compute-optimal(B) =
        the mean over bins of the best q among configurations with generations <= B; baseline(X) = the best
        (over aggregations) bin-mean q of `baseline` at n = X. Rows per X: x, base, y (the smallest B with
        compute-optimal(B) >= baseline(X), NaN if none), ratio = x / y, and margin: how far that decision is
        from a tie (min of compute-optimal(y) - base and base - compute-optimal(the budget before y))."""
        t = self.truth
        budgets = np.sort(t["n"].unique().astype(float))
        opt = np.array(
            [t[t["generations"] <= b + 1e-9].groupby("bin")["q"].max().mean() for b in budgets], dtype=float
        )
        base = t[t["strategy"] == baseline].groupby(["n", "aggregation"])["q"].mean().groupby(level=0).max()
        rows = []
        for x, b in base.items():
            hit = np.flatnonzero(opt >= b - 1e-12)
            y = budgets[hit[0]] if len(hit) else np.nan
            above = opt[hit[0]] - b if len(hit) else np.nan
            below = b - opt[hit[0] - 1] if len(hit) and hit[0] > 0 else np.inf
            rows.append({"x": float(x), "base": b, "y": y, "ratio": x / y, "margin": min(above, below)})
        return pd.DataFrame(rows)


def binned_world(
    accuracy: pd.DataFrame,
    problems_per_bin: int,
    *,
    seeds: tuple[int, ...] = (0,),
    spread: float = 0.0,
    binning_samples: int = 0,
    method: str = "predicted",
    policy: str = "p-1b",
    prm: str = "prm",
    dataset: str = "synthmath",
    seed: int = 0,
) -> BinnedWorld:
    """A world whose accuracy is stated per (strategy, n[, aggregation], bin) in `accuracy` (column q;
    optional `generations`, default n, and `aggregation`, default "last"). Problem i of a bin has an offset
    u_i ~ U(-spread, spread) shared by every configuration (problems differ; configurations are paired on them
    as on real problems); each (configuration, problem, seed) row is correct with probability clip(q + u_i)
    (keep q +- spread inside [0, 1] for q to stay the population accuracy). Seeded by `seed`."""
    acc = accuracy.copy()
    if "aggregation" not in acc.columns:
        acc["aggregation"] = "last"
    if "generations" not in acc.columns:
        acc["generations"] = acc["n"]
    acc["bin"] = acc["bin"].astype(str)
    bins = sorted(acc["bin"].unique())
    rng = np.random.default_rng([seed, 17])
    pids = {b: [f"{dataset}/{b}-{i:05d}" for i in range(problems_per_bin)] for b in bins}
    offset = {b: rng.uniform(-spread, spread, problems_per_bin) for b in bins}
    frames = []
    for (strategy, n, agg), grp in acc.groupby(["strategy", "n", "aggregation"], sort=True):
        config_id = _hash([policy, prm, dataset, strategy, int(n), agg])
        for r in grp.itertuples(index=False):
            q = np.clip(r.q + offset[r.bin], 0.0, 1.0)
            for s in seeds:
                correct = rng.random(problems_per_bin) < q
                tokens_out = 100 * int(r.generations)
                frames.append(
                    pd.DataFrame(
                        {
                            "config_id": config_id,
                            "cell_id": _hash([config_id, s]),
                            "problem_id": pids[r.bin],
                            "dataset": dataset,
                            "policy": policy,
                            "policy_params": 1_000_000_000,
                            "prm": prm,
                            "prm_kind": "vllm_pooling",
                            "prm_params": 1_000_000_000,
                            "strategy": strategy,
                            "n": int(n),
                            "aggregation": agg,
                            "temperature": 0.8,
                            "seed": s,
                            "correct": correct,
                            "status": "ok",
                            "generations": float(r.generations),
                            "tokens_in": 50,
                            "tokens_cached": 0,
                            "tokens_out": tokens_out,
                            "prm_tokens": tokens_out,
                            "flops_policy": 2e9 * (50 + tokens_out),
                            "flops_prm": 2e9 * tokens_out,
                            "flops": 2e9 * (50 + 2 * tokens_out),
                            "config.prm.aggregation": agg,
                        }
                    )
                )
    rows = pd.concat(frames, ignore_index=True)
    difficulty = pd.DataFrame(
        [
            {"policy": policy, "problem_id": p, "method": method, "bin": b, "pass_at_1": np.nan}
            for b in bins
            for p in pids[b]
        ]
    ).assign(samples_used=binning_samples)
    cost = {"binning_samples": float(binning_samples), "binning_tokens": 100.0 * binning_samples}
    binning = pd.DataFrame(
        [
            {"policy": policy, "bin": b, **cost, "binning_prm_tokens": cost["binning_tokens"]}
            for b in [*bins, "all"]
        ]
    )
    return BinnedWorld(rows, difficulty, binning, acc)
