"""The search tree every tree strategy records in `extra["tree"]` (what report.html's trace viewer draws) and the
`trace` column it becomes: every sampled step is a node, parents come before children, kept / finished / dropped
agree with what the advance rule kept, the candidates' leaves are the final beams, and the stored JSON is
bounded. Fake engines, in-process."""

from __future__ import annotations

import json

import pytest

from tts.data.problem import Problem
from tts.runtime.cells import TRACE_TEXT_CHARS, trace_json, trace_limit
from tts.strategies import STRATEGIES
from tts.strategies.base import SamplingSettings
from tts.testing.fake_engines import FakePolicy, FakePRM

SAMPLING = SamplingSettings(temperature=0.8, max_tokens=64, step_max_tokens=16, aggregation="min")
PROBLEMS = [
    Problem(id="one-op", question="3 + 4", answer="7", dataset="t"),
    Problem(id="two-op", question="5 * 2 + 1", answer="11", dataset="t"),
]
TREES = {
    "beam_search": {"beam_width": 2},
    "dvts": {"beam_width": 2},
    "lookahead": {"beam_width": 2, "lookahead": 1},
    "particle_filtering": {},
    "rebase": {},
}


@pytest.mark.parametrize("name", sorted(TREES))
def test_every_sampled_step_is_a_node_and_the_candidates_are_its_final_beams(name: str) -> None:
    results = STRATEGIES.get(name).run(
        PROBLEMS, FakePolicy(seed=3), FakePRM(), n=4, sampling=SAMPLING, seed=0, **TREES[name]
    )
    for r in results:
        tree = r.extra["tree"]
        size = len(tree["parent"])
        if name == "lookahead":  # its greedy rollouts are counted as samples but are not nodes
            assert 0 < size < r.extra["step_samples"]
        else:  # one node per sampled step
            assert size == r.extra["step_samples"] > 0
        assert all(len(v) == size for k, v in tree.items() if k != "candidate_nodes")
        assert all(-1 <= p < k for k, p in enumerate(tree["parent"]))  # a parent is sampled before its child
        assert all(
            tree["depth"][k] == (1 if p < 0 else tree["depth"][p] + 1) for k, p in enumerate(tree["parent"])
        )
        assert set(tree["status"]) <= {"kept", "finished", "dropped"}
        assert all((s == "dropped") == (c == 0) for s, c in zip(tree["status"], tree["copies"], strict=True))
        expanded = {p for p in tree["parent"] if p >= 0}
        assert all(tree["status"][p] == "kept" for p in expanded)  # only kept beams grow children
        leaves = tree["candidate_nodes"]
        assert len(leaves) == len(r.candidates)
        for leaf, cand in zip(leaves, r.candidates, strict=True):
            path = []
            while leaf >= 0:
                path.append(tree["text"][leaf])
                leaf = tree["parent"][leaf]
            assert "".join(reversed(path)) == cand.text  # the leaf's path spells the candidate
        if name == "particle_filtering":
            assert max(tree["copies"]) >= 1


def test_trace_json_is_compact_and_cut() -> None:
    (r,) = STRATEGIES.get("beam_search").run(
        PROBLEMS[:1], FakePolicy(seed=1), FakePRM(), n=4, sampling=SAMPLING, seed=0, beam_width=2
    )
    r.extra["tree"]["text"][0] = "x" * (TRACE_TEXT_CHARS * 3)
    blob = trace_json(r)
    data = json.loads(blob)
    assert len(data["extra"]["tree"]["text"][0]) == TRACE_TEXT_CHARS + 1  # cut, with an ellipsis
    assert [len(c["steps"]) for c in data["candidates"]] == [len(c.steps) for c in r.candidates]
    assert ": " not in blob and ", " not in blob[:200]  # compact separators


def test_trace_limit_reads_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTS_TRACE_PROBLEMS", raising=False)
    assert trace_limit() == 20
    monkeypatch.setenv("TTS_TRACE_PROBLEMS", "all")
    assert trace_limit() > 10**9
    monkeypatch.setenv("TTS_TRACE_PROBLEMS", "0")
    assert trace_limit() == 0
    monkeypatch.setenv("TTS_TRACE_PROBLEMS", "many")
    with pytest.raises(ValueError, match="TTS_TRACE_PROBLEMS='many'"):
        trace_limit()
