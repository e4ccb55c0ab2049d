"""Difficulty bins per (policy, problem): the binning rules, shared by the runtime and the analysis.

Why here, below both: a sweep restricted to bins assigns them before it runs cells (tts.runtime), and the
analysis assigns them after (tts.analysis); both must cut bins by the same rules, so the rules sit in a
bottom-layer module that imports only numpy, pandas and tts.results_schema. Compute-optimal strategies depend on
difficulty (Snell et al. 2024; Liu et al. 2025), and difficulty is a property of (problem, policy). Methods:

  oracle_quantile  the policy's pass@1 from K pool samples, cut into `num_bins` quantile bins; "1" = easiest.
  absolute         pass@1 against fixed thresholds (Liu et al.): "hard" < 0.1 <= "medium" <= 0.5 < "easy".
  predicted        Snell et al.'s: the verifier's mean final-step score over the K samples, cut into `num_bins`
                   quantile bins ("1" = highest mean score); no reference answer is read anywhere
                   (predicted_scheme "score_quantile", the default). Two calibrated variants map the score to
                   pass@1 by a monotone (isotonic) fit on HELD-OUT problems' labels and cut that like
                   oracle_quantile ("quantile") or absolute ("absolute"); the binned problems' own answers are
                   never read (cross-fitted over folds when no held-out set is given).
  dataset_level    the data set's own level ("1".."5" for MATH).

Ties (`quantile_bins`): values that tie share one bin, the bin of the tied group's first (easiest-ranked)
member: with 60% of problems at pass@1 = 1.0 and 5 bins, all of them are bin 1 and bin 2 is empty, rather than
bin 1 empty and the ties in bin 2. Empty and tiny bins are reported by the analysis (tts.analysis.difficulty).
Bins cost samples (`samples_used`, DIFFICULTY_COLUMNS); tts.analysis.difficulty turns them into compute.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from tts.results_schema import DIFFICULTY_COLUMNS

METHODS = ("dataset_level", "oracle_quantile", "absolute", "predicted")
LIU_LABELS = ("hard", "medium", "easy")
PREDICTED_SCHEMES = ("score_quantile", "quantile", "absolute")
_REFERENCE_COLUMNS = ("correct", "answer", "reference", "no_answer", "fallback_extraction", "text")


def _need(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(
            f"{what}: samples lack column(s) {missing}; expected tts.results_schema.SAMPLE_COLUMNS"
        )


def _first_samples(samples: pd.DataFrame, samples_per_problem: int | None) -> pd.DataFrame:
    """One row per distinct sample (policy, problem, seed, sample_idx), the first K per problem when K is set."""
    keys = [c for c in ("policy", "problem_id", "seed", "sample_idx") if c in samples.columns]
    df = samples.drop_duplicates(keys) if len(keys) == 4 else samples
    if samples_per_problem is not None:
        if samples_per_problem < 1:
            raise ValueError(
                f"samples: invalid value {samples_per_problem!r}; must be >= 1 (or None for all)"
            )
        if "sample_idx" not in df.columns:
            raise KeyError("samples: a K limit needs the sample_idx column")
        df = df[df["sample_idx"] < samples_per_problem]
    return df


def pass_at_1(samples: pd.DataFrame, *, samples_per_problem: int | None = None) -> pd.DataFrame:
    """Per (policy, problem_id): pass@1 = mean correctness over its samples, and samples_used."""
    _need(samples, ("policy", "problem_id", "correct"), "pass_at_1")
    df = _first_samples(samples, samples_per_problem)
    g = df.assign(correct=df["correct"].astype(float)).groupby(["policy", "problem_id"], sort=True)["correct"]
    return pd.DataFrame({"pass_at_1": g.mean(), "samples_used": g.size()}).reset_index()


def quantile_bins(values: np.ndarray, num_bins: int) -> np.ndarray:
    """Bins 1..num_bins by quantile of `values`, 1 = highest value (easiest). Ties share a bin: the bin of the
    tied group's lowest rank (its easiest-ranked member), so bin 1 is never empty; later bins may be."""
    if num_bins < 1:
        raise ValueError(f"num_bins: invalid value {num_bins!r}; must be >= 1")
    ranks = pd.Series(-np.asarray(values, float)).rank(method="min").to_numpy()
    return np.clip(np.ceil(ranks / len(ranks) * num_bins), 1, num_bins).astype(int)


