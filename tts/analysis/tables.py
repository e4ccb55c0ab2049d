"""Compute-optimal tables: which strategy wins, by how much, per (policy, PRM, difficulty bin, budget).

Why: this is the question a sweep answers (Snell et al. 2024, Liu et al. 2025). Three tables, all from an
`AnalysisData` (tts.analysis.source), so they run the same on the summary, a raw scan or in-memory rows:

  generation_matched  per budget N (generations): the best configuration (strategy + hyperparameters), its
                      accuracy with a seeded bootstrap CI over problems, and its gain over the best best-of-N
                      and the best majority vote at the same N.
  flops_matched       budgets on a log2 grid of FLOPs per problem: the best configuration whose FLOPs (plus
                      the binning's, when charged) fit the budget, and the same gains. Its accuracy column is
                      the compute-optimal frontier.
  cross_size          for each policy's single-sample (CoT, N=1) accuracy, the smallest policy and cheapest
                      configuration that matches or beats it, with the FLOPs ratio small / large.

Configurations of a PRM-free run (prm_kind "none") compete in every PRM group of their policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import is_integer_dtype

from tts.analysis.bootstrap import bin_members, group_cis
from tts.analysis.keys import ALL_BIN, BEST_OF_N, HYPERPARAMS, MAJORITY_VOTE, hyperparams_label
from tts.analysis.source import AnalysisData, bin_sort_key, with_means
from tts.strategies import STRATEGIES

POOL_STRATEGIES = tuple(n for n, e in STRATEGIES.items() if e.traits.pool_based)

GROUP = ["policy", "prm", "dataset", "bin"]
BASE_COLUMNS = [
    "config_id",
    "strategy",
    "hyperparams",
    *HYPERPARAMS,
    "n",
    "accuracy",
    "problems",
    "rows",
    "flops",
    "tokens",
    "generations",
]


@dataclass
class Tables:
    generation: pd.DataFrame
    flops: pd.DataFrame
    cross_size: pd.DataFrame
    method: str
    ci: float


def candidates(data: AnalysisData, *, charge_binning: bool = True) -> pd.DataFrame:
    """Every (configuration, bin) with its accuracy and per-problem compute; PRM-free rows copied into each
    PRM group; `flops_charged` adds the binning's FLOPs when `charge_binning` and binning costs are known."""
    s = with_means(data.stats)
    s = s.loc[s["rows"] > 0, [c for c in s.columns if not c.endswith("_sum") and c != "y_sq"]]
    free = s["prm_kind"].eq("none").fillna(False).astype(bool)
    if free.any() and (~free).any():
        groups = s.loc[~free, ["policy", "dataset", "prm"]].drop_duplicates()
        s = pd.concat(
            [s, s[free].drop(columns="prm").merge(groups, on=["policy", "dataset"])], ignore_index=True
        )
    s = s.reset_index(drop=True)
    codes = s.groupby(list(HYPERPARAMS), dropna=False, sort=False).ngroup().to_numpy()
    first = pd.Series(np.arange(len(s))).groupby(codes).first()
    labels = {c: hyperparams_label(s.loc[i, list(HYPERPARAMS)].to_dict()) for c, i in first.items()}
    s["hyperparams"] = [labels[c] for c in codes]
    s["binning_samples"], s["binning_flops"] = 0.0, 0.0
    if data.binning is not None and len(data.binning):
        b = data.binning[["policy", "bin", "binning_samples", "binning_tokens", "binning_prm_tokens"]]
        s = s.drop(columns=["binning_samples", "binning_flops"]).merge(b, on=["policy", "bin"], how="left")
        s["binning_samples"] = s["binning_samples"].fillna(0.0)
        s["binning_flops"] = 2.0 * s["policy_params"].fillna(0) * s["binning_tokens"].fillna(0) + (
            2.0 * s["prm_params"].fillna(0) * s["binning_prm_tokens"].fillna(0)
        )
    s["flops_charged"] = s["flops"] + (s["binning_flops"] if charge_binning else 0.0)
    return s


