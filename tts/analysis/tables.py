"""Compute-optimal tables: which configuration wins, by how much, per (policy, PRM, difficulty bin, budget).

Why: this is the question a sweep answers (Snell et al. 2024, Liu et al. 2025). Every winner is chosen
held-out (tts.analysis.selection): `accuracy` [ci_low, ci_high] is the accuracy of choosing on other problems,
`in_sample` the oracle figure of choosing and scoring on the same ones, shown beside it and labelled. The
configuration named is the one chosen on all problems (what a user would deploy); `fold_agree` says whether
every fold chose it too. Budgets are what rows actually spent, never the nominal N:

  generation_matched  per budget B (the sweep's N values): the best configuration whose mean actual
                      generations per problem (plus binning samples, when charged) are <= B, and its held-out
                      gain over each baseline of the analysis config (that strategy's best configuration within
                      the same budget, also chosen held-out), with a CI over problems.
  flops_matched       the same over budgets on a log2 grid of FLOPs per problem: the compute-optimal frontier.
  tokens_matched      the same over generated tokens per problem (thinking budgets vs parallel samples).
  cross_size          Liu et al.'s Table 5: each larger policy's single-sample accuracy against the smallest
                      policy + cheapest configuration that matches it, chosen on one fold, checked on the other.

A fold with fewer than `min_fold_problems` problems of a bin (`fold_problems`) is flagged `fold_ok` False: the
figure exists but rests on too little to select on. Configurations of a PRM-free run (prm_kind "none")
compete in every PRM group of their policy. No strategy is named here: baselines come from AnalysisConfig.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tts.analysis.keys import ALL_BIN, DESCRIPTIVE
from tts.analysis.selection import (
    Group,
    Sums,
    assign_folds,
    choose,
    choose_masks,
    fold_sizes,
    interval,
    intervals,
)
from tts.analysis.settings import AnalysisConfig
from tts.analysis.source import AnalysisData, bin_sort_key, with_means

GROUP = ["policy", "prm", "dataset", "bin"]
WINNER = [
    "config_id",
    *DESCRIPTIVE,
    "hyperparams",
    "generations",
    "generations_charged",
    "flops",
    "tokens",
    "tokens_out",
]


@dataclass
class Tables:
    generation: pd.DataFrame
    flops: pd.DataFrame
    cross_size: pd.DataFrame
    tokens: pd.DataFrame
    method: str
    ci: float


def candidates(data: AnalysisData, *, charge: bool) -> pd.DataFrame:
    """Every (configuration, bin) with its accuracy and per-problem compute; PRM-free rows copied into each
    PRM group. Binning cost: `binning_samples` / `binning_flops` are the samples (and their FLOPs) the bins
    need beyond what the configuration already draws (a pool-based configuration at N already samples
    min(N, K) of the K binning samples from the same pool; any other pays all K); `generations_charged` and
    `flops_charged` add them when `charge`."""
    s = with_means(data.stats)
    s = s.loc[s["rows"] > 0, [c for c in s.columns if not c.endswith("_sum") and c != "y_sq"]]
    free = s["prm_kind"].eq("none").fillna(False).astype(bool)
    if free.any() and (~free).any():
        groups = s.loc[~free, ["policy", "dataset", "prm"]].drop_duplicates()
        s = pd.concat(
            [s, s[free].drop(columns="prm").merge(groups, on=["policy", "dataset"])], ignore_index=True
        )
    s = s.reset_index(drop=True)
    s["binning_samples"], s["binning_flops"] = 0.0, 0.0
    if data.binning is not None and len(data.binning):
        b = data.binning[["policy", "bin", "binning_samples", "binning_tokens", "binning_prm_tokens"]]
        s = s.drop(columns=["binning_samples", "binning_flops"]).merge(b, on=["policy", "bin"], how="left")
        k = s["binning_samples"].fillna(0.0)
        own = np.where(s["pool"].fillna(False).astype(bool), np.minimum(s["generations"], k), 0.0)
        extra = np.where(k > 0, (k - own) / k.where(k > 0, 1.0), 0.0)
        s["binning_samples"] = k - own
        s["binning_flops"] = extra * (
            2.0 * s["policy_params"].fillna(0) * s["binning_tokens"].fillna(0)
            + 2.0 * s["prm_params"].fillna(0) * s["binning_prm_tokens"].fillna(0)
        )
        s = s.drop(columns=["binning_tokens", "binning_prm_tokens"])
    s["generations_charged"] = s["generations"] + (s["binning_samples"] if charge else 0.0)
    s["flops_charged"] = s["flops"] + (s["binning_flops"] if charge else 0.0)
    return s


def fold_frame(bins: pd.DataFrame, folds: int) -> pd.DataFrame:
    """(policy, problem_id, bin, fold): folds stratified by bin, the same for every table of a method."""
    b = bins[["policy", "problem_id", "bin"]].drop_duplicates(["policy", "problem_id"]).reset_index(drop=True)
    return b.assign(bin=b["bin"].astype(str), fold=assign_folds(b, folds))


def config_groups(
    s: pd.DataFrame, data: AnalysisData, cfg: AnalysisConfig, order: list[str]
) -> Iterator[tuple[tuple, pd.DataFrame, Group, Sums]]:
    """Per (policy, PRM, dataset, bin): its candidates in preference order, their per-problem matrix (problems
    of the bin that any candidate has, with their seeds) and per-fold bootstrap sums (problems, then seeds)."""
    folds = fold_frame(data.bins, cfg.folds)
    index = data.selection_index()  # groups, weights and sums cached across tables (tts.analysis.cube)
    requests = []
    for key, cand in s.groupby(GROUP, sort=True, dropna=False):
        policy, _, dataset, bin_ = key
        cand = cand.sort_values([*order, "config_id"]).reset_index(drop=True)
        probs = folds[folds["policy"] == policy]
        if str(bin_) != ALL_BIN:
            probs = probs[probs["bin"] == str(bin_)]
        requests.append((key, cand, probs.rename(columns={"bin": "stratum"}), f"{policy}|{dataset}|{bin_}"))
    index.prepare(
        [(probs, cand["config_id"], name) for _, cand, probs, name in requests],
        replicates=cfg.replicates,
        seed=cfg.seed,
        stored=lambda p, ids, k: index.selection_path(p, ids, cfg.folds, cfg.replicates, cfg.seed, k),
    )
    for key, cand, probs, name in requests:
        got = index.selection(
            probs, cand["config_id"], folds=cfg.folds, replicates=cfg.replicates, seed=cfg.seed, key=name
        )
        if got is not None:
            yield key, cand, *got


def _rows(
    key: tuple, cand: pd.DataFrame, group: Group, sums: Sums, eligible: np.ndarray, cfg: AnalysisConfig
) -> list[dict | None]:
    """One table row per row of `eligible` (budgets x columns): the held-out winner among its columns, its
    in-sample figure and the held-out gains over each baseline within the same columns (None: no winner).
    Every budget's and baseline's selection, in every fold and replicate, comes from one `choose_masks`."""
    eligible = np.asarray(eligible, bool)
    nb = len(eligible)
    masks = [eligible]
    for strategy in cfg.baselines.values():
        masks.append(eligible & (cand["strategy"] == strategy).to_numpy()[None, :])
    ch = choose_masks(sums, np.concatenate(masks))
    main = ch.heldout[:nb]
    gains = [main - ch.heldout[(i + 1) * nb : (i + 2) * nb] for i in range(len(cfg.baselines))]
    lo, hi = intervals(np.concatenate([main, ch.in_sample[:nb], *gains]), cfg.ci)
    problems = len(group.fold)
    smallest = fold_sizes(group, cfg.folds)
    out: list[dict | None] = []
    for b in range(nb):
        pick = int(ch.pick[b, 0])
        if not eligible[b].any() or pick < 0:
            out.append(None)
            continue
        win = cand.iloc[pick]
        row = dict(zip(GROUP, key, strict=True)) | {c: win[c] for c in WINNER if c in cand.columns}
        row |= {
            "accuracy": main[b, 0],
            "ci_low": lo[b],
            "ci_high": hi[b],
            "in_sample": ch.in_sample[b, 0],
            "in_sample_low": lo[nb + b],
            "in_sample_high": hi[nb + b],
            "optimism": ch.in_sample[b, 0] - main[b, 0],
            "fold_agree": bool((ch.fold_picks[b, :, 0] == pick).all()),
            "problems": problems,
            "fold_problems": smallest,
            "fold_ok": smallest >= cfg.min_fold_problems,
            "candidates": int(eligible[b].sum()),
            "binning_samples": win.get("binning_samples", 0.0),
            "binning_flops": win.get("binning_flops", 0.0),
            "flops_charged": win.get("flops_charged", np.nan),
        }
        for i, label in enumerate(cfg.baselines):
            j = (2 + i) * nb + b
            has = masks[1 + i][b].any()
            row |= {
                f"base:{label}": ch.heldout[(i + 1) * nb + b, 0] if has else np.nan,
                f"gain:{label}": gains[i][b, 0],
                f"gain_low:{label}": lo[j],
                f"gain_high:{label}": hi[j],
            }
        out.append(row)
    return out


def sort_rows(df: pd.DataFrame, extra: list[str]) -> pd.DataFrame:
    if df.empty:
        return df
    key = bin_sort_key(df["bin"].astype(str)).rename("_bin")
    order = pd.concat([df[["policy", "prm", "dataset", *extra]], key], axis=1)
    idx = order.sort_values(["policy", "prm", "dataset", "_bin", *extra], kind="stable").index
    return df.loc[idx].reset_index(drop=True)


def generation_matched(s: pd.DataFrame, data: AnalysisData, cfg: AnalysisConfig) -> pd.DataFrame:
    """Held-out best configuration per (policy, PRM, dataset, bin) and generation budget B (the sweep's N
    values), among those whose mean actual generations (charged) per problem are <= B."""
    budgets = np.sort(s["n"].dropna().unique().astype(float)) if len(s) else np.array([])
    rows = []
    for key, cand, group, sums in config_groups(s, data, cfg, ["generations_charged", "flops_charged"]):
        gens = cand["generations_charged"].to_numpy(float)
        eligible = gens[None, :] <= budgets[:, None] * (1 + 1e-9)
        for b, row in zip(budgets, _rows(key, cand, group, sums, eligible, cfg), strict=True):
            if row is not None:
                rows.append(row | {"budget": b})
    return sort_rows(pd.DataFrame(rows), ["budget"])


def flops_matched(s: pd.DataFrame, data: AnalysisData, cfg: AnalysisConfig) -> pd.DataFrame:
    """Held-out best configuration within each FLOPs budget (a log2 grid, `grid_step` octaves apart)."""
    return _log_budget_matched(s, data, cfg, "flops_charged", "flops_budget")


def tokens_matched(s: pd.DataFrame, data: AnalysisData, cfg: AnalysisConfig) -> pd.DataFrame:
    """Held-out best configuration within each budget of generated tokens per problem (the same log2 grid):
    the budget axis of thinking models, where one long chain and several short samples cost alike."""
    return _log_budget_matched(s, data, cfg, "tokens_out", "tokens_budget")


def _log_budget_matched(
    s: pd.DataFrame, data: AnalysisData, cfg: AnalysisConfig, measure: str, name: str
) -> pd.DataFrame:
    rows = []
    for key, cand, group, sums in config_groups(s, data, cfg, [measure]):
        f = np.maximum(cand[measure].fillna(0).to_numpy(float), 1.0)
        lo = math.floor(math.log2(f.min()) / cfg.grid_step)
        hi = math.ceil(math.log2(f.max()) / cfg.grid_step)
        grid = 2.0 ** (np.arange(lo, hi + 1) * cfg.grid_step)
        eligible = f[None, :] <= grid[:, None] * (1 + 1e-12)
        for b, row in zip(grid, _rows(key, cand, group, sums, eligible, cfg), strict=True):
            if row is not None:
                rows.append(row | {name: b})
    return sort_rows(pd.DataFrame(rows), [name])


def _first_match(tolerance: float):
    """Chooser over [smaller configurations..., the large reference]: the first (smallest policy, cheapest)
    column whose accuracy is >= the reference's - tolerance on the choosing problems; -1 when none."""

    def chooser(acc: np.ndarray) -> np.ndarray:
        ok = acc[..., :-1] >= acc[..., -1:] - tolerance - 1e-12
        ok &= np.isfinite(acc[..., :-1])
        return np.where(ok.any(-1), ok.argmax(-1), -1)

    return chooser


