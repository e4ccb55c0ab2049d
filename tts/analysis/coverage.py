"""Coverage (pass@k) vs the number of samples k, per policy and difficulty bin, with Brown et al.'s fit.

Why: repeated sampling (Brown et al. 2024, "Large Language Monkeys") asks how the fraction of problems solved by
ANY of k samples grows with k when a verifier (unit tests) can pick the right one. Every k <= N_max comes from
the one stored pool with Chen et al.'s unbiased estimator (`tts.strategies.pool.pass_at_k`), averaged over the
problems of a bin. Brown et al. model the curve as an exponentiated power law

    log c(k) = a * k^b        (a < 0, b < 0: c rises towards 1 as k grows)

fitted (numpy only) by least squares on the linearisation  log(-log c) = log(-a) + b * log k  over the points
with 0 < c < 1, refined by Levenberg-Marquardt on the coverage error itself (the linearisation over-weights
points near c = 1). Each fit reports a, b, R^2 and RMSE (coverage space) and the points used.

    python -m tts.analysis.coverage results/humaneval_repeated_sampling [--method absolute] [--out DIR]
writes coverage_curves.csv, coverage_fits.csv / .md and coverage.png / .svg under DIR (default
<results>/analysis/coverage).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tts.analysis.keys import ALL_BIN
from tts.analysis.plots import MARKERS, OKABE_ITO, _bin_title, _bins, _panels, _save
from tts.strategies.pool import pass_at_k

CURVE_COLUMNS = ["policy", "dataset", "bin", "k", "coverage", "problems"]


@dataclass(frozen=True)
class PowerLawFit:
    """log c(k) = a * k^b fitted on `points` points; NaN parameters when fewer than two are usable."""

    a: float
    b: float
    r2: float
    rmse: float
    points: int

    def predict(self, k: np.ndarray | Sequence[float] | float) -> np.ndarray:
        return np.exp(self.a * np.power(np.asarray(k, dtype=float), self.b))


def fit_power_law(
    k: Sequence[float], coverage: Sequence[float], *, eps: float = 1e-12, refine: bool = True
) -> PowerLawFit:
    """Fit log c = a k^b: ordinary least squares on log(-log c) = log(-a) + b log k over the points with
    eps < c < 1 - eps, then (refine) Levenberg-Marquardt on the squared coverage error over every point. The
    linearisation alone over-weights points near c = 1 (where log(-log c) runs off to -inf), which bends the fit
    of saturating curves; the refinement fits the curve that is plotted. R^2 and RMSE are in coverage space."""
    k_arr = np.asarray(k, dtype=float)
    c_arr = np.asarray(coverage, dtype=float)
    if k_arr.shape != c_arr.shape:
        raise ValueError(f"k and coverage: {k_arr.shape} vs {c_arr.shape}; give one coverage per k")
    if np.any(k_arr <= 0):
        raise ValueError("k: every budget must be positive")
    finite = np.isfinite(c_arr)
    inside = finite & (c_arr > eps) & (c_arr < 1 - eps)
    if inside.sum() < 2 or np.unique(k_arr[inside]).size < 2:
        return PowerLawFit(math.nan, math.nan, math.nan, math.nan, int(inside.sum()))
    x, y = np.log(k_arr[inside]), np.log(-np.log(c_arr[inside]))
    design = np.stack([np.ones_like(x), x], axis=1)
    (intercept, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    a, b = -math.exp(intercept), float(b)
    ks, cs = k_arr[finite], c_arr[finite]
    if refine:
        a, b = _levenberg_marquardt(ks, cs, a, b)
    pred = np.exp(a * ks**b)
    sse = float(((pred - cs) ** 2).sum())
    total = float(((cs - cs.mean()) ** 2).sum())
    r2 = 1.0 - sse / total if total > 0 else 1.0
    return PowerLawFit(a, b, r2, math.sqrt(sse / cs.size), int(finite.sum() if refine else inside.sum()))


def _levenberg_marquardt(
    k: np.ndarray, c: np.ndarray, a: float, b: float, iters: int = 200
) -> tuple[float, float]:
    """Minimise sum (exp(a k^b) - c)^2 over (a, b) from the given start."""
    log_k = np.log(k)

    def sse(a_: float, b_: float) -> float:
        return float(((np.exp(a_ * k**b_) - c) ** 2).sum())

    damping, current = 1e-3, sse(a, b)
    for _ in range(iters):
        kb = k**b
        pred = np.exp(a * kb)
        jac = np.stack([pred * kb, pred * a * kb * log_k], axis=1)
        grad = jac.T @ (pred - c)
        hess = jac.T @ jac
        try:
            step = np.linalg.solve(hess + damping * np.diag(np.diag(hess) + 1e-12), -grad)
        except np.linalg.LinAlgError:
            break
        trial = sse(a + step[0], b + step[1])
        if np.isfinite(trial) and trial < current:
            a, b, damping = a + float(step[0]), b + float(step[1]), damping / 3
            if current - trial < 1e-15 * max(current, 1e-30):
                break
            current = trial
        else:
            damping *= 4
            if damping > 1e12:
                break
    return a, b


def k_grid(n_max: int, points: int = 64) -> list[int]:
    """Every k up to `points`, else about `points` log-spaced budgets from 1 to n_max (both ends included)."""
    if n_max < 1:
        raise ValueError(f"n_max: invalid value {n_max!r}; must be >= 1")
    if n_max <= points:
        return list(range(1, n_max + 1))
    return sorted({int(round(v)) for v in np.geomspace(1, n_max, points)} | {n_max})


def problem_counts(samples: pd.DataFrame) -> pd.DataFrame:
    """Per (policy, dataset, problem_id, seed): n samples and c correct (one pool each; distinct samples only)."""
    need = ["policy", "problem_id", "correct"]
    missing = [c for c in need if c not in samples.columns]
    if missing:
        raise KeyError(
            f"coverage: samples lack column(s) {missing}; expected tts.results_schema.SAMPLE_COLUMNS"
        )
    df = samples.copy()
    for col, default in (("dataset", ""), ("seed", 0)):
        if col not in df.columns:
            df[col] = default
    if "sample_idx" in df.columns:
        df = df.drop_duplicates(["policy", "dataset", "problem_id", "seed", "sample_idx"])
    df["correct"] = df["correct"].fillna(False).astype(bool)
    grouped = df.groupby(["policy", "dataset", "problem_id", "seed"], sort=True)["correct"]
    return grouped.agg(n="size", c="sum").reset_index()


def coverage_curves(
    samples: pd.DataFrame, bins: pd.DataFrame | None = None, *, ks: Sequence[int] | None = None
) -> pd.DataFrame:
    """Mean pass@k over problems, per (policy, dataset, bin), for every k in `ks` (default: `k_grid(N_max)`).

    samples: sample rows (policy, problem_id, correct; dataset, seed, sample_idx when present).
    bins: DIFFICULTY_COLUMNS rows of ONE method (policy, problem_id, bin); every problem also counts in "all".
    A problem with several seeds contributes the mean over its pools; a pool smaller than k does not count at k.
    """
    counts = problem_counts(samples)
    labelled = [counts.assign(bin=ALL_BIN)]
    if bins is not None and len(bins):
        if bins.duplicated(["policy", "problem_id"]).any():
            raise ValueError("bins: several bins for one (policy, problem_id); pass the rows of one method")
        labelled.append(counts.merge(bins[["policy", "problem_id", "bin"]].astype({"bin": str}), how="inner"))
    counts = pd.concat(labelled, ignore_index=True)
    grid = list(ks) if ks is not None else k_grid(int(counts["n"].max()))
    rows = []
    for (policy, dataset, label), grp in counts.groupby(["policy", "dataset", "bin"], sort=True):
        for k in grid:
            pools = grp[grp["n"] >= k]
            if pools.empty:
                continue
            per_pool = [
                pass_at_k(int(n), int(c), int(k)) for n, c in zip(pools["n"], pools["c"], strict=True)
            ]
            per_problem = pools.assign(p=per_pool).groupby("problem_id")["p"].mean()
            rows.append((policy, dataset, label, int(k), float(per_problem.mean()), int(per_problem.size)))
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def fit_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """One power-law fit per (policy, dataset, bin), with the curve's coverage at its smallest and largest k."""
    rows = []
    for (policy, dataset, label), grp in curves.groupby(["policy", "dataset", "bin"], sort=True):
        grp = grp.sort_values("k")
        fit = fit_power_law(grp["k"], grp["coverage"])
        first, last = grp.iloc[0], grp.iloc[-1]
        rows.append(
            {
                "policy": policy,
                "dataset": dataset,
                "bin": label,
                "problems": int(grp["problems"].max()),
                "k_max": int(last["k"]),
                "pass_at_1": float(first["coverage"]) if int(first["k"]) == 1 else math.nan,
                "coverage_at_k_max": float(last["coverage"]),
                **asdict(fit),
            }
        )
    return pd.DataFrame(rows)