def absolute_bins(
    values: np.ndarray, thresholds: Sequence[float], labels: Sequence[str] | None = None
) -> np.ndarray:
    """Label by thresholds (increasing): below t0 -> labels[0], ..., above t_last -> labels[-1].
    A value equal to a threshold goes to the upper bin, except at the top threshold (Liu: easy is > 50%,
    medium 10-50% inclusive, hard < 10%)."""
    th = [float(t) for t in thresholds]
    if th != sorted(th) or any(not 0 <= t <= 1 for t in th):
        raise ValueError(
            f"thresholds: invalid value {list(thresholds)!r}; must be increasing pass@1 cut points in [0, 1]"
        )
    if labels is None:
        labels = LIU_LABELS if len(th) == 2 else [f"b{i}" for i in range(len(th) + 1)]
    if len(labels) != len(th) + 1:
        raise ValueError(f"labels: {len(labels)} given for {len(th)} thresholds; need len(thresholds) + 1")
    v = np.asarray(values, float)
    idx = np.searchsorted(th, v, side="right")
    if th:
        idx = np.where(v == th[-1], len(th) - 1, idx)
    return np.asarray(labels, dtype=object)[idx]


def isotonic_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing least-squares fit of y on x (pool-adjacent-violators). Returns (x_knots, y_fit)."""
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    vals, wts, lens = [], [], []
    for v in ys:
        vals.append(v)
        wts.append(1.0)
        lens.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            w = wts[-2] + wts[-1]
            vals[-2] = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w
            wts[-2], lens[-2] = w, lens[-2] + lens[-1]
            vals.pop(), wts.pop(), lens.pop()
    return xs, np.repeat(vals, lens)


def _final_score(samples: pd.DataFrame) -> pd.Series:
    """The PRM's score of the final step (Snell's "final answer score"); falls back to `score`.
    A precomputed `final_score` column (tts.analysis.io reads it in SQL) is used as is."""
    if "final_score" in samples.columns:
        last = samples["final_score"].astype(float)
        return last.fillna(samples["score"]) if "score" in samples.columns else last
    if "step_scores" in samples.columns:
        last = samples["step_scores"].map(lambda s: float(s[-1]) if s is not None and len(s) else np.nan)
        if "score" in samples.columns:
            last = last.fillna(samples["score"])
        return last
    _need(samples, ("score",), "predicted")
    return samples["score"].astype(float)


def mean_final_score(samples: pd.DataFrame, *, samples_per_problem: int | None = None) -> pd.DataFrame:
    """Per (policy, problem_id): the mean final-step PRM score and samples_used. Reads no reference column."""
    blind = samples.drop(columns=[c for c in _REFERENCE_COLUMNS if c in samples.columns])
    df = _first_samples(blind, samples_per_problem)
    g = df.assign(_s=_final_score(df)).groupby(["policy", "problem_id"], sort=True)["_s"]
    return pd.DataFrame({"score": g.mean(), "samples_used": g.size()}).reset_index()


def _pass_edges(p: np.ndarray, num_bins: int) -> list[float]:
    """pass@1 cut points between consecutive quantile bins of `p` (midway between neighbouring bins)."""
    bins = quantile_bins(p, num_bins)
    edges = []
    for b in range(num_bins - 1, 0, -1):  # from hardest (num_bins) to easiest (1): increasing pass@1
        harder, easier = p[bins == b + 1], p[bins <= b]
        if len(harder) and len(easier):
            edges.append((harder.max() + easier.min()) / 2)
    return sorted(set(edges))


def fit_score_cuts(
    heldout: pd.DataFrame,
    *,
    num_bins: int,
    thresholds: Sequence[float] | None,
    samples_per_problem: int | None,
) -> tuple[np.ndarray, list[float]]:
    """Learn cut points on the mean score from held-out problems (score -> pass@1, isotonic).

    Returns (score cut points, the pass@1 edges they implement): a problem with mean score >= cut k has
    predicted pass@1 >= edge k."""
    truth = pass_at_1(heldout, samples_per_problem=samples_per_problem)
    feats = mean_final_score(heldout, samples_per_problem=samples_per_problem)
    both = truth.merge(feats, on=["policy", "problem_id"])
    if len(both) < 2:
        raise ValueError("predicted: need at least 2 held-out problems with samples to fit score cut points")
    x, y = both["score"].to_numpy(float), both["pass_at_1"].to_numpy(float)
    edges = list(thresholds) if thresholds is not None else _pass_edges(y, num_bins)
    knots, fit = isotonic_fit(x, y)
    cuts = [knots[np.argmax(fit >= e)] if (fit >= e).any() else np.inf for e in edges]
    return np.asarray(cuts, float), edges


def _label_predicted(score: np.ndarray, cuts: np.ndarray, num_bins: int, thresholds: Sequence[float] | None):
    above = (np.asarray(score, float)[:, None] >= cuts[None, :]).sum(axis=1)  # edges passed, 0 = hardest
    if thresholds is not None:
        labels = LIU_LABELS if len(thresholds) == 2 else [f"b{i}" for i in range(len(thresholds) + 1)]
        return np.asarray(labels, dtype=object)[above]
    # quantile scheme: len(cuts) + 1 effective bins, "1" = easiest
    return np.asarray([str(len(cuts) + 1 - a) for a in above], dtype=object)


def cross_fit_folds(problem_ids: Sequence[str], folds: int) -> dict[str, int]:
    """Balanced, answer-blind folds: problems ordered by a hash of their id, then dealt round-robin."""
    ids = sorted(set(map(str, problem_ids)), key=lambda p: (zlib.crc32(p.encode()), p))
    return {p: i % folds for i, p in enumerate(ids)}


def _one_prm(samples: pd.DataFrame, prm: str | None) -> pd.DataFrame:
    """The samples scored by one PRM (the given one, else the first by name): bins come from one verifier."""
    if prm is None and "prm" in samples.columns and samples["prm"].nunique() > 1:
        prm = sorted(samples["prm"].dropna().unique())[0]
    return samples[samples["prm"] == prm] if prm is not None and "prm" in samples.columns else samples


def _score_quantile(samples: pd.DataFrame, *, num_bins: int, samples_per_problem, prm) -> pd.DataFrame:
    """Snell et al.'s predicted difficulty: quantile bins of the mean final score per (policy[, dataset])."""
    samples = _one_prm(samples, prm)
    feats = mean_final_score(samples, samples_per_problem=samples_per_problem)
    group = ["policy"]
    if "dataset" in samples.columns:
        ds = samples.drop_duplicates(["policy", "problem_id"])[["policy", "problem_id", "dataset"]]
        feats = feats.merge(ds, on=["policy", "problem_id"], how="left")
        group.append("dataset")
    feats["bin"] = ""
    for _, idx in feats.groupby(group, sort=False, dropna=False).groups.items():
        feats.loc[idx, "bin"] = quantile_bins(feats.loc[idx, "score"].to_numpy(), num_bins).astype(str)
    return feats.assign(pass_at_1=np.nan)


