"""Snell et al.'s difficulty-adaptive ("compute-optimal") allocation against each baseline at N = X, held out.

Why: Snell et al. (2024, sections 3.2, 5.3 and 6.2, Figures 4 and 8) pick, per generation budget, the best
configuration for each difficulty bin and compare the resulting curve with a baseline strategy at the same N
(weighted best-of-N for search, best-of-N for revisions): "matches best-of-N with up to 4x less compute" reads
off, for a baseline budget X, the smallest budget Y at which the compute-optimal curve reaches the baseline's
accuracy at X. Picked and scored on the same problems that claim is inflated; here, for each (policy, PRM,
dataset):

  compute-optimal at B  for each bin, the configuration whose actual generations per problem are <= B and
                        whose accuracy on the bin's problems of the other folds is highest; every problem is
                        scored by the choice made without it. B runs over the sweep's budgets (its N values).
  baseline at X         each baseline of the analysis config (adaptive_baselines: label -> strategy) at exactly
                        N = X, one configuration for all bins, its other hyperparameters (aggregation, beam
                        width, ...) chosen held-out the same way.
  Y, X/Y                the smallest B at which the compute-optimal curve reaches the baseline at X; the ratio
                        X/Y, for every X the baseline was run at, with bootstrap CIs: replicates (problems
                        resampled within bins, then each drawn problem's seeds) redo every choice and every Y.
                        A replicate whose curve never reaches the baseline within the budgets swept has
                        Y > max B: it counts as a ratio below X / max B (the CI's low end then reads "< X/maxB").

Difficulty-estimation cost is not charged in the headline (Snell et al. leave it out, section 3.2): the curve
and Y are over the configurations' own generations. It is reported beside it, charged ONCE per problem: a
deployed adaptive policy spends K samples per problem to bin it (K: the mean `samples_used` of the bins'
method, per problem) and then at most Y on the bin's configuration, so it spends Y + K per problem against the
baseline's X: the charged ratio is X / (Y + K), per replicate. No reuse is credited (a pool-based configuration
could reuse up to min(Y, K) of the binning samples), so Y + K is an upper bound of the adaptive policy's spend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tts.analysis.keys import ALL_BIN
from tts.analysis.selection import Choice, Group, Sums, argmax_chooser, choose, interval
from tts.analysis.settings import AnalysisConfig
from tts.analysis.source import AnalysisData
from tts.analysis.tables import candidates, fold_frame

CURVE = "compute-optimal"
GROUP = ["policy", "prm", "dataset"]


@dataclass
class Comparison:
    """The allocation of one difficulty method. curves: (policy, prm, dataset, budget, curve, accuracy, ci_low,
    ci_high, in_sample, _reps) with `_reps` the (1 + R,) held-out replicates (row 0 = the data); ratios: one
    row per (policy, prm, dataset, baseline, x), see `ratios`."""

    curves: pd.DataFrame
    ratios: pd.DataFrame
    method: str
    ci: float


def _adaptive(per_bin: list[Sums], total: Sums, eligible: np.ndarray) -> Choice:
    """Per-bin held-out choice among `eligible` columns; pooled held-out and in-sample accuracy."""
    cols = np.flatnonzero(eligible)
    num_h = np.zeros(total.Y.shape[1])
    den_h, num_i, den_i = num_h.copy(), num_h.copy(), num_h.copy()
    for sums in per_bin:
        Y, C = sums.Y[:, :, cols], sums.C[:, :, cols]
        tY, tC = Y.sum(0), C.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            pick = argmax_chooser(np.where(tC > 0, tY / np.where(tC > 0, tC, 1), -np.inf))
            for f in range(Y.shape[0]):
                trY, trC = tY - Y[f], tC - C[f]
                p = argmax_chooser(np.where(trC > 0, trY / np.where(trC > 0, trC, 1), -np.inf))
                p = np.where(p >= 0, p, pick)  # a bin fold with nothing to choose on: fall back to all
                num_h += np.take_along_axis(Y[f], np.maximum(p, 0)[:, None], 1)[:, 0]
                den_h += np.take_along_axis(C[f], np.maximum(p, 0)[:, None], 1)[:, 0]
        num_i += np.take_along_axis(tY, np.maximum(pick, 0)[:, None], 1)[:, 0]
        den_i += np.take_along_axis(tC, np.maximum(pick, 0)[:, None], 1)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return Choice(num_h / den_h, num_i / den_i, np.full(len(num_h), -1), np.zeros((0, len(num_h)), int))


def allocation(data: AnalysisData, s: pd.DataFrame, cfg: AnalysisConfig) -> pd.DataFrame:
    """Curves: the compute-optimal allocation at every budget B (configurations spending <= B generations, the
    binning not charged) and each adaptive baseline at N = B exactly, held-out, with CIs. Rows (policy, prm,
    dataset, budget, curve, accuracy, ci_low, ci_high, in_sample, _reps). `s`: tts.analysis.tables.candidates
    of `data` (charged or not: the curve reads each configuration's own `generations`)."""
    folds = fold_frame(data.bins, cfg.folds)
    index = data.selection_index()
    budgets = np.sort(s["n"].dropna().unique().astype(float)) if len(s) else np.array([])
    out = []
    binned = s[s["bin"].astype(str) != ALL_BIN]
    requests = []
    for (policy, prm, dataset), grp in binned.groupby(GROUP, sort=True):
        # one column per configuration; its mean generations may differ by bin (early stopping): use the max
        cand = (
            grp.groupby("config_id", as_index=False)
            .agg(
                strategy=("strategy", "first"),
                n=("n", "first"),
                gens=("generations", "max"),
                flops=("flops", "max"),
            )
            .sort_values(["gens", "flops", "config_id"])
            .reset_index(drop=True)
        )
        probs = folds[folds["policy"] == policy].rename(columns={"bin": "stratum"})
        requests.append((policy, prm, dataset, cand, probs, f"adaptive|{policy}|{dataset}"))

    # the weights depend on the policy and dataset only: drawn once for both PRMs, every group on its thread
    def stored(probs: pd.DataFrame, ids: Sequence[str], key: str) -> Path | None:
        return index.memo_path("adaptive", ids, probs, (cfg.folds, cfg.replicates, cfg.seed, key))

    index.prepare(
        [(r[4], r[3]["config_id"], r[5]) for r in requests],
        replicates=cfg.replicates,
        seed=cfg.seed,
        stored=stored,
    )
    for policy, prm, dataset, cand, probs, key in requests:
        group = index.group(probs, cand["config_id"])
        has = group.c.sum(1) > 0
        if not has.any():
            continue
        strata = probs["stratum"].to_numpy()[has]
        group = group.keep(has)

        def compute(group: Group = group, strata: np.ndarray = strata, key: str = key) -> list[Sums]:
            w = index.weights(group, cfg.replicates, cfg.seed, key)
            bins = [Sums.of(group, w, cfg.folds, rows=strata == b) for b in np.unique(strata)]
            return [*bins, Sums.of(group, w, cfg.folds)]

        *per_bin, total = index.memo(stored(probs, cand["config_id"], key), compute)
        gens, n = cand["gens"].to_numpy(float), cand["n"].to_numpy(float)
        for b in budgets:
            curves: dict[str, Choice] = {}
            ok = gens <= b * (1 + 1e-9)
            if ok.any():
                curves[CURVE] = _adaptive(per_bin, total, ok)
            for label, strategy in cfg.adaptive_baselines.items():
                base = (cand["strategy"] == strategy).to_numpy() & np.isclose(n, b)
                if base.any():
                    curves[label] = choose(total, np.flatnonzero(base))
            for name, ch in curves.items():
                lo, hi = interval(ch.heldout, cfg.ci)
                out.append(
                    {
                        "policy": policy,
                        "prm": prm,
                        "dataset": dataset,
                        "budget": b,
                        "curve": name,
                        "accuracy": ch.heldout[0],
                        "ci_low": lo,
                        "ci_high": hi,
                        "in_sample": ch.in_sample[0],
                        "_reps": ch.heldout,
                    }
                )
    return pd.DataFrame(out)


def binning_per_problem(data: AnalysisData) -> pd.Series:
    """K per policy: the mean samples per problem the bins of `data.method` cost (empty without pools)."""
    b = data.binning
    if b is None or b.empty or "binning_samples" not in b.columns:
        return pd.Series(dtype=float, name="binning_samples")
    whole = b[b["bin"].astype(str) == ALL_BIN]
    return whole.groupby("policy")["binning_samples"].mean().astype(float)


def _first_reached(opt: np.ndarray, target: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Per replicate: the smallest budget whose held-out accuracy (opt: budgets x (1 + R)) reaches `target`
    ((1 + R,)); inf when none does, NaN when the target itself is undefined."""
    reached = np.nan_to_num(opt, nan=-np.inf) >= target[None, :] - 1e-12
    first = np.where(reached.any(0), budgets[np.argmax(reached, 0)], np.inf)
    return np.where(np.isfinite(target), first, np.nan)


def _share(first: np.ndarray) -> float:
    """The share of replicates (with a defined baseline) whose curve reaches the baseline."""
    defined = ~np.isnan(first)
    return float(np.isfinite(first[defined]).mean()) if defined.any() else np.nan


def ratios(curves: pd.DataFrame, ci: float, binning: pd.Series | None = None) -> pd.DataFrame:
    """One row per (policy, prm, dataset, baseline, x) for every budget x a baseline curve has: its held-out
    accuracy [CI] (base_*), y = the smallest budget at which the compute-optimal curve reaches it (NaN when it
    does not within max_budget), the curve's accuracy at y, ratio = x / y [ratio_low, ratio_high] (unreached
    replicates count as 0: below x / max_budget; replicates whose baseline is undefined are left out), `reached`
    the share of replicates that reach it; then the
    binning charged once per problem: binning_samples = K, y_charged = y + K, ratio_charged = x / (y + K)
    [CI] (NaN without a binning cost). `binning`: K per policy (`binning_per_problem`)."""
    rows = []
    if curves.empty:
        return pd.DataFrame(rows)
    k_of = binning if binning is not None else pd.Series(dtype=float)
    for (policy, prm, dataset), grp in curves.groupby(GROUP, sort=True):
        opt = grp[grp["curve"] == CURVE].sort_values("budget")
        if opt.empty:
            continue
        budgets = opt["budget"].to_numpy(float)
        reps = np.stack(opt["_reps"].to_list())  # (budgets, 1 + R)
        k = float(k_of.get(policy, np.nan))
        for label in [c for c in dict.fromkeys(grp["curve"]) if c != CURVE]:
            for base in grp[grp["curve"] == label].sort_values("budget").to_dict("records"):
                x = float(base["budget"])
                first = _first_reached(reps, np.asarray(base["_reps"], float), budgets)
                valid = ~np.isnan(first)
                ratio = np.where(valid, x / first, np.nan)  # x / inf = 0: not reached within the budgets
                charged = np.where(valid, x / (first + k), np.nan)
                y = first[0] if np.isfinite(first[0]) else np.nan
                at_y = reps[np.searchsorted(budgets, y), 0] if np.isfinite(y) else np.nan
                lo, hi = interval(ratio, ci)
                clo, chi = interval(charged, ci) if np.isfinite(k) else (np.nan, np.nan)
                rows.append(
                    {
                        "policy": policy,
                        "prm": prm,
                        "dataset": dataset,
                        "baseline": label,
                        "x": x,
                        "base_accuracy": base["accuracy"],
                        "base_low": base["ci_low"],
                        "base_high": base["ci_high"],
                        "y": y,
                        "opt_accuracy": at_y,
                        "ratio": ratio[0],
                        "ratio_low": lo,
                        "ratio_high": hi,
                        "reached": _share(first[1:]),
                        "max_budget": budgets[-1],
                        "binning_samples": k,
                        "y_charged": y + k,
                        "ratio_charged": charged[0] if np.isfinite(k) else np.nan,
                        "ratio_charged_low": clo,
                        "ratio_charged_high": chi,
                    }
                )
    return pd.DataFrame(rows)


def compare(data: AnalysisData, cfg: AnalysisConfig) -> Comparison:
    """The curves and the X/Y table of `data`'s difficulty method (budgets uncharged; the binning charged once
    per problem in the ratio table's own columns)."""
    curves = allocation(data, candidates(data, charge=False), cfg)
    return Comparison(curves, ratios(curves, cfg.ci, binning_per_problem(data)), data.method, cfg.ci)


def _ratio_value(value: float, bound: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"<{bound:.3g}" if value == 0 else f"{value:.3g}"


def ratio_text(value: float, lo: float, hi: float, bound: float) -> str:
    """A ratio and its CI, "2 [1, 4]"; a figure or bound from replicates that never reach the baseline
    reads "<bound"."""
    if not np.isfinite(value) and not np.isfinite(lo):
        return "-"
    point = _ratio_value(value, bound)
    if not np.isfinite(lo):
        return point
    return f"{point} [{_ratio_value(lo, bound)}, {_ratio_value(hi, bound)}]"


def with_text(table: pd.DataFrame) -> pd.DataFrame:
    """Text columns of a `ratios` table for the report: base_ci, y_text, ratio_ci, ratio_charged_ci, reached_text."""
    if table.empty:
        return table
    out = table.copy()
    bound = out["x"] / out["max_budget"]
    out["base_ci"] = [
        f"{a:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else f"{a:.3f}"
        for a, lo, hi in zip(out["base_accuracy"], out["base_low"], out["base_high"], strict=True)
    ]
    out["y_text"] = [
        f"{y:g}" if np.isfinite(y) else f"not reached by {m:g}"
        for y, m in zip(out["y"], out["max_budget"], strict=True)
    ]
    out["ratio_ci"] = [
        ratio_text(*v) for v in zip(out["ratio"], out["ratio_low"], out["ratio_high"], bound, strict=True)
    ]
    charged_bound = out["x"] / (out["max_budget"] + out["binning_samples"])
    out["ratio_charged_ci"] = [
        ratio_text(*v)
        for v in zip(
            out["ratio_charged"],
            out["ratio_charged_low"],
            out["ratio_charged_high"],
            charged_bound,
            strict=True,
        )
    ]
    out["reached_text"] = [f"{r:.0%}" if np.isfinite(r) else "-" for r in out["reached"]]
    return out