def _best(s: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Highest accuracy per group; ties go to the cheaper, then to the strategy name (deterministic)."""
    ranked = s.assign(_acc=s["accuracy"].round(12))  # sums in another order must not break a tie differently
    ranked = ranked.sort_values(
        ["_acc", "flops", "strategy", "config_id"], ascending=[False, True, True, True]
    )
    return ranked.drop_duplicates(keys).drop(columns="_acc")


def _sort(df: pd.DataFrame, extra: list[str]) -> pd.DataFrame:
    key = bin_sort_key(df["bin"].astype(str)).rename("_bin")
    order = pd.concat([df[["policy", "prm", "dataset", *extra]], key], axis=1)
    idx = order.sort_values(["policy", "prm", "dataset", "_bin", *extra], kind="stable").index
    return df.loc[idx].reset_index(drop=True)


def generation_matched(s: pd.DataFrame) -> pd.DataFrame:
    """Best configuration per (policy, PRM, dataset, bin, N) with gains over best-of-N and majority vote."""
    keys = [*GROUP, "n"]
    best = _best(s, keys)
    for name, col in ((BEST_OF_N, "gain_vs_best_of_n"), (MAJORITY_VOTE, "gain_vs_majority")):
        base = s[s["strategy"] == name].groupby(keys, dropna=False)["accuracy"].max().rename(name)
        best = best.merge(base.reset_index(), on=keys, how="left")
        best[col] = best["accuracy"] - best[name]
    cols = [
        *GROUP,
        *BASE_COLUMNS,
        "binning_samples",
        BEST_OF_N,
        "gain_vs_best_of_n",
        MAJORITY_VOTE,
        "gain_vs_majority",
    ]
    return _sort(best[cols], ["n"])


def _running_best(flops: np.ndarray, acc: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Index (into flops-sorted arrays) of the most accurate entry with flops <= budget; -1 when none fits."""
    if not len(flops):
        return np.full(len(budgets), -1)
    prior = np.concatenate([[-np.inf], np.maximum.accumulate(acc)[:-1]])
    arg = np.maximum.accumulate(np.where(acc > prior, np.arange(len(acc)), 0))
    pos = np.searchsorted(flops, budgets, side="right") - 1
    return np.where(pos >= 0, arg[np.maximum(pos, 0)], -1)


def flops_matched(s: pd.DataFrame, *, grid_step: float = 1.0) -> pd.DataFrame:
    """Best configuration within each FLOPs budget (a log2 grid, `grid_step` octaves apart) per group."""
    if grid_step <= 0:
        raise ValueError(f"grid_step: invalid value {grid_step!r}; must be > 0 (octaves between budgets)")
    cols = [
        *GROUP,
        "flops_budget",
        *BASE_COLUMNS,
        "flops_charged",
        "binning_flops",
        BEST_OF_N,
        "gain_vs_best_of_n",
        MAJORITY_VOTE,
        "gain_vs_majority",
    ]
    if s.empty:
        return pd.DataFrame(columns=cols)
    s = s.assign(_acc=s["accuracy"].round(12))  # ties: the cheaper, then by strategy name
    s = s.sort_values([*GROUP, "flops_charged", "_acc", "strategy"], ascending=[True] * 5 + [False, True])
    s = s.reset_index(drop=True)
    group = s.groupby(GROUP, sort=False, dropna=False).ngroup().to_numpy()
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], len(s)]
    flops = np.maximum(s["flops_charged"].to_numpy(float), 1.0)
    acc = s["_acc"].to_numpy(float)
    strat = s["strategy"].to_numpy(dtype=object)
    picks, budgets_all, base = [], [], {BEST_OF_N: [], MAJORITY_VOTE: []}
    for a, b in zip(starts, ends, strict=True):
        f, y = flops[a:b], acc[a:b]
        lo, hi = math.floor(math.log2(f.min()) / grid_step), math.ceil(math.log2(f.max()) / grid_step)
        budgets = 2.0 ** (np.arange(lo, hi + 1) * grid_step)
        idx = _running_best(f, y, budgets)
        keep = idx >= 0
        picks.append(a + idx[keep])
        budgets_all.append(budgets[keep])
        for name in base:
            mask = strat[a:b] == name
            j = _running_best(f[mask], y[mask], budgets[keep])
            base[name].append(np.where(j >= 0, y[mask][np.maximum(j, 0)] if mask.any() else np.nan, np.nan))
    out = s.iloc[np.concatenate(picks)].reset_index(drop=True)
    out["flops_budget"] = np.concatenate(budgets_all)
    for name, col in ((BEST_OF_N, "gain_vs_best_of_n"), (MAJORITY_VOTE, "gain_vs_majority")):
        out[name] = np.concatenate(base[name])
        out[col] = out["accuracy"] - out[name]
    return _sort(out[cols], ["flops_budget"])


def cross_size(s: pd.DataFrame, *, tolerance: float = 0.0) -> pd.DataFrame:
    """Per (dataset, bin) and larger policy: the smallest policy + cheapest configuration whose accuracy is
    >= the larger policy's single-sample (N=1, sampling strategy) accuracy - tolerance, and the FLOPs ratio."""
    single = s[(s["n"] == 1) & s["strategy"].isin(POOL_STRATEGIES)]
    single = single.sort_values(["flops", "strategy"]).drop_duplicates(["policy", "dataset", "bin"])
    rows = []
    for large in single.itertuples(index=False):
        if not (s["policy_params"] < large.policy_params).any():
            continue  # the smallest policy: nothing smaller to compare
        pool = s[
            (s["dataset"] == large.dataset)
            & (s["bin"] == large.bin)
            & (s["policy_params"] < large.policy_params)
        ]
        match = pool[pool["accuracy"] >= large.accuracy - tolerance]
        row = {
            "dataset": large.dataset,
            "bin": large.bin,
            "large_policy": large.policy,
            "large_params": large.policy_params,
            "large_accuracy": large.accuracy,
            "large_flops": large.flops,
        }
        if len(match):
            small = match[match["policy_params"] == match["policy_params"].min()]
            best = small.sort_values(["flops", "accuracy", "config_id"], ascending=[True, False, True]).iloc[
                0
            ]
            row |= {
                "policy": best["policy"],
                "small_params": best["policy_params"],
                "prm": best["prm"],
                "config_id": best["config_id"],
                "strategy": best["strategy"],
                "hyperparams": best["hyperparams"],
                "n": best["n"],
                "accuracy": best["accuracy"],
                "flops": best["flops"],
                "flops_ratio": best["flops"] / large.flops if large.flops else np.nan,
            }
        rows.append(row)
    cols = [
        "dataset",
        "bin",
        "large_policy",
        "large_params",
        "large_accuracy",
        "large_flops",
        "policy",
        "small_params",
        "prm",
        "strategy",
        "hyperparams",
        "n",
        "accuracy",
        "flops",
        "flops_ratio",
        "config_id",
    ]
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        return df
    df = df.assign(_bin=bin_sort_key(df["bin"].astype(str)))
    return df.sort_values(["dataset", "_bin", "large_params"]).drop(columns="_bin").reset_index(drop=True)


