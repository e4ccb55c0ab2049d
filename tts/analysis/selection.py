"""Held-out selection of a winner, with bootstrap CIs that redo the selection in every resample.

Why: the best of many configurations, scored on the problems that chose it, is biased upward (most of all
towards noisy configurations: few problems, high variance), so a table that names a winner must score it on
problems it did not choose on (Snell et al. 2024 select on held-out data). Here:

  folds      problems split into F folds (2 by default) by a stable hash of their id, dealt round-robin
             within each difficulty bin (stratified), the same folds for every table.
  held-out   for each fold f, the winner is chosen on the other folds and scored on f; the figure is the
             accuracy over all problems, each scored by a configuration chosen without it (for 2 folds: choose
             on one, score on the other, both directions pooled).
  in-sample  the "oracle" figure: chosen and scored on all problems (what the tables used to report).
  CIs        percentile bootstrap over problems (stratified by bin) and, within each drawn problem, over its
             seeds (tts.analysis.bootstrap): every replicate redoes the choice, so the interval includes the
             selection's own noise. A problem's seeds share its fold.

Everything is a matrix product: with W (replicates x units) resampling counts (row 0 = the data itself; a unit
is one (problem, seed)), per-fold sums are (W * fold mask) @ y for all configurations at once, and each candidate
set is an argmax over its columns. Ties go to the earlier column: callers order columns by preference (cheapest
first).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from tts.analysis.bootstrap import resample_seeds, resample_weights


def assign_folds(problems: pd.DataFrame, folds: int, *, strata: str | None = "bin") -> pd.Series:
    """Fold (0..folds-1) of each row of `problems` (policy, problem_id[, strata]): within each (policy,
    stratum), problems ordered by crc32 of their id are dealt round-robin, continuing across strata so fold
    sizes differ by at most one overall. Answer-blind and stable: the same ids give the same folds."""
    keys = ["policy"] + ([strata] if strata else [])
    df = problems.assign(_h=problems["problem_id"].astype(str).map(lambda p: zlib.crc32(p.encode())))
    df = df.assign(_p=problems["problem_id"].astype(str))
    df = df.sort_values([*keys, "_h", "_p"], kind="stable")
    counter = df.groupby("policy", sort=False).cumcount()
    return (counter % folds).reindex(problems.index).astype("int64").rename("fold")


@dataclass
class Group:
    """One group's matrix over units (one (problem, seed) each): unit_y / unit_c (units x configs) sums of
    correctness and row counts (0 = the configuration lacks the unit), `problem` the problem index of each unit
    (ordered by problem; every problem has one at least), the fold and stratum of each problem, and the
    configuration ids in column order (the preference order for ties). `y` / `c`: per-problem sums."""

    config_ids: np.ndarray
    unit_y: np.ndarray
    unit_c: np.ndarray
    problem: np.ndarray
    fold: np.ndarray
    strata: np.ndarray

    @cached_property
    def y(self) -> np.ndarray:
        return self._per_problem(self.unit_y)

    @cached_property
    def c(self) -> np.ndarray:
        return self._per_problem(self.unit_c)

    def _per_problem(self, units: np.ndarray) -> np.ndarray:
        """Sums over each problem's units (contiguous: units are ordered by problem)."""
        return np.add.reduceat(units, np.flatnonzero(np.diff(self.problem, prepend=-1)), axis=0)

    def keep(self, problems: np.ndarray) -> Group:
        """The group on the problems of a boolean mask (with all their units)."""
        units = problems[self.problem]
        renumber = np.cumsum(problems) - 1
        return Group(
            self.config_ids,
            self.unit_y[units],
            self.unit_c[units],
            renumber[self.problem[units]],
            self.fold[problems],
            self.strata[problems],
        )

    def weights(self, replicates: int, seed: int, key: str) -> np.ndarray:
        """(1 + replicates) x units resampling counts of this group (`weights`)."""
        return weights(self.strata, replicates, seed, key, problem=self.problem)

    @classmethod
    def build(cls, values: pd.DataFrame, problems: pd.DataFrame, config_ids: Sequence[str]) -> Group:
        """values: (config_id, problem_id, y_sum, rows[, seed]); without a seed column a problem is one unit.
        problems: (problem_id, fold, stratum) of the group. Cut from the values' integer index
        (tts.analysis.cube), built once per values frame."""
        from tts.analysis.cube import Index

        return Index.of(values).group(problems, config_ids)


