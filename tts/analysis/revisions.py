"""Sequential vs parallel test-time compute (Snell et al. 2024, Fig. 7-8): per difficulty bin and budget N, the
accuracy of each split of N into P parallel chains of L = N / P sequential attempts, and the ratio L / P that
wins held-out.

Which configurations: those of strategies whose entry has the `sequential` trait (tts.strategies.entry). P is
the configuration's `parallel` strategy field (`parallel` column of the summary), 1 when the strategy has none
(one chain of N attempts). Configurations that differ in anything but P (PRM, final selection, history, ...)
are separate lines: `setting` is their hyperparameter label without `parallel`.

ratio_table     one row per (policy, PRM, dataset, bin, N, setting, P): accuracy with a bootstrap CI over
                problems (no selection: each split's own figure), and `chosen` marking the ratio picked
                held-out among the splits of that N (chosen on other folds, as every winner in tts.analysis).
ratio_winners   one row per (policy, PRM, dataset, bin, N, setting): the held-out chosen ratio, its held-out
                accuracy [CI] beside the in-sample (oracle) figure, and its held-out gain over P = N (all
                parallel) within the same setting, with a CI: Snell's compute-optimal ratio per bin.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from tts.analysis.selection import choose, interval
from tts.analysis.settings import AnalysisConfig
from tts.analysis.source import AnalysisData
from tts.analysis.tables import config_groups, sort_rows

KEY = ["policy", "prm", "dataset", "bin"]
_PARALLEL = re.compile(r"(^|, )parallel=[^,]*")


def sequential(s: pd.DataFrame, data: AnalysisData) -> pd.DataFrame:
    """The candidates of sequential strategies (`data.trait`) with `parallel`, `attempts` (L) and `ratio`
    (L / P) columns."""
    names = [n for n in s["strategy"].dropna().unique() if data.trait(n, "sequential")]
    seq = s[s["strategy"].isin(names)].copy()
    if seq.empty:
        return seq
    p = pd.to_numeric(seq["parallel"], errors="coerce") if "parallel" in seq.columns else np.nan
    seq["parallel"] = pd.Series(p, index=seq.index).fillna(1.0)
    seq["attempts"] = seq["n"].astype(float) / seq["parallel"]
    seq["ratio"] = seq["attempts"] / seq["parallel"]
    seq["setting"] = [
        f"{strategy}: " + _PARALLEL.sub("", h).strip(", ")
        for strategy, h in zip(seq["strategy"], seq["hyperparams"], strict=True)
    ]
    return seq


def ratio_tables(
    s: pd.DataFrame, data: AnalysisData, cfg: AnalysisConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ratio_table, ratio_winners) of the candidates `s` (tts.analysis.tables.candidates); empty frames when
    the sweep has no sequential configuration."""
    seq = sequential(s, data)
    if seq.empty:
        return pd.DataFrame(), pd.DataFrame()
    lines, winners = [], []
    for key, cand, group, sums in config_groups(seq, data, cfg, ["n", "setting", "parallel"]):
        head = dict(zip(KEY, key, strict=True))
        for (n, setting), idx in cand.groupby(["n", "setting"], sort=True).indices.items():
            idx = np.asarray(idx)
            ch = choose(sums, idx)
            if ch.pick[0] < 0:
                continue
            for j in idx:
                own = choose(sums, np.array([j]))
                lo, hi = interval(own.in_sample, cfg.ci)
                row = cand.iloc[int(j)]
                lines.append(
                    head
                    | {
                        "n": n,
                        "setting": setting,
                        "parallel": row["parallel"],
                        "attempts": row["attempts"],
                        "ratio": row["ratio"],
                        "accuracy": own.in_sample[0],
                        "ci_low": lo,
                        "ci_high": hi,
                        "problems": int((group.c[:, j] > 0).sum()),
                        "generations": row["generations"],
                        "chosen": bool(j == ch.pick[0]),
                        "config_id": row["config_id"],
                    }
                )
            win = cand.iloc[int(ch.pick[0])]
            lo, hi = interval(ch.heldout, cfg.ci)
            flat = idx[np.isclose(cand["parallel"].to_numpy(float)[idx], float(n))]
            gain = ch.heldout - choose(sums, flat).heldout if len(flat) else np.full_like(ch.heldout, np.nan)
            glo, ghi = interval(gain, cfg.ci)
            winners.append(
                head
                | {
                    "n": n,
                    "setting": setting,
                    "parallel": win["parallel"],
                    "attempts": win["attempts"],
                    "ratio": win["ratio"],
                    "accuracy": ch.heldout[0],
                    "ci_low": lo,
                    "ci_high": hi,
                    "in_sample": ch.in_sample[0],
                    "gain": gain[0],
                    "gain_low": glo,
                    "gain_high": ghi,
                    "fold_agree": bool((ch.fold_picks[:, 0] == ch.pick[0]).all()),
                    "splits": len(idx),
                    "problems": len(group.fold),
                }
            )
    table = sort_rows(pd.DataFrame(lines), ["n", "setting", "ratio"])
    return table, sort_rows(pd.DataFrame(winners), ["n", "setting"])


def report_lines(table: pd.DataFrame, winners: pd.DataFrame, ci: float) -> list[str]:
    """The report.md section: the held-out ratio per bin and N, then every split's accuracy [CI]."""
    from tts.analysis.text import ci_text, markdown

    pct = int(round(ci * 100))
    out = [
        "## Sequential revisions vs parallel samples (Snell et al. Fig. 7-8)",
        "",
    ]
    if table.empty:
        return out + ["_No sequential configurations in this sweep._", ""]

    def texts(df: pd.DataFrame) -> pd.DataFrame:
        acc = zip(df["accuracy"], df["ci_low"], df["ci_high"], strict=True)
        return df.assign(
            acc_ci=[ci_text(*v) for v in acc],
            split=[f"{p:g} x {a:g}" for p, a in zip(df["parallel"], df["attempts"], strict=True)],
        )

    gain = zip(winners["gain"], winners["gain_low"], winners["gain_high"], strict=True)
    w = texts(winners).assign(gain_ci=[ci_text(*v, sign=True) for v in gain])
    t = texts(table).assign(pick=np.where(table["chosen"], "held-out pick", ""))
    out += [
        "N generations split into P parallel chains of L = N / P attempts, each attempt seeing the earlier ones "
        "of its chain; ratio = L / P (sequential/parallel). The ratio is chosen held-out per bin and N (on other "
        f"folds, as every winner here); its gain is over P = N (all parallel) in the same setting. [CI] = {pct}% "
        "bootstrap over problems and, within each drawn problem, its seeds.",
        "",
        markdown(
            w,
            {
                "policy": "policy",
                "prm": "PRM",
                "bin": "bin",
                "n": "N",
                "setting": "setting",
                "split": "chosen P x L",
                "ratio": "ratio L/P",
                "acc_ci": "held-out accuracy [CI]",
                "in_sample": "in-sample (oracle)",
                "gain_ci": "vs all parallel (held-out) [CI]",
                "problems": "problems",
            },
        ),
        "",
        "Every split (its own accuracy, no selection):",
        "",
        markdown(
            t,
            {
                "policy": "policy",
                "prm": "PRM",
                "bin": "bin",
                "n": "N",
                "setting": "setting",
                "split": "P x L",
                "ratio": "ratio L/P",
                "acc_ci": "accuracy [CI]",
                "problems": "problems",
                "pick": "",
            },
        ),
        "",
    ]
    return out