def _predicted(samples, heldout, *, num_bins, thresholds, samples_per_problem, folds, prm) -> pd.DataFrame:
    if prm is None and "prm" in samples.columns and samples["prm"].nunique() > 1:
        prm = sorted(samples["prm"].dropna().unique())[0]
    if prm is not None:
        samples = samples[samples["prm"] == prm]
        heldout = (
            heldout[heldout["prm"] == prm] if heldout is not None and "prm" in heldout.columns else heldout
        )
    feats = mean_final_score(samples, samples_per_problem=samples_per_problem)
    out = []
    for policy, grp in feats.groupby("policy", sort=True):
        if heldout is not None:
            parts = [(grp, heldout[heldout["policy"] == policy])]
        else:  # cross-fit: bin each fold with cut points learned on the other folds
            if folds < 2:
                raise ValueError(f"folds: invalid value {folds!r}; need >= 2 to cross-fit, or pass heldout=")
            fold = cross_fit_folds(grp["problem_id"], folds)
            f_bin = grp["problem_id"].astype(str).map(fold).to_numpy()
            own = samples[samples["policy"] == policy]
            f_all = own["problem_id"].astype(str).map(fold).to_numpy()
            parts = [(grp[f_bin == f], own[f_all != f]) for f in range(folds)]
        for target, fit_on in parts:
            if target.empty:
                continue
            cuts, _ = fit_score_cuts(
                fit_on, num_bins=num_bins, thresholds=thresholds, samples_per_problem=samples_per_problem
            )
            out.append(
                target.assign(
                    bin=_label_predicted(target["score"].to_numpy(), cuts, num_bins, thresholds),
                    pass_at_1=np.nan,
                )
            )
    return pd.concat(out, ignore_index=True)


