"""Per-unit value matrices of many configurations, cut from one integer-coded index of the per-problem values.

Why: the held-out tables need, per (policy, PRM, dataset, bin), a (units x configurations) matrix of sums
(tts.analysis.selection.Group; a unit is one (problem, seed)). Building each from the values DataFrame with
pandas (`isin` over string ids, a MultiIndex per group) costs a full pass over every value per group: at 10M
values and a hundred groups per table that pass was most of the time. Here the values are coded once (config,
problem and seed as integers, rows ordered by configuration), so a group's matrix is a gather of its
configurations' rows, a lookup of its problems and one bincount, with no string work; the same group asked for
again (the generation-, FLOPs- and tokens-matched tables share their groups) is served from a cache, and so are
bootstrap weights (they depend only on the group's key and unit layout, not on its configurations).

`Index.of(values)` is cached per values frame (keep the frame alive: `AnalysisData` memoises `values(None)`);
`Index.group(problems, config_ids)` equals `Group.build(values, problems, config_ids)` exactly (same units, same
order, same sums).
"""

from __future__ import annotations

import hashlib
import os
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tts.analysis.selection import Group, Sums

_CACHE: dict[int, tuple[weakref.ref, Index]] = {}
MEMO_VERSION = 1  # bump when what a stored sum means changes


