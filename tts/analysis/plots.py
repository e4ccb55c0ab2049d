"""Plots of a sweep (matplotlib, PNG and SVG): accuracy vs budget per strategy (one panel per difficulty bin,
log2 budget axis), the compute-optimal frontier (FLOPs), and small policy + search vs large policy (FLOPs).

Why these three: they are the figures of Snell et al. (2024) and Liu et al. (2025) that answer "which strategy
at which budget and difficulty" and "when does a small model with search beat a big one". Colours are the
Okabe-Ito palette (distinguishable with the common colour-vision deficiencies) and every series also has its
own marker, so nothing depends on colour alone. Figures are built with `matplotlib.figure.Figure` (no pyplot
state, no GUI backend needed) and returned, so notebooks can show them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tts.analysis.keys import ALL_BIN
from tts.analysis.source import bin_sort_key

OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _style(key: str, order: list[str]) -> tuple[str, str]:
    i = order.index(key) if key in order else len(order) + hash(key) % 8
    return OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]


def _slug(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(str(p) for p in parts)).strip("_")


def _bins(df: pd.DataFrame) -> list[str]:
    labels = pd.Series(df["bin"].astype(str).unique())
    return list(labels.iloc[np.argsort(bin_sort_key(labels).to_numpy(), kind="stable")])


def _save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    fig.savefig(paths[0], dpi=130)  # constrained layout already fits everything: no "tight" re-draw
    fig.savefig(paths[1])
    return paths


def _panels(n: int, width: float = 3.6, height: float = 3.2) -> tuple[Figure, list]:
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _bin_title(method: str, label: str) -> str:
    return "all problems" if label == ALL_BIN else f"{method.replace('_', ' ')} bin {label}"


def accuracy_vs_budget(candidates: pd.DataFrame, out_dir: str | Path, *, method: str = "") -> list[Path]:
    """Per (policy, PRM, dataset): accuracy vs the generations actually spent per problem (mean), one line per
    strategy (its best hyperparameters at each N), one panel per bin, with a 95% normal band over rows. Spent,
    not N: a strategy that stops early (adaptive majority) or pays for rollouts (lookahead) sits where its
    cost is."""
    paths: list[Path] = []
    order = sorted(candidates["strategy"].unique())  # one colour per strategy across every figure
    for (policy, prm, dataset), grp in candidates.groupby(["policy", "prm", "dataset"], sort=True):
        bins = _bins(grp)
        fig, axes = _panels(len(bins))
        best = grp.sort_values("accuracy", ascending=False).drop_duplicates(["bin", "strategy", "n"])
        strategies = sorted(candidates["strategy"].unique())
        for ax, label in zip(axes, bins, strict=True):
            for strat in strategies:
                line = best[(best["bin"].astype(str) == label) & (best["strategy"] == strat)].sort_values("n")
                if line.empty:
                    continue
                spent = line["generations"] if "generations" in line.columns else line["n"]
                color, marker = _style(strat, order)
                ax.plot(
                    spent,
                    line["accuracy"],
                    marker=marker,
                    color=color,
                    label=strat.replace("_", " "),
                    lw=1.6,
                )
                se = line["se"].fillna(0).to_numpy() if "se" in line.columns else 0
                ax.fill_between(
                    spent,
                    np.clip(line["accuracy"] - 1.96 * se, 0.0, 1.0),  # accuracy lives in [0, 1]
                    np.clip(line["accuracy"] + 1.96 * se, 0.0, 1.0),
                    color=color,
                    alpha=0.12,
                    lw=0,
                )
            ax.set_xscale("log", base=2)
            ax.set_title(_bin_title(method, label), fontsize=10)
            ax.set_xlabel("generations spent per problem (mean)")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("accuracy")
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 6), fontsize=9)
        fig.suptitle(f"{policy} with {prm} on {dataset}: accuracy vs test-time budget")
        paths += _save(fig, Path(out_dir), _slug("accuracy_vs_budget", policy, prm, dataset))
    return paths


def frontier(
    candidates: pd.DataFrame, flops_table: pd.DataFrame, out_dir: str | Path, *, method: str = ""
) -> list[Path]:
    """Per (policy, PRM, dataset): every configuration (FLOPs per problem, accuracy) coloured by strategy, the
    compute-optimal frontier (the best accuracy reachable at each cost) as a black step line, and the
    FLOPs-matched table's budgets (log2 grid) as black ticks on it; one panel per bin."""
    paths: list[Path] = []
    order = sorted(candidates["strategy"].unique())
    for (policy, prm, dataset), grp in candidates.groupby(["policy", "prm", "dataset"], sort=True):
        bins = _bins(grp)
        fig, axes = _panels(len(bins))
        table = flops_table[
            (flops_table["policy"] == policy)
            & (flops_table["prm"] == prm)
            & (flops_table["dataset"] == dataset)
        ]
        for ax, label in zip(axes, bins, strict=True):
            pts = grp[grp["bin"].astype(str) == label]
            for strat in sorted(pts["strategy"].unique()):
                sub = pts[pts["strategy"] == strat]
                color, marker = _style(strat, order)
                ax.scatter(
                    sub["flops_charged"],
                    sub["accuracy"],
                    color=color,
                    marker=marker,
                    s=22,
                    alpha=0.75,
                    label=strat.replace("_", " "),
                )
            front = _pareto(pts.assign(flops=pts["flops_charged"]))
            if len(front):
                xs = np.append(front["flops"].to_numpy(), pts["flops_charged"].max())
                ys = np.append(front["accuracy"].to_numpy(), front["accuracy"].iloc[-1])
                ax.step(xs, ys, where="post", color="black", lw=1.4, label="frontier")
            grid = table[table["bin"].astype(str) == label]
            grid = grid[grid["flops_budget"] <= pts["flops_charged"].max() * 2]
            ax.plot(
                grid["flops_budget"],
                grid["accuracy"],
                ls="none",
                marker="|",
                ms=9,
                color="black",
                label="FLOPs-matched budgets",
            )
            _log_flops_axis(ax)
            ax.set_title(_bin_title(method, label), fontsize=10)
            ax.set_xlabel("FLOPs per problem")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("accuracy")
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 4), fontsize=9)
        fig.suptitle(f"{policy} with {prm} on {dataset}: compute-optimal frontier")
        paths += _save(fig, Path(out_dir), _slug("frontier", policy, prm, dataset))
    return paths