def plot_coverage(
    curves: pd.DataFrame, fits: pd.DataFrame, out_dir: str | Path, *, method: str = ""
) -> list[Path]:
    """coverage.png/.svg: one panel per bin, coverage vs k (log axis) per policy/dataset, dashed power-law fits."""
    if curves.empty:
        return []
    curves = curves.assign(bin=curves["bin"].astype(str))
    labels = _bins(curves)
    fig, axes = _panels(len(labels), width=4.0, height=3.4)
    series = sorted({(p, d) for p, d in zip(curves["policy"], curves["dataset"], strict=True)})
    for ax, label in zip(axes, labels, strict=True):
        for i, (policy, dataset) in enumerate(series):
            grp = curves[
                (curves["bin"] == label) & (curves["policy"] == policy) & (curves["dataset"] == dataset)
            ]
            if grp.empty:
                continue
            color, marker = OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]
            grp = grp.sort_values("k")
            name = f"{policy} ({dataset})" if dataset else str(policy)
            ax.plot(grp["k"], grp["coverage"], marker=marker, color=color, ms=4, lw=1.4, label=name)
            fit = fits[(fits["bin"] == label) & (fits["policy"] == policy) & (fits["dataset"] == dataset)]
            if len(fit) and np.isfinite(fit["a"].iloc[0]):
                f = fit.iloc[0]
                ks = np.geomspace(1, grp["k"].max(), 100)
                model = PowerLawFit(f["a"], f["b"], f["r2"], f["rmse"], int(f["points"]))
                ax.plot(
                    ks,
                    model.predict(ks),
                    ls="--",
                    color=color,
                    lw=1,
                    label=f"fit a={f['a']:.2f}, b={f['b']:.2f}",
                )
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("samples k")
        ax.set_ylabel("coverage (pass@k)")
        n = int(curves.loc[curves["bin"] == label, "problems"].max())
        ax.set_title(f"{_bin_title(method or 'difficulty', label)} ({n} problems)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Repeated sampling: coverage vs samples, with log c = a k^b fits", fontsize=10)
    return _save(fig, Path(out_dir), "coverage")