def attach_ci(
    tables: list[pd.DataFrame], data: AnalysisData, *, ci: float, replicates: int, seed: int
) -> None:
    """Add ci_low / ci_high (bootstrap over the bin's problems) to each table's winning configurations, in place.

    Uses the source's precomputed CIs when they were made with the same (replicates, seed) and level; otherwise
    fetches the winners' per-problem values once and draws one weight matrix per (policy, dataset, bin)."""
    frames = [t[["policy", "dataset", "bin", "config_id"]].dropna() for t in tables if len(t)]
    found = pd.DataFrame(columns=["policy", "dataset", "bin", "config_id", "ci_low", "ci_high"])
    if frames:
        wanted = pd.concat(frames).drop_duplicates().astype({"config_id": "int64", "bin": str})
        pre = data.cis
        if pre is not None and data.ci_spec == (replicates, seed) and np.isclose(pre["ci"], ci).any():
            pre = pre[np.isclose(pre["ci"], ci)][["config_id", "bin", "ci_low", "ci_high"]].astype(
                {"bin": str}
            )
            found = wanted.merge(pre, on=["config_id", "bin"], how="left")
        else:
            found = _fresh_ci(wanted, data, ci=ci, replicates=replicates, seed=seed)
    for t in tables:
        key = t[["policy", "dataset", "bin", "config_id"]].astype({"bin": str})
        got = key.merge(found.astype({"bin": str}), on=["policy", "dataset", "bin", "config_id"], how="left")
        t["ci_low"], t["ci_high"] = got["ci_low"].to_numpy(float), got["ci_high"].to_numpy(float)


def _fresh_ci(
    wanted: pd.DataFrame, data: AnalysisData, *, ci: float, replicates: int, seed: int
) -> pd.DataFrame:
    vals, bins = data.values(sorted(wanted["config_id"].unique())), data.bins
    if not (is_integer_dtype(vals["problem_id"]) and is_integer_dtype(bins["problem_id"])):
        # integer codes in problem-id order: the same weights as sorting the ids, much faster lookups
        ids = [np.asarray(bins["problem_id"]), np.asarray(vals["problem_id"])]
        index = pd.Index(np.sort(pd.unique(np.concatenate(ids))))
        bins = bins.assign(problem_id=index.get_indexer(ids[0]))
        vals = vals.assign(problem_id=index.get_indexer(ids[1]))
    out = []
    for (policy, dataset, bin_), grp in wanted.groupby(["policy", "dataset", "bin"], sort=False):
        members = bin_members(bins, policy, bin_, ALL_BIN)
        cis = group_cis(
            members,
            vals[vals["config_id"].isin(grp["config_id"])],
            levels=[ci],
            replicates=replicates,
            seed=seed,
            key=ci_key(policy, dataset, bin_),
        )
        out.append(cis.assign(policy=policy, dataset=dataset, bin=bin_))
    return (
        pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["config_id", "ci_low", "ci_high"])
    )


def ci_key(policy: str, dataset: str, bin_label: str) -> str:
    """The bootstrap seed key of a (policy, dataset, bin) group: the same wherever its CIs are computed."""
    return f"{policy}|{dataset}|{bin_label}"


def compute_optimal_tables(
    data: AnalysisData,
    *,
    ci: float = 0.95,
    replicates: int = 1000,
    seed: int = 0,
    grid_step: float = 1.0,
    charge_binning: bool = True,
    tolerance: float = 0.0,
    with_ci: bool = True,
) -> Tables:
    """All three tables for one difficulty method, with bootstrap CIs on every winning configuration
    (`with_ci=False` leaves ci_low / ci_high empty and reads no per-problem values)."""
    s = candidates(data, charge_binning=charge_binning)
    gen, flo, cross = (
        generation_matched(s),
        flops_matched(s, grid_step=grid_step),
        cross_size(s, tolerance=tolerance),
    )
    if with_ci:
        attach_ci([gen, flo, cross], data, ci=ci, replicates=replicates, seed=seed)
    else:
        for t in (gen, flo, cross):
            t["ci_low"], t["ci_high"] = np.nan, np.nan
    return Tables(generation=gen, flops=flo, cross_size=cross, method=data.method, ci=ci)