def _codes(col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy(np.int64), pd.Index(col.cat.categories.astype(str))
    codes, uniques = pd.factorize(col.astype(str), sort=False)
    return codes.astype(np.int64), pd.Index(uniques)


class Index:
    """The values (config_id, problem_id, seed, y_sum, rows) coded as integers, rows grouped by configuration."""

    def __init__(self, values: pd.DataFrame) -> None:
        cfg, configs = _codes(values["config_id"])
        prob, problems = _codes(values["problem_id"])
        seeds = (
            values["seed"].to_numpy(np.int64) if "seed" in values.columns else np.zeros(len(values), np.int64)
        )
        seed, found = pd.factorize(seeds)  # hashing, not a sort of every row; then codes in seed order
        rank = np.empty(len(found), np.int64)
        rank[np.argsort(found, kind="stable")] = np.arange(len(found))
        self._setup(
            configs,
            problems,
            np.sort(found),
            cfg,
            prob,
            rank[seed],
            values["y_sum"].to_numpy(float),
            values["rows"].to_numpy(float),
            ordered=False,
        )

    @classmethod
    def from_codes(
        cls,
        configs: np.ndarray,
        problems: pd.Index,
        seed_values: np.ndarray,
        cfg: np.ndarray,
        prob: np.ndarray,
        seed: np.ndarray,
        y: np.ndarray,
    ) -> Index:
        """The index of rows given as codes (tts.analysis.summary): `configs` and `problems` sorted ids,
        `seed_values` sorted, one entry per row (repeats of a (config, problem, seed) are summed into its
        unit). Its frame is the per (config, problem, seed) sums ordered by (config_id, problem_id, seed)."""
        index = cls.__new__(cls)
        index._setup(configs, problems, seed_values, cfg, prob, seed, y, None, ordered=True)
        return index

    def _setup(
        self,
        configs: pd.Index | np.ndarray,
        problems: pd.Index,
        seed_values: np.ndarray,
        cfg: np.ndarray,
        prob: np.ndarray,
        seed: np.ndarray,
        y: np.ndarray,
        c: np.ndarray | None,
        *,
        ordered: bool,
    ) -> None:
        self.configs = pd.Index(configs)
        self.problems = pd.Index(problems)
        self.seed_values = np.asarray(seed_values)
        # ordered: ids sorted, and the frame is read in (config, problem, seed) order (problems_of)
        self.ordered = ordered
        sorted_already = bool(len(cfg) < 2 or (np.diff(cfg) >= 0).all())  # the summary is stored by config
        order = np.arange(len(cfg)) if sorted_already else np.argsort(cfg, kind="stable")
        self.order = order  # original row of each stored row
        self.prob = np.asarray(prob, np.int64)[order]
        self.seed = np.asarray(seed, np.int64)[order]
        self.y = np.asarray(y, float)[order]
        self.c = np.ones(len(order)) if c is None else np.asarray(c, float)[order]
        counts = np.bincount(np.asarray(cfg, np.int64), minlength=len(self.configs))
        self.start = np.concatenate([[0], np.cumsum(counts)])
        self._groups: dict[tuple, Group] = {}
        self.weights_cache: dict[tuple, np.ndarray] = {}
        self.memo_dir: Path | None = None
        self.config_prints: pd.Series | None = None
        self.memo_used: set[str] = set()

    def persist(self, folder: Path, config_prints: pd.Series) -> None:
        """Keep bootstrap sums on disk in `folder`, keyed by the content they come from: the configurations'
        `config_prints` (config_id -> identity of its cell files), the problems' layout and the bootstrap
        settings. A later analysis of the same folder then draws weights and multiplies only for the groups a
        new cell changed (a running sweep watched with `tts analyze --watch`)."""
        self.memo_dir, self.config_prints = folder, config_prints

    def memo_path(self, label: str, ids: Sequence[str], problems: pd.DataFrame, extra: tuple) -> Path | None:
        """Where the sums of (label, configurations in column order, problems, settings) are kept; None when
        not persisted (or a configuration has no identity)."""
        if self.memo_dir is None or self.config_prints is None:
            return None
        prints = self.config_prints.reindex([str(i) for i in ids])
        if prints.isna().any():
            return None
        h = hashlib.sha1(repr((label, MEMO_VERSION, extra)).encode())
        h.update("\x00".join(f"{i}={v}" for i, v in prints.items()).encode())
        for part in self._key(problems, np.zeros(0, dtype=object))[:3]:
            h.update(part if isinstance(part, bytes) else str(part).encode())
        return self.memo_dir / f"{label}-{h.hexdigest()[:24]}.npz"

    def selection_path(
        self,
        problems: pd.DataFrame,
        config_ids: Sequence[str],
        folds: int,
        replicates: int,
        seed: int,
        key: str,
    ) -> Path | None:
        """Where `selection`'s sums of these arguments are kept (`memo_path`)."""
        canon = np.sort(np.asarray([str(i) for i in config_ids], dtype=object))
        return self.memo_path("sel", canon, problems, (folds, replicates, seed, key))

    def memo(self, path: Path | None, compute: Callable[[], list[Sums]]) -> list[Sums]:
        """`compute()` (a list of Sums), read from `path` when an earlier analysis stored it, else stored there."""
        from tts.analysis.selection import Sums

        if path is None:
            return compute()
        self.memo_used.add(path.name)
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    return [Sums(z[f"Y{i}"], z[f"C{i}"]) for i in range(len(z.files) // 2)]
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)
        out = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **{k: v for i, x in enumerate(out) for k, v in ((f"Y{i}", x.Y), (f"C{i}", x.C))})
        tmp.replace(path)
        return out

    def prune_memo(self) -> None:
        """Delete the stored sums no analysis of this index read or wrote (groups a new cell changed)."""
        if self.memo_dir is None or not self.memo_dir.is_dir():
            return
        for f in self.memo_dir.glob("*.npz"):
            if f.name not in self.memo_used:
                f.unlink(missing_ok=True)

    def frame(self) -> pd.DataFrame:
        """The values frame (config_id, problem_id, seed, y_sum, rows): per (config, problem, seed) sums,
        ordered by the codes (by id for an index `from_codes`)."""
        cfg = np.repeat(np.arange(len(self.configs)), np.diff(self.start))
        ns, npb = max(len(self.seed_values), 1), max(len(self.problems), 1)
        key = (cfg * npb + self.prob) * ns + self.seed
        uniq, inverse = np.unique(key, return_inverse=True)
        seeds = self.seed_values[uniq % ns] if len(self.seed_values) else np.zeros(len(uniq), np.int64)
        return pd.DataFrame(
            {
                "config_id": pd.Categorical.from_codes(
                    uniq // (npb * ns), categories=self.configs.astype(str)
                ),
                "problem_id": pd.Categorical.from_codes(
                    (uniq // ns) % npb, categories=self.problems.astype(str)
                ),
                "seed": seeds,
                "y_sum": np.bincount(inverse, weights=self.y, minlength=len(uniq)),
                "rows": np.bincount(inverse, weights=self.c, minlength=len(uniq)).astype(np.int64),
            }
        )

    @classmethod
    def of(cls, values: pd.DataFrame) -> Index:
        """The index of `values`, built once per frame while it lives."""
        hit = _CACHE.get(id(values))
        if hit is not None and hit[0]() is values:
            return hit[1]
        index = cls(values)
        key = id(values)
        _CACHE[key] = (weakref.ref(values, lambda _: _CACHE.pop(key, None)), index)
        return index

    def _rows(self, config_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(stored rows of the configurations, column of each) for the known ids, in the order given."""
        codes = self.configs.get_indexer(np.asarray([str(i) for i in config_ids], dtype=object))
        known = np.flatnonzero(codes >= 0)
        spans = [np.arange(self.start[codes[j]], self.start[codes[j] + 1]) for j in known]
        if not spans:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(spans), np.repeat(known, [len(x) for x in spans])

    def problems_of(self, config_ids: Sequence[str]) -> np.ndarray:
        """Distinct problem ids of the configurations' values, in order of first appearance in the frame."""
        rows, col = self._rows(config_ids)
        if self.ordered:  # the frame's order: by configuration id, then problem id
            codes = self.configs.get_indexer(np.asarray([str(i) for i in config_ids], dtype=object))
            key = codes[col].astype(np.int64) * max(len(self.problems), 1) + self.prob[rows]
            first = np.full(len(self.problems), np.iinfo(np.int64).max)
            np.minimum.at(first, self.prob[rows], key)
            found = np.flatnonzero(first < np.iinfo(np.int64).max)
            return np.asarray(self.problems)[found[np.argsort(first[found], kind="stable")]]
        rows = rows[np.argsort(self.order[rows], kind="stable")]
        return np.asarray(self.problems)[pd.unique(self.prob[rows])]

    def selection(
        self,
        problems: pd.DataFrame,
        config_ids: Sequence[str],
        *,
        folds: int,
        replicates: int,
        seed: int,
        key: str,
    ) -> tuple[Group, Sums] | None:
        """The group of `problems` x `config_ids` on the problems any of them has (None: none has one), and its
        per-fold bootstrap sums (weights seeded by `key`, tts.analysis.selection.weights). Computed once per
        (problems, configuration set, key), in sorted column order, and permuted to the order asked for."""
        from tts.analysis.selection import Group, Sums

        ids = np.asarray([str(i) for i in config_ids], dtype=object)
        canon = np.sort(ids)
        ident = ("sel", self._key(problems, canon), folds, replicates, seed, key)
        hit = self._groups.get(ident)
        if hit is None:
            group = self.group(problems, canon)
            has = group.c.sum(1) > 0
            if not has.any():
                self._groups[ident] = hit = (None, None)
            else:
                group = group.keep(has)
                path = self.selection_path(problems, canon, folds, replicates, seed, key)

                def compute(group: Group = group) -> list[Sums]:
                    return [_sums(group, self.weights(group, replicates, seed, key), folds)]

                self._groups[ident] = hit = (group, self.memo(path, compute)[0])
        group, sums = hit
        if group is None:
            return None
        if np.array_equal(canon, ids):
            return group, sums
        perm = pd.Index(canon).get_indexer(ids)
        return (
            Group(ids, group.unit_y[:, perm], group.unit_c[:, perm], group.problem, group.fold, group.strata),
            Sums(sums.Y[:, :, perm], sums.C[:, :, perm]),
        )

    def prepare(
        self,
        requests: Sequence[tuple[pd.DataFrame, Sequence[str], str]],
        *,
        replicates: int,
        seed: int,
        stored: Callable[[pd.DataFrame, Sequence[str], str], Path | None] | None = None,
    ) -> None:
        """Warm the weights cache for `selection` calls on (problems, config_ids, key): each distinct unit
        layout's bootstrap weights are drawn on a thread of its own (numpy's multinomial draws release the GIL,
        and each key has its own generator, so the draws are those of a serial run). Requests whose sums are
        already on disk (`stored(problems, config_ids, key)`: their path, e.g. `selection_path`) need none."""
        from concurrent.futures import ThreadPoolExecutor

        todo: dict[tuple, tuple[Group, str]] = {}
        for problems, config_ids, key in requests:
            canon = np.sort(np.asarray([str(i) for i in config_ids], dtype=object))
            where = stored(problems, config_ids, key) if stored is not None else None
            if where is not None and where.is_file():
                continue
            group = self.group(problems, canon)
            has = group.c.sum(1) > 0
            if not has.any():
                continue
            kept = group.keep(has)
            ident = _weights_ident(kept, replicates, seed, key)
            if ident not in self.weights_cache:
                todo.setdefault(ident, (kept, key))
        if not todo:
            return
        workers = min(len(todo), os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            drawn = pool.map(lambda item: item[0].weights(replicates, seed, item[1]), todo.values())
            for ident, w in zip(todo, drawn, strict=True):
                self.weights_cache[ident] = w

    def weights(self, group: Group, replicates: int, seed: int, key: str) -> np.ndarray:
        """`group.weights(replicates, seed, key)`, cached per (key, unit layout): the PRM groups of a (policy,
        dataset, bin) and the three budget tables share them."""
        ident = _weights_ident(group, replicates, seed, key)
        if ident not in self.weights_cache:
            self.weights_cache[ident] = group.weights(replicates, seed, key)
        return self.weights_cache[ident]

    @staticmethod
    def _key(problems: pd.DataFrame, canon: np.ndarray) -> tuple:
        return (
            "\x00".join(problems["problem_id"].astype(str).tolist()),
            problems["fold"].to_numpy(int).tobytes(),
            pd.factorize(problems["stratum"])[0].tobytes(),
            "\x00".join(canon),
        )

    def group(self, problems: pd.DataFrame, config_ids: Sequence[str]) -> Group:
        """The Group of `problems` (problem_id, fold, stratum) x `config_ids` (see Group.build); cached by its
        problem layout and configuration set, columns permuted to the order asked for."""
        ids = np.asarray([str(i) for i in config_ids], dtype=object)
        pids = pd.Index(problems["problem_id"].astype(str))
        canon = np.sort(ids)
        key = self._key(problems, canon)
        base = self._groups.get(key)
        if base is None:
            base = self._build(pids, problems, canon)
            self._groups[key] = base
        if np.array_equal(canon, ids):
            return base
        from tts.analysis.selection import Group

        perm = pd.Index(canon).get_indexer(ids)
        return Group(ids, base.unit_y[:, perm], base.unit_c[:, perm], base.problem, base.fold, base.strata)

    def _dense(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(y, c) sums as dense (configs, problems, seeds) arrays, built once, when that grid is at most a few
        times the rows (a sweep's grid is nearly complete): a group is then two gathers, not a pass over its
        configurations' rows. None when the grid is too sparse."""
        if not hasattr(self, "_dense_cache"):
            nc, npb, ns = len(self.configs), max(len(self.problems), 1), max(len(self.seed_values), 1)
            span = nc * npb * ns
            self._dense_cache = None
            if span <= 4 * len(self.y) + 1_000_000:
                cfg = np.repeat(np.arange(nc), np.diff(self.start))
                key = (cfg * npb + self.prob) * ns + self.seed
                self._dense_cache = (
                    np.bincount(key, weights=self.y, minlength=span).reshape(nc, npb, ns),
                    np.bincount(key, weights=self.c, minlength=span).reshape(nc, npb, ns),
                )
        return self._dense_cache

    def _build(self, pids: pd.Index, problems: pd.DataFrame, ids: np.ndarray) -> Group:
        from tts.analysis.selection import Group

        dense = self._dense()
        if dense is not None:
            return self._build_dense(dense, pids, problems, ids)
        rows, col = self._rows(ids)
        where = pids.get_indexer(self.problems)  # problem code -> position in `problems` (-1: not asked)
        r = where[self.prob[rows]]
        keep = r >= 0
        rows, col, r = rows[keep], col[keep], r[keep]
        seed = self.seed[rows]
        nseeds = max(len(self.seed_values), 1)
        asked = np.zeros(len(pids), bool)
        asked[r] = True
        absent = np.flatnonzero(~asked)  # one empty unit each, as Group.build
        key = np.concatenate([r * nseeds + seed, absent * nseeds])
        present = np.zeros(len(pids) * nseeds, bool)  # (problem, seed) slots: sorted without a sort
        present[key] = True
        units = np.flatnonzero(present)
        u = (np.cumsum(present) - 1)[key[: len(rows)]]
        k = len(ids)
        size = len(units) * k
        y = np.bincount(u * k + col, weights=self.y[rows], minlength=size).reshape(len(units), k)
        c = np.bincount(u * k + col, weights=self.c[rows], minlength=size).reshape(len(units), k)
        return Group(
            ids,
            y,
            c,
            (units // nseeds).astype(np.int64),
            problems["fold"].to_numpy(int),
            pd.factorize(problems["stratum"])[0],
        )

    def _build_dense(
        self, dense: tuple[np.ndarray, np.ndarray], pids: pd.Index, problems: pd.DataFrame, ids: np.ndarray
    ) -> Group:
        """`_build` from the dense sums: the same units (the (problem, seed) slots any of the configurations
        has, plus one empty unit at the first seed for a problem none has), in the same order."""
        from tts.analysis.selection import Group

        ydense, cdense = dense
        nc, npb, ns = ydense.shape
        codes = self.configs.get_indexer(ids)
        pcodes = self.problems.get_indexer(pids)
        cols, probs = np.flatnonzero(codes >= 0), np.flatnonzero(pcodes >= 0)
        present = np.zeros((len(pids), ns), bool)
        if len(cols) and len(probs):
            present[probs] = (cdense[np.ix_(codes[cols], pcodes[probs])] > 0).any(0)
        present[~present.any(1), 0] = True
        units = np.flatnonzero(present.ravel())
        y, c = np.zeros((len(units), len(ids))), np.zeros((len(units), len(ids)))
        unit_problem = units // ns
        asked = pcodes[unit_problem] >= 0
        if len(cols) and asked.any():
            # one gather per matrix: flat positions of (unit, column) in the dense (configs, problems, seeds)
            at = (pcodes[unit_problem[asked]] * ns + units[asked] % ns)[:, None] + (codes[cols] * npb * ns)[
                None
            ]
            sub = np.ix_(np.flatnonzero(asked), cols)
            y[sub], c[sub] = ydense.reshape(-1)[at], cdense.reshape(-1)[at]
        return Group(
            ids,
            y,
            c,
            unit_problem.astype(np.int64),
            problems["fold"].to_numpy(int),
            pd.factorize(problems["stratum"])[0],
        )


def _weights_ident(group: Group, replicates: int, seed: int, key: str) -> tuple:
    """What a group's bootstrap weights depend on: the key, the settings and the unit layout."""
    return (key, replicates, seed, group.strata.tobytes(), group.problem.tobytes())


def _sums(group: Group, w: np.ndarray, folds: int) -> Sums:
    """`Sums.of(group, w, folds)` (kept as a name for the cache above)."""
    from tts.analysis.selection import Sums

    return Sums.of(group, w, folds)
