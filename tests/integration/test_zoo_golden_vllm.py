"""Golden shapes of the shipped zoo world, measured through the product's own strategies on the real vLLM CPU
engines, on held-out test-split problems (seed 7: no model card, sweep preset or training run uses it), with 95%
intervals over problems. These are regression checks of the shipped weights (tts/zoo/weights, recipe in
tts/zoo/recipe.py): each asserts an effect one of the papers reports, never a tuned number, and the mutants at the
end show that a broken strategy or verifier makes them fail.

- (a) Snell et al. 2024, Fig. 3 (and Liu et al. 2025, Fig. 4): with the strong PRM (zoo-prm-l), weighted
  best-of-16 >= majority@16 on the two hardest levels zoo-policy-m can solve, and PRM best-of-N does not fall
  from N = 1 to 16;
- (b) Snell et al. 2024, Fig. 3 left: with the strong PRM, beam search at N = 4 beats best-of-4 on the hard
  levels (search wins at low budgets on harder problems);
- (c) Liu et al. 2025 (the compute-optimal strategy depends on the verifier): with the weak PRM (zoo-prm-s),
  majority@16 beats PRM best-of-16;
- (d) Liu et al. 2025 (a 1B/3B policy with search against 8B/70B): zoo-policy-m (about 5x smaller than
  zoo-policy-l) with search at N = 16 (weighted best-of-16, the strong verifier) scores at least zoo-policy-l's
  single sample on the levels >= 3 that zoo-policy-l has not saturated (pass@1 < 0.9: level 6; it solves levels
  1-5 almost always, so there is nothing to beat there). Measured NOT to hold (xfail, strict): at level 6 the
  small policy with search stays just below the large one's single sample; the inference FLOPs of both and the
  training FLOPs of both are printed;
- (e) mutants: beam search keeping its lowest beams, weighted voting with negated weights and the PRM's two label
  columns swapped each make (a) or (b) fail.

Every accuracy here is the product's own number: pools from `build_pool`, accuracies at N from the strategies'
`estimate` (exact expectations over the pool), beam search from its `run`. One engine per model, in this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.integration
pytest.importorskip("vllm")

from tts.zoo import POLICY_NAMES, PRM_NAMES, weights_dir  # noqa: E402

LEVELS = (1, 2, 3, 4, 5, 6)
PER_LEVEL = 30
HARD = (4, 5)  # (b): the hard levels
UNSATURATED = (
    0.9  # (d): levels >= 3 where the large policy's pass@1 is below this (it solves 1-5 almost always)
)
POOL = 16
SMALL, LARGE = "zoo-policy-m", "zoo-policy-l"
STRONG, WEAK = "zoo-judge-l", "zoo-prm-s"  # conf/prm/zoo_judge_l.yaml (zoo-policy-l's likelihood), zoo_prm_s

if not all((weights_dir(n) / "card.json").is_file() for n in (*POLICY_NAMES, *PRM_NAMES)):
    pytest.skip("the zoo weights are not shipped in this checkout", allow_module_level=True)


def _ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and normal-approximation 95% interval over problems."""
    n = len(values)
    mean = sum(values) / n
    half = 1.96 * math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, n - 1) / n)
    return mean, mean - half, mean + half


def _fmt(stat: tuple[float, float, float]) -> str:
    return f"{stat[0]:.3f} [{stat[1]:.3f}, {stat[2]:.3f}]"


@dataclass
class Replay:
    """A policy engine that answers a repeated generate call from its first answer: one pool of samples scored by
    several verifiers (per-request seeds make a second call give the same samples anyway; this saves the time)."""

    inner: object
    memo: dict | None = None

    def generate(self, requests):
        key = repr(requests)
        self.memo = self.memo or {}
        if key not in self.memo:
            self.memo[key] = self.inner.generate(requests)
        return self.memo[key]

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def world():
    from tts.data.chain import generate
    from tts.engines.embedded import resolve_model
    from tts.engines.likelihood_prm import LikelihoodPRM
    from tts.engines.vllm_common import EngineSettings
    from tts.engines.vllm_policy import VLLMPolicy
    from tts.engines.vllm_prm import VLLMPoolingPRM
    from tts.strategies.base import SamplingSettings

    settings = EngineSettings(
        dtype="float32",
        enforce_eager=True,
        gpu_memory_utilization=0.1,
        max_model_len=1024,
        max_num_seqs=64,
        enable_prefix_caching=True,
        seed=0,
        enable_chunked_prefill=False,
    )
    engines = {
        name: VLLMPolicy(resolve_model(f"embedded:{name}"), engine=settings) for name in (SMALL, LARGE)
    }
    engines[STRONG] = LikelihoodPRM(engines[LARGE].model_path, policy=engines[LARGE])  # one engine for both
    engines[WEAK] = VLLMPoolingPRM(resolve_model(f"embedded:{WEAK}"), format="qwen_math_prm", engine=settings)
    sampling = SamplingSettings(
        temperature=0.8, max_tokens=128, step_max_tokens=24, aggregation="last", seed=0
    )
    problems = generate(list(LEVELS), PER_LEVEL, seed=7, split="test")
    yield problems, engines, sampling
    for name in (STRONG, WEAK, SMALL, LARGE):
        engines[name].shutdown()