# ------------------------------------------------------------------------------------------- a results folder
def coverage_report(
    results_dir: str | Path, *, method: str | None = None, out_dir: str | Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    """Curves, fits and plot of a results folder's sample pools; bins from its difficulty table (`method`,
    default: the first of absolute / oracle_quantile / dataset_level it has; "all" always)."""
    from tts.analysis.io import ensure_difficulty, read_samples

    samples = read_samples(results_dir)
    if samples is None or samples.empty:
        raise FileNotFoundError(
            f"{results_dir}: no sample pools; coverage needs a sweep with pool strategies"
        )
    difficulty = ensure_difficulty(results_dir)
    have = list(dict.fromkeys(difficulty["method"])) if len(difficulty) else []
    if method is None:
        method = next((m for m in ("absolute", "oracle_quantile", "dataset_level") if m in have), None)
    elif method not in have:
        raise ValueError(
            f"method: {method!r} not in the difficulty table of {results_dir}; available: {have}"
        )
    bins = difficulty[difficulty["method"] == method] if method else None
    curves = coverage_curves(samples, bins)
    fits = fit_curves(curves)
    out = Path(out_dir) if out_dir else Path(results_dir) / "analysis" / "coverage"
    out.mkdir(parents=True, exist_ok=True)
    curves.to_csv(out / "coverage_curves.csv", index=False)
    fits.to_csv(out / "coverage_fits.csv", index=False)
    (out / "coverage_fits.md").write_text(fits_markdown(fits, method or ""))
    return (
        curves,
        fits,
        [
            out / "coverage_curves.csv",
            out / "coverage_fits.csv",
            *plot_coverage(curves, fits, out, method=method or ""),
        ],
    )


def fits_markdown(fits: pd.DataFrame, method: str = "") -> str:
    """The fit table as Markdown (for reports)."""
    head = "| policy | dataset | bin | problems | pass@1 | coverage@k_max (k_max) | a | b | R^2 | RMSE |"
    lines = [f"Coverage fits, log c(k) = a * k^b (bins: {method or 'none'})", "", head, "|" + "---|" * 10]
    for r in fits.itertuples():
        lines.append(
            f"| {r.policy} | {r.dataset} | {r.bin} | {r.problems} | {r.pass_at_1:.3f} | "
            f"{r.coverage_at_k_max:.3f} ({r.k_max}) | {r.a:.3f} | {r.b:.3f} | {r.r2:.3f} | {r.rmse:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tts.analysis.coverage", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "results_dir", help="a sweep's results folder, e.g. results/humaneval_repeated_sampling"
    )
    parser.add_argument(
        "--method", default=None, help="difficulty method for the bins (default: first available)"
    )
    parser.add_argument("--out", default=None, help="output folder (default: <results>/analysis/coverage)")
    args = parser.parse_args(argv)
    _, _, paths = coverage_report(args.results_dir, method=args.method, out_dir=args.out)
    print((paths[0].parent / "coverage_fits.md").read_text())
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
