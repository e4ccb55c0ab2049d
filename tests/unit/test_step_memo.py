"""StepMemo (tts.engines.step_memo): keys name exact token prefixes; the memo is a bounded LRU."""

from __future__ import annotations

import pytest

from tts.engines.step_memo import StepMemo


def test_keys_name_the_tokens_up_to_each_tag_and_nothing_after():
    ids = [5, 9, 1, 7, 1, 3]
    keys = StepMemo.keys(ids, [2, 4])
    assert keys == [StepMemo.keys(ids[:3], [2])[0], StepMemo.keys(ids[:5] + [8, 8], [4])[0]]
    assert StepMemo.keys([5, 9, 2, 7, 1], [4])[0] != keys[1]  # one token earlier differs: another prefix
    assert StepMemo.keys([9, 5, 1], [2])[0] != keys[0]  # order matters
    assert StepMemo.keys(ids, []) == []


def test_memo_keeps_the_most_recently_used_scores():
    memo = StepMemo(capacity=2)
    a, b, c = StepMemo.keys([1, 2, 3], [0, 1, 2])
    memo.put(a, 0.1)
    memo.put(b, 0.2)
    assert memo.get(a) == 0.1  # a is now the most recent
    memo.put(c, 0.3)
    assert memo.get(b) is None and memo.get(a) == 0.1 and memo.get(c) == 0.3 and len(memo) == 2
    memo.clear()
    assert len(memo) == 0
    with pytest.raises(ValueError, match="capacity"):
        StepMemo(capacity=0)
