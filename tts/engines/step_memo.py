"""The step scores a causal PRM has already computed, keyed by the exact tokens up to each step tag.

Why: tree search re-scores every beam's whole prefix each step. For a causal PRM the score read at a step tag
depends only on the tokens up to and including that tag, so a score computed once holds for every later text
that starts with the same tokens. vLLM's prefix cache skips recomputing such a prefix, but a token-wise pooling
request that reads the cache returns outputs ONLY for the tokens it computed (the uncached suffix): the scores
of the earlier steps must come from here. Keys are digests of the token ids, so a hit means the same tokens,
whatever the text or the request they came from.

    memo = StepMemo()
    keys = memo.keys(ids, tag_positions)       # one key per tag: the tokens ids[: p + 1]
    memo.put(keys[0], 0.93); memo.get(keys[0])  # -> 0.93; None where never computed (or evicted)
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence

DEFAULT_CAPACITY = 1 << 18  # scores kept (least recently used dropped); about 40 MB at capacity


class StepMemo:
    """A bounded LRU map from a token prefix (its digest) to the score read at its last token."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: invalid value {capacity!r}; must be a positive integer")
        self.capacity = capacity
        self._scores: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._scores)

    @staticmethod
    def keys(ids: Sequence[int], positions: Sequence[int]) -> list[bytes]:
        """One key per position p (ascending): the digest of ids[: p + 1], hashed in one pass over ids."""
        h = hashlib.blake2b(digest_size=16)
        out, done = [], 0
        for p in positions:
            h.update(array("q", ids[done : p + 1]).tobytes())
            done = p + 1
            out.append(h.copy().digest())
        return out

    def get(self, key: bytes) -> float | None:
        score = self._scores.get(key)
        if score is not None:
            self._scores.move_to_end(key)
        return score

    def put(self, key: bytes, score: float) -> None:
        self._scores[key] = score
        self._scores.move_to_end(key)
        if len(self._scores) > self.capacity:
            self._scores.popitem(last=False)

    def clear(self) -> None:
        self._scores.clear()