def _pools(world, policy: str, prm: str):
    from tts.grading import grade
    from tts.strategies.pool import build_pool

    problems, engines, sampling = world
    replay = _REPLAY.setdefault(policy, Replay(engines[policy]))
    pools = build_pool(problems, replay, engines[prm], n_max=POOL, sampling=sampling, seed=0)
    correct = [
        [grade(p, c.text).correct for c in pool.candidates] for p, pool in zip(problems, pools, strict=True)
    ]
    return pools, correct


_REPLAY: dict[str, Replay] = {}


def _at(pools, correct, strategy: str, k: int, idx: Sequence[int]) -> list[float]:
    from tts.testing.pools import expected_correct

    return [expected_correct(pools[i], strategy, k, "last", correct[i]).value for i in idx]


def _levels(problems, levels) -> list[int]:
    return [i for i, p in enumerate(problems) if p.level in levels]


def _beam(world, policy: str, prm: str, n: int, levels) -> list[float]:
    from tts.grading import grade
    from tts.strategies import STRATEGIES

    problems, engines, sampling = world
    chosen = [problems[i] for i in _levels(problems, levels)]
    results = STRATEGIES.get("beam_search").run(
        chosen, engines[policy], engines[prm], n=n, sampling=sampling, seed=0, beam_width=4, max_steps=8
    )
    return [float(grade(p, r.text).correct) for p, r in zip(chosen, results, strict=True)]


@pytest.fixture(scope="module")
def strong(world):
    return _pools(world, SMALL, STRONG)


def shape_a(world, pools, correct) -> tuple[bool, str]:
    """(a): weighted@16 >= majority@16 on the two hardest levels the policy solves (pass@16 >= 0.5), pooled;
    PRM best-of-N non-decreasing from N = 1 to 16 on all levels."""
    problems = world[0]
    solvable = [
        lv for lv in LEVELS if sum(any(correct[i]) for i in _levels(problems, (lv,))) >= 0.5 * PER_LEVEL
    ]
    two = tuple(solvable[-2:])
    idx = _levels(problems, two)
    weighted, majority = (
        _at(pools, correct, "weighted_best_of_n", POOL, idx),
        _at(pools, correct, "majority_vote", POOL, idx),
    )
    diff = _ci([w - m for w, m in zip(weighted, majority, strict=True)])
    everything = list(range(len(problems)))
    curve = [sum(_at(pools, correct, "best_of_n", k, everything)) / len(everything) for k in (1, 2, 4, 8, 16)]
    ok = diff[0] >= 0 and all(b >= a - 1e-9 for a, b in zip(curve, curve[1:], strict=False))
    return ok, (
        f"levels {two}: weighted@16 {_fmt(_ci(weighted))} vs majority@16 {_fmt(_ci(majority))}, "
        f"paired difference {_fmt(diff)}; best-of-N at N=1,2,4,8,16: {[round(c, 3) for c in curve]}"
    )


def shape_b(world, pools, correct) -> tuple[bool, str]:
    """(b): beam search at N = 4 beats best-of-4 on the hard levels (paired, pooled)."""
    idx = _levels(world[0], HARD)
    beam = _beam(world, SMALL, STRONG, 4, HARD)
    bon = _at(pools, correct, "best_of_n", 4, idx)
    diff = _ci([a - b for a, b in zip(beam, bon, strict=True)])
    return diff[
        0
    ] > 0, f"levels {HARD}: beam N=4 {_fmt(_ci(beam))} vs best-of-4 {_fmt(_ci(bon))}, paired {_fmt(diff)}"


def test_a_strong_prm_weighted_vote_and_best_of_n_curve(world, strong):
    ok, detail = shape_a(world, *strong)
    print("(a)", detail)
    assert ok, detail


def test_b_beam_search_beats_best_of_n_at_low_budget_on_hard_levels(world, strong):
    ok, detail = shape_b(world, *strong)
    print("(b)", detail)
    assert ok, detail


def test_c_weak_prm_loses_to_majority(world):
    pools, correct = _pools(world, SMALL, WEAK)
    idx = _levels(world[0], (2, 3, 4, 5))
    majority, bon = (
        _at(pools, correct, "majority_vote", POOL, idx),
        _at(pools, correct, "best_of_n", POOL, idx),
    )
    diff = _ci([m - b for m, b in zip(majority, bon, strict=True)])
    detail = f"levels 2-5: majority@16 {_fmt(_ci(majority))} vs weak-PRM best-of-16 {_fmt(_ci(bon))}, paired {_fmt(diff)}"
    print("(c)", detail)
    assert diff[0] > 0, detail