def assign_bins(
    samples_df: pd.DataFrame,
    method: str,
    *,
    num_bins: int = 5,
    thresholds: Sequence[float] = (0.1, 0.5),
    samples_per_problem: int | None = None,
    heldout: pd.DataFrame | None = None,
    folds: int = 2,
    prm: str | None = None,
    predicted_scheme: str = "score_quantile",
) -> pd.DataFrame:
    """Difficulty bins per (policy, problem_id) as a DataFrame with DIFFICULTY_COLUMNS.

    samples_df: sample rows (SAMPLE_COLUMNS); for "dataset_level" any rows with policy, problem_id, level
      (cell rows work too). samples_per_problem: use the first K samples (sample_idx < K); None = all.
    Quantile bins are cut per (policy, dataset). predicted: `heldout` holds samples of OTHER problems (with
    `correct`) to learn cut points from; without it the problems are cross-fitted over `folds` folds.
    `predicted_scheme`: "score_quantile" (Snell: quantile bins of the mean final score itself, no labels at
    all; `heldout` / `folds` unused), "quantile" (calibrated pass@1 cut like oracle_quantile) or "absolute"
    (calibrated pass@1 against thresholds).
    """
    if method not in METHODS:
        raise ValueError(f"method: invalid value {method!r}; allowed: {', '.join(METHODS)}")
    _need(samples_df, ("policy", "problem_id"), "assign_bins")
    if method == "dataset_level":
        _need(samples_df, ("level",), "dataset_level")
        df = samples_df[["policy", "problem_id", "level"]].drop_duplicates(["policy", "problem_id"])
        if df["level"].isna().any():
            bad = df.loc[df["level"].isna(), "problem_id"].iloc[0]
            raise ValueError(
                f"dataset_level: problem {bad!r} has no level; use method oracle_quantile or absolute"
            )
        out = df.assign(bin=df["level"].astype(int).astype(str), pass_at_1=np.nan, samples_used=0)
    elif method in ("oracle_quantile", "absolute"):
        out = pass_at_1(samples_df, samples_per_problem=samples_per_problem)
        if method == "absolute":
            out["bin"] = absolute_bins(out["pass_at_1"].to_numpy(), thresholds)
        else:
            group = ["policy"]
            if "dataset" in samples_df.columns:
                ds = samples_df.drop_duplicates(["policy", "problem_id"])[["policy", "problem_id", "dataset"]]
                out = out.merge(ds, on=["policy", "problem_id"], how="left")
                group.append("dataset")
            out["bin"] = ""
            for _, idx in out.groupby(group, sort=False, dropna=False).groups.items():
                out.loc[idx, "bin"] = quantile_bins(out.loc[idx, "pass_at_1"].to_numpy(), num_bins).astype(
                    str
                )
    else:
        if predicted_scheme not in PREDICTED_SCHEMES:
            raise ValueError(
                f"predicted_scheme: invalid value {predicted_scheme!r}; allowed: {', '.join(PREDICTED_SCHEMES)}"
            )
        if predicted_scheme == "score_quantile":
            out = _score_quantile(
                samples_df, num_bins=num_bins, samples_per_problem=samples_per_problem, prm=prm
            )
        else:
            out = _predicted(
                samples_df,
                heldout,
                num_bins=num_bins,
                thresholds=thresholds if predicted_scheme == "absolute" else None,
                samples_per_problem=samples_per_problem,
                folds=folds,
                prm=prm,
            )
    out = out.assign(
        method=method, bin=out["bin"].astype(str), samples_used=out["samples_used"].astype("int64")
    )
    return out[list(DIFFICULTY_COLUMNS)].sort_values(["policy", "problem_id"], ignore_index=True)