def _log_flops_axis(ax: Any) -> None:
    """Log x axis with short labels ("1.6e11"): decades on wide FLOPs ranges, four rounded log-spaced ticks on
    narrow ones (matplotlib's default minor labels overlap when the range is under a decade)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    if low > 0 and np.log10(high / low) < 2:
        ticks = np.unique([float(f"{t:.2g}") for t in np.geomspace(low * 1.05, high / 1.05, 4)])
        ax.set_xticks(ticks)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(low, high)
    else:
        ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}".replace("e+", "e")))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _pareto(df: pd.DataFrame) -> pd.DataFrame:
    """The points no cheaper point beats: sorted by FLOPs, each strictly more accurate than all before."""
    df = df.sort_values(["flops", "accuracy"], ascending=[True, False])
    return df[df["accuracy"] > df["accuracy"].cummax().shift(fill_value=-np.inf)]


def small_vs_large(candidates: pd.DataFrame, out_dir: str | Path, *, bin_label: str = ALL_BIN) -> list[Path]:
    """Per dataset: each policy's best accuracy reachable at each FLOPs cost (its Pareto front over strategies,
    PRMs and budgets) and its single-sample (N=1) point as a star: where a small policy's front crosses a larger
    policy's star, search on the small model matches the big one for that many FLOPs."""
    paths: list[Path] = []
    data = candidates[candidates["bin"].astype(str) == bin_label]
    for dataset, grp in data.groupby("dataset", sort=True):
        order = grp.sort_values("policy_params")["policy"].drop_duplicates().tolist()
        fig = Figure(figsize=(7.5, 4.8), layout="constrained")
        ax = fig.subplots()
        for policy in order:
            sub = grp[grp["policy"] == policy]
            color, marker = _style(policy, order)
            front = _pareto(sub)
            ax.step(front["flops"], front["accuracy"], where="post", color=color, lw=1.6)
            ax.plot(
                front["flops"],
                front["accuracy"],
                ls="none",
                marker=marker,
                color=color,
                ms=4,
                label=f"{policy}: best strategy at each cost",
            )
            single = sub[(sub["n"] == 1)].sort_values("flops").head(1)
            if len(single):
                ax.plot(
                    single["flops"],
                    single["accuracy"],
                    marker="*",
                    ms=16,
                    color=color,
                    mec="black",
                    ls="none",
                    label=f"{policy}: one sample (N=1)",
                )
        _log_flops_axis(ax)
        ax.set_xlabel("FLOPs per problem (policy + PRM)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(
            f"{dataset} ({'all problems' if bin_label == ALL_BIN else 'bin ' + bin_label}): "
            "small policy + search vs larger policy"
        )
        paths += _save(fig, Path(out_dir), _slug("small_vs_large", dataset, bin_label))
    return paths