@pytest.mark.xfail(
    strict=True,
    reason="measured not to hold in this world: zoo-policy-l saturates levels 1-5 and at level 6 zoo-policy-m "
    "with weighted best-of-16 (0.50 [0.32, 0.68]) does not reach zoo-policy-l's single sample (0.54 [0.40, 0.68]); "
    "strict, so a world where it holds makes this fail and the marker must go",
)
def test_d_small_policy_with_search_beats_the_large_policys_single_sample(world, strong):
    problems = world[0]
    pools, correct = strong
    large_pools, large_correct = _pools(world, LARGE, STRONG)
    levels = tuple(
        lv
        for lv in LEVELS
        if lv >= 3
        and sum(sum(large_correct[i]) / POOL for i in _levels(problems, (lv,))) < UNSATURATED * PER_LEVEL
    )
    assert levels, "zoo-policy-l saturates every level >= 3: (d) has nothing to compare"
    idx = _levels(problems, levels)
    small = _at(pools, correct, "weighted_best_of_n", POOL, idx)
    large = [sum(large_correct[i]) / POOL for i in idx]  # pass@1: the mean of the pool
    cards = {n: json.loads((weights_dir(n) / "card.json").read_text()) for n in (SMALL, LARGE)}
    tokens = {
        SMALL: sum(c.tokens_out for i in idx for c in pools[i].candidates)
        + sum(pools[i].prompt_tokens for i in idx),
        LARGE: sum(c.tokens_out for i in idx for c in large_pools[i].candidates) / POOL
        + sum(large_pools[i].prompt_tokens for i in idx) / POOL,
    }
    prm_tokens = sum(sum(pools[i].prm_tokens) for i in idx)
    flops_small = 2 * cards[SMALL]["params"] * tokens[SMALL] + 2 * world[1][STRONG].param_count * prm_tokens
    flops_large = 2 * cards[LARGE]["params"] * tokens[LARGE]
    detail = (
        f"levels {levels}: {SMALL} weighted best-of-16 with {STRONG} {_fmt(_ci(small))} "
        f"({flops_small / len(idx):.3g} inference FLOPs a problem, its verifier {LARGE}'s likelihood; training "
        f"{cards[SMALL]['train_flops']:.3g} + {cards[LARGE]['train_flops']:.3g}) vs {LARGE} pass@1 {_fmt(_ci(large))} "
        f"({flops_large / len(idx):.3g} a problem; training {cards[LARGE]['train_flops']:.3g})"
    )
    print("(d)", detail)
    assert _ci(small)[0] >= _ci(large)[0], detail


# ------------------------------------------------------------------------------------------------- mutants
def test_e_beam_search_keeping_its_lowest_beams_fails_b(world, strong, monkeypatch):
    import tts.strategies.beam_search as beam_search
    from tts.strategies.tree import keep_top

    def keep_bottom(group, children, filter_duplicates=False):
        for c in children:
            c.rank = -c.rank
        keep_top(group, children, filter_duplicates)

    monkeypatch.setattr(beam_search, "keep_top", keep_bottom)
    ok, detail = shape_b(world, *strong)
    print("(e) lowest beams:", detail)
    assert not ok, detail


def test_e_weighted_vote_with_negated_weights_fails_a(world, strong, monkeypatch):
    import tts.strategies.weighted_best_of_n as weighted

    original = weighted.expected_weighted_best_of_k

    def negated(groups, scores, correct, k, **kw):
        return original(groups, [-s for s in scores], correct, k, **kw)

    monkeypatch.setattr(weighted, "expected_weighted_best_of_k", negated)
    ok, detail = shape_a(world, *strong)
    print("(e) negated weights:", detail)
    assert not ok, detail


def test_e_verifier_labels_swapped_fails_a_and_b(world, monkeypatch):
    """The verifier's two outcomes swapped: a two-label PRM head read at the wrong column gives P(wrong) for
    P(right); for the likelihood verifier that is 1 - its score."""
    from tts.engines.likelihood_prm import LikelihoodPRM
    from tts.engines.protocols import StepScores

    original = LikelihoodPRM.score

    def swapped_score(self, requests):
        return [
            StepScores(tuple(1 - x for x in s.scores), s.tokens, s.cached_tokens)
            for s in original(self, requests)
        ]

    monkeypatch.setattr(LikelihoodPRM, "score", swapped_score)
    swapped = _pools(world, SMALL, STRONG)
    ok_a, detail_a = shape_a(world, *swapped)
    ok_b, detail_b = shape_b(world, *swapped)
    print("(e) swapped labels:", detail_a, "|", detail_b)
    assert not ok_a and not ok_b, (detail_a, detail_b)