def cross_size(s: pd.DataFrame, data: AnalysisData, cfg: AnalysisConfig) -> pd.DataFrame:
    """Per dataset, over all problems: for each larger policy's single-sample configuration (N = 1, at most
    one generation: CoT, sampled or greedy), the smallest policy + cheapest configuration matching it within
    `tolerance`, chosen on one fold and scored on the other (`accuracy`, and `gap` = accuracy - the large
    policy's on the same problems, with a CI); `in_sample` is the match chosen and scored on all problems.
    A large policy's single-sample configurations that score the same in every bootstrap replicate (one sample
    pool reached through several strategies or PRMs at N = 1) are one reference: listed once, the cheapest."""
    whole = s[s["bin"].astype(str) == ALL_BIN].drop_duplicates("config_id")
    index = data.selection_index()
    rows = []
    for dataset, cand in whole.groupby("dataset", sort=True):
        cand = cand.sort_values(["policy_params", "flops", "config_id"]).reset_index(drop=True)
        probs = pd.DataFrame({"policy": "*", "problem_id": index.problems_of(cand["config_id"])})
        probs = probs.assign(fold=assign_folds(probs, cfg.folds, strata=None), stratum=ALL_BIN)
        group = index.group(probs, cand["config_id"])
        key = f"cross|{dataset}"
        path = index.memo_path("cross", cand["config_id"], probs, (cfg.folds, cfg.replicates, cfg.seed, key))
        sums = index.memo(
            path,
            lambda g=group, k=key: [Sums.of(g, index.weights(g, cfg.replicates, cfg.seed, k), cfg.folds)],
        )[0]
        params = cand["policy_params"].to_numpy(float)
        single = (cand["n"] == 1) & (cand["generations"] <= 1 + 1e-9)
        seen: set[tuple[str, bytes]] = set()
        for j in np.flatnonzero(single.to_numpy()):  # cheapest first (sorted by flops within a policy)
            large = cand.iloc[j]
            smaller = np.flatnonzero(params < params[j])
            if not len(smaller):
                continue
            tY, tC = sums.Y.sum(0)[:, j], sums.C.sum(0)[:, j]
            large_reps = np.where(tC > 0, tY / np.where(tC > 0, tC, 1), np.nan)
            same = (str(large["policy"]), np.round(np.nan_to_num(large_reps, nan=-1.0), 12).tobytes())
            if same in seen:
                continue
            seen.add(same)
            ch = choose(sums, np.append(smaller, j), _first_match(cfg.tolerance))
            gap = ch.heldout - large_reps
            glo, ghi = interval(gap, cfg.ci)
            lo, hi = interval(ch.heldout, cfg.ci)
            row = {
                "dataset": dataset,
                "bin": ALL_BIN,
                "large_policy": large["policy"],
                "large_params": large["policy_params"],
                "large_strategy": large["strategy"],
                "large_hyperparams": large["hyperparams"],
                "large_accuracy": large_reps[0],
                "large_flops": large["flops"],
                "accuracy": ch.heldout[0],
                "ci_low": lo,
                "ci_high": hi,
                "in_sample": ch.in_sample[0],
                "gap": gap[0],
                "gap_low": glo,
                "gap_high": ghi,
                "fold_problems": fold_sizes(group, cfg.folds),
                "fold_ok": fold_sizes(group, cfg.folds) >= cfg.min_fold_problems,
                "fold_agree": bool((ch.fold_picks[:, 0] == ch.pick[0]).all()),
            }
            if ch.pick[0] >= 0:
                best = cand.iloc[int(ch.pick[0])]
                row |= {
                    "policy": best["policy"],
                    "small_params": best["policy_params"],
                    "prm": best["prm"],
                    "config_id": best["config_id"],
                    "strategy": best["strategy"],
                    "hyperparams": best["hyperparams"],
                    "n": best["n"],
                    "flops": best["flops"],
                    "flops_ratio": best["flops"] / large["flops"] if large["flops"] else np.nan,
                }
            rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(["dataset", "large_params"]).reset_index(drop=True) if len(df) else df


def compute_optimal_tables(data: AnalysisData, cfg: AnalysisConfig | None = None) -> Tables:
    """All three tables for one difficulty method (cfg: AnalysisConfig; default conf/analysis/default.yaml)."""
    from tts.analysis.settings import load_analysis_config

    cfg = cfg or load_analysis_config()
    s = candidates(data, charge=cfg.charges(data.method))
    return Tables(
        generation=generation_matched(s, data, cfg),
        flops=flops_matched(s, data, cfg),
        cross_size=cross_size(s, data, cfg),
        tokens=tokens_matched(s, data, cfg),
        method=data.method,
        ci=cfg.ci,
    )