def weights(
    strata: np.ndarray, replicates: int, seed: int, key: str, problem: np.ndarray | None = None
) -> np.ndarray:
    """(1 + replicates) x units resampling counts, row 0 all ones (the data). Problems (their `strata`) are
    resampled within each stratum (a bin keeps its size), seeded by (seed, key, stratum); then each drawn
    problem's seeds (`problem`: the problem index of each unit; default one unit per problem, whose counts
    these are), seeded by (seed, key + "|seeds")."""
    w = np.ones((replicates + 1, len(strata)), dtype=np.float32)
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        w[1:, idx] = resample_weights(len(idx), replicates, seed, f"{key}|{s}")
    if problem is None:
        return w
    out = np.ones((replicates + 1, len(problem)), dtype=np.float32)
    out[1:] = resample_seeds(w[1:], problem, seed, f"{key}|seeds")
    return out


@dataclass
class Sums:
    """Per-fold sums over units for every replicate: Y, C of shape (folds, 1 + replicates, configs)."""

    Y: np.ndarray
    C: np.ndarray

    @classmethod
    def of(cls, group: Group, w: np.ndarray, folds: int, rows: np.ndarray | None = None) -> Sums:
        """Sums over the problems `rows` (a boolean mask over problems; default all) of each fold; w: unit
        weights (`Group.weights`)."""
        sel = np.ones(len(group.fold), bool) if rows is None else rows
        masks = [(sel & (group.fold == f))[group.problem] for f in range(folds)]
        # Row counts are multiplied once per distinct column (in a complete grid every column has the same).
        distinct: dict[bytes, int] = {}
        firsts: list[int] = []
        inverse = np.zeros(group.unit_c.shape[1], np.int64)
        for j, col in enumerate(group.unit_c.T):
            inverse[j] = distinct.setdefault(col.tobytes(), len(firsts))
            if inverse[j] == len(firsts):
                firsts.append(j)
        uc = group.unit_c[:, firsts]
        # Whole-number columns (counts, and correctness sums of cells that are not pool-derived) are multiplied
        # in float32: the weights are whole counts too, so while every sum stays below 2**24 each partial sum
        # is exact and the products equal the float64 ones bit for bit, at twice the speed.
        w = np.asarray(w)
        exact = float(np.abs(w).sum(1).max()) if w.size else 0.0
        whole = _whole_columns(group.unit_y, exact)
        count_ok = bool(len(_whole_columns(uc, exact)) == uc.shape[1])
        rest = np.setdiff1d(np.arange(group.unit_y.shape[1]), whole)
        Y, C = [], []
        for m in masks:
            w32 = w[:, m].astype(np.float32, copy=False)
            y = np.empty((w.shape[0], group.unit_y.shape[1]))
            if len(whole):
                y[:, whole] = w32 @ group.unit_y[m][:, whole].astype(np.float32)
            if len(rest):
                y[:, rest] = w32.astype(np.float64) @ group.unit_y[m][:, rest]
            Y.append(y)
            cm = w32 @ uc[m].astype(np.float32) if count_ok else w32.astype(np.float64) @ uc[m]
            C.append(cm.astype(np.float64)[:, inverse])
        return cls(np.stack(Y), np.stack(C))

    def __add__(self, other: Sums) -> Sums:
        return Sums(self.Y + other.Y, self.C + other.C)


def _whole_columns(values: np.ndarray, weight_total: float) -> np.ndarray:
    """Columns of `values` (units x columns) whose entries are whole numbers >= 0 and whose weighted sum can
    never reach 2**24 (float32's exact-integer range) with weights summing to at most `weight_total` a row."""
    if not values.size:
        return np.zeros(0, np.int64)
    ok = (values >= 0).all(0) & (values == np.floor(values)).all(0)
    ok &= values.max(0) * max(weight_total, 1.0) < 2.0**24
    return np.flatnonzero(ok)