def adaptive_allocation(
    curves: pd.DataFrame, out_dir: str | Path, *, method: str = "", ratios: pd.DataFrame | None = None
) -> list[Path]:
    """Per (policy, PRM, dataset), tts.analysis.adaptive's comparison. Left: held-out accuracy vs generation
    budget of the difficulty-adaptive allocation (its in-sample figure dashed, for contrast) and of each
    baseline at N = budget, with bootstrap CI bands. Right (with `ratios`): X/Y against the baseline budget X,
    one series per baseline with its CI as error bars (binning not charged), and X/(Y + K) with the binning
    charged once per problem as hollow markers on a dotted line; y = 1 (no saving) drawn grey. A ratio whose
    curve never reaches the baseline is drawn at X / (largest budget), its lower bound, with a downward arrow."""
    paths: list[Path] = []
    if curves.empty:
        return paths
    order = list(dict.fromkeys(curves["curve"]))
    for (policy, prm, dataset), grp in curves.groupby(["policy", "prm", "dataset"], sort=True):
        rat = _group(ratios, policy, prm, dataset)
        fig = Figure(figsize=(11.5 if len(rat) else 6.4, 4.4), layout="constrained")
        axes = fig.subplots(1, 2 if len(rat) else 1, squeeze=False).ravel()
        ax = axes[0]
        for name in order:
            line = grp[grp["curve"] == name].sort_values("budget")
            if line.empty:
                continue
            color, marker = _style(name, order)
            ax.plot(
                line["budget"],
                line["accuracy"],
                marker=marker,
                color=color,
                lw=1.8,
                label=f"{name} (held-out)" if name == order[0] else f"{name} at N = budget (held-out)",
            )
            ax.fill_between(line["budget"], line["ci_low"], line["ci_high"], color=color, alpha=0.15, lw=0)
            if name == order[0]:
                ax.plot(
                    line["budget"],
                    line["in_sample"],
                    ls="--",
                    color=color,
                    lw=1.0,
                    label=f"{name} (in-sample)",
                )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("generation budget per problem")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(f"allocation by {method.replace('_', ' ')} bin", fontsize=10)
        if len(rat):
            _ratio_panel(axes[1], rat, order)
        fig.suptitle(f"{policy} with {prm} on {dataset}: difficulty-adaptive allocation", fontsize=11)
        paths += _save(fig, Path(out_dir), _slug("adaptive_allocation", policy, prm, dataset))
    return paths


def _group(df: pd.DataFrame | None, policy: str, prm: str, dataset: str) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame()
    return df[(df["policy"] == policy) & (df["prm"] == prm) & (df["dataset"] == dataset)]


