"""Snell et al.'s difficulty-adaptive ("compute-optimal") allocation, chosen on one fold, applied on the other.

Why: Snell et al. (2024) pick, per generation budget, the best configuration for each *predicted* difficulty bin
and show it matches best-of-N with up to 4x less compute. Picked and scored on the same problems that claim is
inflated; here, for each budget B and each (policy, PRM, dataset):

  - for each bin, the configuration whose actual generations (charged) are <= B and whose accuracy on the bin's
    problems of the other folds is highest; every problem is scored by the choice made without it;
  - each baseline of the analysis config (adaptive_baselines: label -> strategy) gets the same treatment but
    one configuration for all bins (its best hyperparameters, chosen held-out);
  - bootstrap replicates (problems resampled within bins, then each drawn problem's seeds) redo every
    choice: CIs of each curve and of the "matches <baseline> at N=X with Y generations (X/Y less compute)"
    ratio, X the baseline's largest budget and Y the smallest budget at which the adaptive curve reaches the
    baseline's accuracy at X.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tts.analysis.keys import ALL_BIN
from tts.analysis.selection import Choice, Group, Sums, argmax_chooser, choose, interval
from tts.analysis.settings import AnalysisConfig
from tts.analysis.source import AnalysisData
from tts.analysis.tables import fold_frame

CURVE = "compute-optimal"


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
    """Rows (policy, prm, dataset, budget, curve, accuracy, ci_low, ci_high, in_sample) plus a `_reps` column
    holding the bootstrap replicates (for `matches_line`). `s`: tts.analysis.tables.candidates of `data`."""
    folds = fold_frame(data.bins, cfg.folds)
    values = data.values(None)
    budgets = np.sort(s["n"].dropna().unique().astype(float)) if len(s) else np.array([])
    out = []
    binned = s[s["bin"].astype(str) != ALL_BIN]
    for (policy, prm, dataset), grp in binned.groupby(["policy", "prm", "dataset"], sort=True):
        # one column per configuration; its charged generations may differ by bin (binning cost): use the max
        cand = (
            grp.groupby("config_id", as_index=False)
            .agg(
                strategy=("strategy", "first"),
                gens=("generations_charged", "max"),
                flops=("flops_charged", "max"),
            )
            .sort_values(["gens", "flops", "config_id"])
            .reset_index(drop=True)
        )
        probs = folds[folds["policy"] == policy].rename(columns={"bin": "stratum"})
        group = Group.build(values, probs, cand["config_id"])
        has = group.c.sum(1) > 0
        if not has.any():
            continue
        strata = probs["stratum"].to_numpy()[has]
        group = group.keep(has)
        w = group.weights(cfg.replicates, cfg.seed, f"adaptive|{policy}|{dataset}")
        per_bin = [Sums.of(group, w, cfg.folds, rows=strata == b) for b in np.unique(strata)]
        total = Sums.of(group, w, cfg.folds)
        gens = cand["gens"].to_numpy(float)
        for b in budgets:
            ok = gens <= b * (1 + 1e-9)
            if not ok.any():
                continue
            curves = {CURVE: _adaptive(per_bin, total, ok)}
            for label, strategy in cfg.adaptive_baselines.items():
                base = ok & (cand["strategy"] == strategy).to_numpy()
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


def matches_line(curves: pd.DataFrame, baseline: str, ci: float) -> list[str]:
    """Per (policy, prm, dataset): "matches <baseline> at N=X with Y generations (X/Y less compute) [CI]"."""
    lines = []
    if curves.empty:
        return lines
    for (policy, prm, dataset), grp in curves.groupby(["policy", "prm", "dataset"], sort=True):
        base = grp[grp["curve"] == baseline].sort_values("budget")
        opt = grp[grp["curve"] == CURVE].sort_values("budget")
        head = f"{policy} with {prm} on {dataset}: compute-optimal (held-out)"
        if base.empty or opt.empty:
            lines.append(f"{head}: no {baseline} curve to compare with")
            continue
        x = float(base["budget"].iloc[-1])
        target = np.stack(base["_reps"].iloc[-1:].to_list())[0]  # (1 + R,)
        reps = np.stack(opt["_reps"].to_list())  # (budgets, 1 + R)
        budgets = opt["budget"].to_numpy(float)
        reached = reps >= target[None, :] - 1e-12
        first = np.where(reached.any(0), budgets[np.argmax(reached, 0)], np.nan)
        ratio = x / first
        if np.isnan(first[0]):
            lines.append(f"{head} does not reach {baseline} at N={x:g} within the budgets swept")
            continue
        lo, hi = interval(ratio, ci)
        share = float(np.isfinite(ratio[1:]).mean())
        lines.append(
            f"{head} matches {baseline} at N={x:g} with {first[0]:g} generations ({ratio[0]:.3g}x less compute; "
            f"{int(round(ci * 100))}% CI [{lo:.3g}, {hi:.3g}], matched in {share:.0%} of bootstrap resamples)"
        )
    return lines