def _acc(Y: np.ndarray, C: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(C > 0, Y / np.where(C > 0, C, 1.0), -np.inf)


def argmax_chooser(train_acc: np.ndarray) -> np.ndarray:
    """Index of the most accurate column per row (the first on ties); -1 when no column has data."""
    pick = np.argmax(train_acc, axis=-1)
    return np.where(np.isfinite(np.take_along_axis(train_acc, pick[..., None], -1)[..., 0]), pick, -1)


Chooser = Callable[[np.ndarray], np.ndarray]


@dataclass
class Choice:
    """A selection over candidate columns: per replicate (row 0 = the data), the held-out and in-sample
    accuracy, the all-problem pick and each fold's pick (column indices into the group, -1 = none)."""

    heldout: np.ndarray  # (1 + R,)
    in_sample: np.ndarray  # (1 + R,)
    pick: np.ndarray  # (1 + R,) chosen on all problems
    fold_picks: np.ndarray  # (folds, 1 + R) chosen on the other folds

    def point(self) -> tuple[float, float]:
        return float(self.heldout[0]), float(self.in_sample[0])


def choose(sums: Sums, columns: np.ndarray, chooser: Chooser = argmax_chooser) -> Choice:
    """Held-out and in-sample selection among `columns` (indices into the group, in preference order)."""
    cols = np.asarray(columns, int)
    Y, C = sums.Y[:, :, cols], sums.C[:, :, cols]
    tY, tC = Y.sum(0), C.sum(0)
    pick = chooser(_acc(tY, tC))
    folds = Y.shape[0]
    num, den = np.zeros(Y.shape[1]), np.zeros(Y.shape[1])
    fold_picks = []
    for f in range(folds):
        p = chooser(_acc(tY - Y[f], tC - C[f]))
        fold_picks.append(np.where(p >= 0, cols[np.maximum(p, 0)], -1))
        ok = p >= 0
        sel = np.maximum(p, 0)
        num += np.where(ok, np.take_along_axis(Y[f], sel[:, None], 1)[:, 0], np.nan)
        den += np.where(ok, np.take_along_axis(C[f], sel[:, None], 1)[:, 0], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        heldout = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        ins = np.take_along_axis(_acc(tY, tC), np.maximum(pick, 0)[:, None], 1)[:, 0]
    ins = np.where((pick >= 0) & np.isfinite(ins), ins, np.nan)
    return Choice(heldout, ins, np.where(pick >= 0, cols[np.maximum(pick, 0)], -1), np.stack(fold_picks))


def _chains(masks: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive rows [start, stop) of `masks` in which every row contains the one before (a budget
    ladder: each larger budget admits what the smaller one did)."""
    grows = (masks[1:] | ~masks[:-1]).all(1) if len(masks) > 1 else np.zeros(0, bool)
    starts = [0, *(np.flatnonzero(~grows) + 1).tolist()]
    return list(zip(starts, [*starts[1:], len(masks)], strict=True))


def _chain_picks(acc: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """argmax over each row's eligible columns of `acc` ((1 + R) x K), first column on ties, -1 when none is
    finite, for a chain of nested masks (L x K): columns are visited once, in blocks by the row that admits
    them, and each row's pick is the previous row's or its own block's best (O(K) per replicate, not O(L K))."""
    nrows, k = masks.shape
    entry = np.where(masks.any(0), masks.argmax(0), nrows)  # the first row that admits each column
    cols = np.flatnonzero(entry < nrows)
    picks = np.full((nrows, acc.shape[0]), -1, np.int64)
    if not len(cols):
        return picks
    cols = cols[np.lexsort((cols, entry[cols]))]  # by admitting row, then column
    rows_of = entry[cols]
    starts = np.flatnonzero(np.diff(rows_of, prepend=-1))
    sub = acc[:, cols]
    block_max = np.maximum.reduceat(sub, starts, axis=1)
    sizes = np.diff(np.append(starts, len(cols)))
    at_max = sub == np.repeat(block_max, sizes, axis=1)
    block_idx = np.minimum.reduceat(np.where(at_max, cols[None, :], k), starts, axis=1)
    best_val = np.full(acc.shape[0], -np.inf)
    best_idx = np.full(acc.shape[0], k, np.int64)
    block = 0
    for r in range(nrows):
        if block < len(starts) and rows_of[starts[block]] == r:
            v, i = block_max[:, block], block_idx[:, block]
            better = (v > best_val) | ((v == best_val) & (i < best_idx))
            best_val = np.where(better, v, best_val)
            best_idx = np.where(better, i, best_idx)
            block += 1
        picks[r] = np.where(np.isfinite(best_val), best_idx, -1)
    return picks


def choose_masks(sums: Sums, masks: np.ndarray) -> Choice:
    """`choose(sums, flatnonzero(mask))` (argmax chooser) for every row of `masks` (M x configs, boolean) at
    once: each fold's training accuracies are computed once, and the choices of each run of nested masks (a
    budget ladder, `_chains`) come from one pass over its columns. Returns a Choice whose arrays carry a
    leading M axis (picks as column indices into the group; rows of an empty mask pick -1 and score NaN)."""
    masks = np.asarray(masks, bool)
    folds = sums.Y.shape[0]
    tY, tC = sums.Y.sum(0), sums.C.sum(0)
    full = _acc(tY, tC)
    chains = _chains(masks)

    def pick_of(acc: np.ndarray) -> np.ndarray:  # (M, 1 + R): first most accurate eligible column, -1 if none
        return np.concatenate([_chain_picks(acc, masks[a:b]) for a, b in chains])

    pick = pick_of(full)
    num = np.zeros(pick.shape)
    den = np.zeros(pick.shape)
    fold_picks = []
    for f in range(folds):
        p = pick_of(_acc(tY - sums.Y[f], tC - sums.C[f]))
        fold_picks.append(p)
        ok, sel = p >= 0, np.maximum(p, 0)
        num += np.where(ok, np.take_along_axis(sums.Y[f][None], sel[..., None], -1)[..., 0], np.nan)
        den += np.where(ok, np.take_along_axis(sums.C[f][None], sel[..., None], -1)[..., 0], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        heldout = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        ins = np.take_along_axis(full[None], np.maximum(pick, 0)[..., None], -1)[..., 0]
    ins = np.where((pick >= 0) & np.isfinite(ins), ins, np.nan)
    return Choice(heldout, ins, pick, np.stack(fold_picks, axis=1))


def intervals(reps: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """`interval` of every row of `reps` (rows x (1 + R)): one vectorised quantile over the rows whose
    replicates are all finite, the rest row by row (the same numbers as `interval`)."""
    reps = np.asarray(reps, float)
    lo, hi = np.full(len(reps), np.nan), np.full(len(reps), np.nan)
    finite = np.isfinite(reps[:, 1:]).all(1)
    if finite.any() and reps.shape[1] > 1:
        q = np.quantile(reps[finite, 1:], [(1 - ci) / 2, 1 - (1 - ci) / 2], axis=1)
        lo[finite], hi[finite] = q[0], q[1]
    for i in np.flatnonzero(~finite):
        lo[i], hi[i] = interval(reps[i], ci)
    return lo, hi


def interval(reps: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval of the bootstrap replicates (row 0, the data, left out); NaN when none is finite."""
    r = np.asarray(reps, float)[1:]
    r = r[np.isfinite(r)]
    if not len(r):
        return np.nan, np.nan
    lo, hi = np.quantile(r, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(lo), float(hi)


def fold_sizes(group: Group, folds: int) -> int:
    """The fewest problems any (stratum, fold) holds: the evidence the smallest selection rests on."""
    sizes = [
        int(((group.strata == s) & (group.fold == f)).sum())
        for s in np.unique(group.strata)
        for f in range(folds)
    ]
    return min(sizes) if sizes else 0