def _ratio_panel(ax: Any, rat: pd.DataFrame, order: list[str]) -> None:
    """X/Y (filled, solid) and X/(Y + K) (hollow, dotted) vs X per baseline, CIs as error bars; baselines
    nudged apart along x (a few percent of an octave) so their bars do not hide each other."""
    from matplotlib.ticker import FuncFormatter

    names = [c for c in order if c in set(rat["baseline"])]
    for i, name in enumerate(names):
        line = rat[rat["baseline"] == name].sort_values("x")
        line = line.assign(x=line["x"] * 2.0 ** (0.08 * (i - (len(names) - 1) / 2)))
        color, marker = _style(name, order)
        for col, charged in (("ratio", False), ("ratio_charged", True)):
            if not line[col].notna().any():
                continue
            bound = line["x"] / (line["max_budget"] + (line["binning_samples"] if charged else 0.0))
            point = line[col].where(line[col] > 0, bound)  # unreached: drawn at its upper bound
            low = line[f"{col}_low"].where(line[f"{col}_low"] > 0, bound / 2)
            high = line[f"{col}_high"].where(line[f"{col}_high"] > 0, bound)
            err = np.clip(np.vstack([point - low, high - point]), 0, None)
            ax.errorbar(
                line["x"],
                point,
                yerr=err,
                color=color,
                marker=marker,
                mfc="none" if charged else color,
                ls=":" if charged else "-",
                capsize=3,
                lw=1.4,
                label=f"vs {name}" + (", binning charged once" if charged else ""),
            )
            unreached = line[col] == 0
            ax.plot(line["x"][unreached], point[unreached], ls="none", marker="v", ms=8, color=color)
    ax.axhline(1.0, color="grey", lw=1.0)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if v >= 1 else f"1/{1 / v:g}"))
    ax.set_xlabel("baseline budget X (N)")
    ax.set_ylabel("X / Y  (compute saved)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title("Y: smallest budget where the compute-optimal curve reaches the baseline at X", fontsize=9)


def revision_ratio(table: pd.DataFrame, out_dir: str | Path, *, method: str = "") -> list[Path]:
    """Snell et al. Fig. 7 (right): accuracy vs the sequential/parallel ratio L / P at a fixed budget N, one line
    per difficulty bin, error bars = the table's bootstrap CI; one figure per (policy, PRM, dataset, N,
    setting). `table`: tts.analysis.revisions.ratio_tables()[0]."""
    paths: list[Path] = []
    if table.empty:
        return paths
    keys = ["policy", "prm", "dataset", "n", "setting"]
    for (policy, prm, dataset, n, setting), grp in table.groupby(keys, sort=True):
        bins = _bins(grp)
        fig = Figure(figsize=(5.2, 3.6), layout="constrained")
        ax = fig.subplots()
        for label in bins:
            line = grp[grp["bin"].astype(str) == label].sort_values("ratio")
            color, marker = _style(label, bins)
            err = np.vstack([line["accuracy"] - line["ci_low"], line["ci_high"] - line["accuracy"]])
            ax.errorbar(
                line["ratio"],
                line["accuracy"],
                yerr=np.clip(err, 0, None),
                marker=marker,
                color=color,
                capsize=3,
                lw=1.6,
                label=_bin_title(method, label),
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequential / parallel ratio (L / P)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{policy} with {prm} on {dataset}, N = {n:g}\n{setting}", fontsize=9)
        paths += _save(fig, Path(out_dir), _slug("revision_ratio", policy, prm, dataset, f"n{n:g}", setting))
    return paths


def all_plots(
    candidates: pd.DataFrame, flops_table: pd.DataFrame, out_dir: str | Path, *, method: str = ""
) -> list[Path]:
    """The per-configuration plots of the report into `out_dir`; returns the written paths (PNG and SVG)."""
    return (
        accuracy_vs_budget(candidates, out_dir, method=method)
        + frontier(candidates, flops_table, out_dir, method=method)
        + small_vs_large(candidates, out_dir)
    )
