"""Particle filtering and REBASE against the fakes (issue 14): resampling follows the weights, REBASE's widths
follow the softmax and sum to the budget, accounting against a hand count, lockstep engine calls, seeds, and the
grid accepting both and rejecting bad values by field."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from tts.config import ConfigError
from tts.data.problem import Problem
from tts.grid import expand
from tts.strategies import STRATEGIES
from tts.strategies.base import SamplingSettings
from tts.strategies.particle_filtering import ResampleRule, particle_weights, resample
from tts.strategies.rebase import allocate_widths, reference_widths
from tts.strategies.tree import Beam, Group, keep_top
from tts.testing.fake_engines import FakePolicy, FakePRM, PlantedPRM

SAMPLING = SamplingSettings(temperature=0.8, max_tokens=64, step_max_tokens=16, aggregation="min")
ONE = Problem(id="one-op", question="3 + 4", answer="7", dataset="t")  # 2 steps: a claim, the answer
TWO = Problem(id="two-op", question="5 * 2 + 1", answer="11", dataset="t")  # 3 steps
FOUR = Problem(id="four-op", question="9 - 3 + 8 * 2 - 5", answer="23", dataset="t")  # 5 steps
FAMILY = ("particle_filtering", "rebase")
CHI2_999 = {3: 16.266, 4: 18.467}  # chi-square 0.999 quantiles by degrees of freedom


def run(name, policy, prm, problems=(ONE, TWO), n=4, seed=0, **params):
    return STRATEGIES.get(name).run(list(problems), policy, prm, n=n, sampling=SAMPLING, seed=seed, **params)


def chi_square(observed, expected):
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))


def softmax(xs, t):
    exps = [math.exp(x / t) for x in xs]
    return [e / sum(exps) for e in exps]


# ---------------------------------------------------------------------------------- particle filtering
def test_weights_are_the_softmax_of_the_score_logits():
    scores, t = [0.2, 0.5, 0.8, 0.95], 0.7
    logits = [math.log(s / (1 - s)) for s in scores]
    assert np.allclose(particle_weights(scores, t), softmax(logits, t))
    edge = particle_weights([0.0, 1.0], 1.0)  # clipped at 1e-7, as its_hub: finite, no NaN
    assert np.isfinite(edge).all() and math.isclose(edge.sum(), 1.0) and edge[1] > 1 - 1e-12
    assert np.ptp(particle_weights(scores, 1e6)) < 1e-5  # a hot softmax is uniform


def test_multinomial_resampling_follows_the_weights_in_a_whole_run():
    """Planted step-1 scores; step 2 finishes every particle, so with the final resampling off the final origins
    are the step-1 draws (the final resampling, its_hub's, is tested against its_hub itself in
    tests/conformance/test_its_hub.py)."""
    planted, t, n, runs = [0.2, 0.5, 0.8, 0.95], 2.0, 4, 500  # expected counts 127 .. 1110
    drawn = Counter()
    for seed in range(runs):
        [result] = run(
            "particle_filtering",
            FakePolicy(error_rate=0.0),
            PlantedPRM(planted),
            (ONE,),
            n=n,
            seed=seed,
            softmax_temperature=t,
            final_resampling=False,
        )
        assert result.extra["resampling_steps"] == 1 and len(result.extra["origins"]) == n
        assert result.extra["ancestors"] == len(set(result.extra["origins"]))
        drawn.update(result.extra["origins"])
    expected = [runs * n * w for w in particle_weights(planted, t)]
    stat = chi_square([drawn[i] for i in range(n)], expected)
    assert stat < CHI2_999[n - 1], (stat, drawn, expected)
    assert chi_square([drawn[i] for i in range(n)], [runs] * n) > 100  # and the weights were not ignored


def test_resample_follows_the_weights_multinomial_and_systematic():
    weights = np.array([0.05, 0.15, 0.3, 0.1, 0.4])
    rng = np.random.default_rng(7)
    for method in ("multinomial", "systematic"):
        counts = np.bincount(
            np.concatenate([resample(weights, rng, method) for _ in range(2000)]), minlength=5
        )
        assert chi_square(counts, 2000 * 5 * weights) < CHI2_999[4], (method, counts)
    for _ in range(200):  # systematic: every particle is copied floor(N w) or ceil(N w) times
        counts = np.bincount(resample(weights, rng, "systematic"), minlength=5)
        assert np.all(counts >= np.floor(5 * weights)) and np.all(counts <= np.ceil(5 * weights))


def test_finished_particles_keep_their_place_and_take_part_in_resampling():
    """The advance rule on hand-made particles: equal weights under systematic resampling copy every particle
    once, so the population keeps its order; finished particles are never extended, later bad ones drop out.
    The step that finishes the last particle is followed by one more resampling (its_hub's), unless
    final_resampling is off."""
    for final in (False, True):
        rule = ResampleRule([np.random.default_rng(0)], 1.0, "systematic", final)
        group = Group(problem=0, width=4, keep=4, cap=4, active=[Beam(problem=0)])
        first = [Beam(0, f"s{i}", finish_reason="eos" if i in (0, 3) else None, rank=0.9) for i in range(4)]
        rule(group, first)
        assert [b.origin for b in first] == [0, 1, 2, 3]
        assert group.finished == [first[0], first[3]] and group.active == [first[1], first[2]]
        assert group.widths == [1, 1] and not group.done  # only the unfinished are extended
        grown = [Beam(0, b.text + "x", rank=0.9, origin=b.origin) for b in group.active]
        rule(group, grown)
        assert rule.population[0] == [first[0], grown[0], grown[1], first[3]]  # finished ones in their slots
        low = [Beam(0, b.text + "y", finish_reason="eos", rank=1e-6, origin=b.origin) for b in group.active]
        rule(group, low)  # all finished now
        assert group.done and rule.extra(0)["resampling_steps"] == 2 + final
        if final:  # resampled once more: the two weak newcomers drop out, the good finished ones are copied
            assert Counter(b.origin for b in rule.population[0]) == {0: 2, 3: 2}
            assert Counter(id(b) for b in group.finished) == {id(first[0]): 2, id(first[3]): 2}
        else:  # kept as it is
            assert rule.population[0] == [first[0], low[0], low[1], first[3]]
            assert rule.extra(0)["ancestors"] == 4
    rule = ResampleRule([np.random.default_rng(0)], 1.0, "systematic")
    group = Group(problem=0, width=4, keep=4, cap=4, active=[Beam(problem=0)])
    ranks = [0.999, 1e-6, 1e-6, 1e-6]  # a strong finished particle is copied, weak ones drop out
    rule(
        group,
        [Beam(0, f"t{i}", finish_reason="eos" if i == 0 else None, rank=r) for i, r in enumerate(ranks)],
    )
    assert Counter(b.origin for b in rule.population[0]) == {0: 4} and group.done


# ------------------------------------------------------------------------------------------- REBASE
@pytest.mark.parametrize(
    ("rewards", "budget", "t"),
    [([0.9, 0.5, 0.1], 8, 0.2), ([0.3, 0.3, 0.3], 7, 1.0), ([0.99, 0.01], 5, 0.05), ([0.4] * 6, 3, 0.2)],
)
def test_rebase_widths_follow_the_softmax_and_sum_to_the_budget(rewards, budget, t):
    widths = allocate_widths(rewards, budget, t)
    assert sum(widths) == budget and all(w >= 0 for w in widths)
    quotas = [budget * p for p in softmax(rewards, t)]
    assert all(math.floor(q) <= w <= math.ceil(q) for w, q in zip(widths, quotas, strict=True))


def test_rebase_width_rounding_is_largest_remainder_ties_to_the_better_node():
    assert allocate_widths([0.9, 0.5, 0.1], 8, 0.2) == [7, 1, 0]  # quotas 6.98, 0.94, 0.08
    assert allocate_widths([0.3, 0.3, 0.3], 7, 1.0) == [3, 2, 2]  # equal quotas: earlier first
    assert allocate_widths([0.4, 0.5], 1, 100.0) == [0, 1]  # equal fractions: higher reward
    assert allocate_widths([0.5, 0.2], 0, 0.2) == [0, 0] and allocate_widths([], 4, 0.2) == []


@pytest.mark.parametrize(
    ("allocation", "first"),
    [("reference", [4, 0, 0, 0]), ("largest_remainder", [3, 0, 1, 0])],  # quotas 3.15, .09, .70, .06
)
def test_rebase_expands_each_node_by_its_width_and_completed_leave_the_budget(allocation, first):
    planted, n, t = [0.9, 0.2, 0.6, 0.1], 4, 0.2
    policy = FakePolicy(error_rate=0.0, record=True)
    [result] = run(
        "rebase", policy, PlantedPRM(planted), (TWO,), n=n, softmax_temperature=t, allocation=allocation
    )
    rule = reference_widths if allocation == "reference" else allocate_widths
    assert result.extra["widths"][0] == first == rule(planted, n, t)
    assert sum(r.n for r in policy.history[1]) == n  # the step-2 widths of the kept nodes
    assert result.extra["widths"][-1] == [] and len(result.candidates) == n  # all N completed: budget spent


# ------------------------------------------------------------------------------ both: accounting, seeds
@pytest.mark.parametrize("name", FAMILY)
def test_generations_and_tokens_equal_a_hand_count(name):
    """N = 4, error-free policy: every particle / node follows the same path, one request of n = 4 per
    problem per step. Prompts: "Question: 3 + 4\\nSolution:\\n" is 5 tokens, its steps "3 + 4 = 7." (5) and
    "The answer is \\boxed{7}." (4); "5 * 2 + 1" is 7 tokens with steps of 5, 5 and 4."""
    policy, prm = FakePolicy(error_rate=0.0), FakePRM()
    one, two = run(name, policy, prm, n=4)
    assert policy.calls == prm.calls == 3  # the longest search: 1 policy + 1 PRM call per step
    assert (one.extra["steps"], two.extra["steps"]) == (2, 3)
    assert (one.generations, two.generations) == (4, 4)  # step samples / steps
    assert (one.extra["step_samples"], two.extra["step_samples"]) == (8, 12)
    assert (one.tokens_in, one.tokens_out) == (5 + 10, 4 * (5 + 4))
    assert (two.tokens_in, two.tokens_out) == (7 + 12 + 17, 4 * (5 + 5 + 4))
    assert one.prm_tokens == 4 * ((3 + 5) + (3 + 9)) and two.prm_tokens == 4 * ((5 + 5) + (5 + 10) + (5 + 14))
    assert (one.answer, two.answer) == ("7", "11") and len(one.candidates) == 4
    assert (
        policy.tokens_out == one.tokens_out + two.tokens_out and prm.tokens == one.prm_tokens + two.prm_tokens
    )


@pytest.mark.parametrize("name", FAMILY)
def test_one_policy_and_one_prm_call_per_step_across_problems(name):
    policy, prm = FakePolicy(seed=1, error_rate=0.3, record=True), FakePRM(mode="hash")
    results = run(name, policy, prm, (ONE, TWO, FOUR), n=8)
    steps = max(r.extra["steps"] for r in results)
    assert policy.calls == prm.calls == steps == 5
    assert [r.extra["steps"] for r in results] == [2, 3, 5]
    assert len(policy.history[0]) == 3 and all(r.n == 8 for r in policy.history[0])


def _outcome(results):
    return [(r.text, r.extra.get("origins"), r.tokens_out, r.prm_tokens) for r in results]


def test_particle_filtering_is_deterministic_per_seed_and_varies_across_seeds():
    def go(seed, method):
        problems = (ONE, TWO, FOUR)
        return _outcome(
            run(
                "particle_filtering",
                FakePolicy(seed=2),
                FakePRM(mode="hash"),
                problems,
                8,
                seed,
                resampling=method,
            )
        )

    for method in ("multinomial", "systematic"):
        assert go(0, method) == go(0, method)
        assert go(0, method) != go(1, method)


def test_rebase_is_deterministic_per_engine_seed_and_varies_across_them():
    def go(engine_seed, seed=0):
        return _outcome(
            run("rebase", FakePolicy(seed=engine_seed), FakePRM(mode="hash"), (TWO, FOUR), 8, seed)
        )

    assert go(0) == go(0) == go(0, seed=5)  # the allocation is deterministic: the cell seed changes nothing
    assert go(0) != go(1)


@pytest.mark.parametrize("name", FAMILY)
def test_final_selection_is_shared(name):
    for rule in ("argmax", "weighted", "majority"):
        results = run(
            name, FakePolicy(seed=1, error_rate=0.4), FakePRM(mode="hash"), n=8, final_selection=rule
        )
        assert all(r.extra["final_selection"] == rule for r in results)
        assert all(r.answer == r.candidates[r.extra["chosen"]].answer for r in results)


# ------------------------------------------------------------------------------------------------ grid
@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("particle_filtering", ["strategy.resampling=systematic", "strategy.softmax_temperature=0.5"]),
        ("rebase", ["strategy.softmax_temperature=0.1", "strategy.max_steps=8"]),
    ],
)
def test_grid_accepts_the_strategies(name, overrides):
    cells = expand([f"strategy={name}", "n=2,3", *overrides]).cells
    assert [c.n for c in cells] == [2, 3] and {c.strategy for c in cells} == {name}
    entry = STRATEGIES.get(name)
    assert all(isinstance(c.config.strategy, entry.schema) for c in cells)
    assert cells[0].config.strategy.softmax_temperature in (0.5, 0.1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["strategy=particle_filtering", "strategy.softmax_temperature=0"],
            "strategy.softmax_temperature: invalid value 0",
        ),
        (
            ["strategy=particle_filtering", "strategy.resampling=stratified"],
            "strategy.resampling: invalid value 'stratified'; allowed: multinomial, systematic",
        ),
        (
            ["strategy=rebase", "strategy.softmax_temperature=-1"],
            "strategy.softmax_temperature: invalid value -1",
        ),
        (["strategy=rebase", "strategy.max_steps=0"], "strategy.max_steps: invalid value 0"),
        (
            ["strategy=rebase", "strategy.final_selection=best"],
            "strategy.final_selection: invalid value 'best'",
        ),
        (["strategy=rebase", "prm=none"], "prm: "),
    ],
)
def test_grid_rejects_bad_values_naming_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        expand(overrides)


def test_direct_calls_reject_bad_arguments_by_name():
    with pytest.raises(ValueError, match="strategy.resampling: invalid value 'x'"):
        run("particle_filtering", FakePolicy(), FakePRM(), resampling="x")
    with pytest.raises(ValueError, match="n: invalid value 0"):
        run("rebase", FakePolicy(), FakePRM(), n=0)
    assert run("particle_filtering", FakePolicy(), FakePRM(), problems=()) == []


# --------------------------------------------------------------- beam search duplicates, DVTS lookahead
def test_keep_top_merges_identical_partial_solutions_when_asked():
    def children():
        return [
            Beam(0, "a", rank=0.9),
            Beam(0, "a", rank=0.9),
            Beam(0, "b", rank=0.8),
            Beam(0, "c", rank=0.5),
        ]

    plain, merged = (Group(problem=0, width=4, keep=2, cap=4, active=[]) for _ in range(2))
    keep_top(plain, children())
    keep_top(merged, children(), filter_duplicates=True)
    assert [b.text for b in plain.active] == ["a", "a"]
    assert [b.text for b in merged.active] == ["a", "b"]  # one of the identical ones, the next distinct one


def test_beam_search_filter_duplicates_keeps_distinct_beams_and_accounts():
    policy = FakePolicy(seed=1, error_rate=0.5, record=True)
    results = STRATEGIES.get("beam_search").run(
        [FOUR], policy, FakePRM(), n=8, sampling=SAMPLING, seed=0, beam_width=2, filter_duplicates=True
    )
    assert all(sum(r.n for r in call) == 8 for call in policy.history)  # N children, spread over the kept
    assert results[0].generations == 8 and results[0].tokens_out == policy.tokens_out
    default = STRATEGIES.get("beam_search").schema()
    assert default.filter_duplicates is False


def test_dvts_with_lookahead_rolls_out_and_zero_is_plain_dvts():
    def go(**params):
        policy = FakePolicy(seed=2, error_rate=0.3, record=True)
        out = STRATEGIES.get("dvts").run(
            [TWO, FOUR], policy, FakePRM(), n=8, sampling=SAMPLING, seed=0, beam_width=2, **params
        )
        return policy, out

    (p0, plain), (pz, zero), (p1, ahead) = go(), go(lookahead=0), go(lookahead=1)
    assert _outcome(plain) == _outcome(zero) and p0.calls == pz.calls
    steps = max(r.extra["steps"] for r in ahead)
    assert p1.calls > steps and {r.temperature for call in p1.history for r in call} == {0.8, 0.0}
    assert all(r.generations > 8 for r in ahead)  # rollouts are charged, as in lookahead search
    assert (
        STRATEGIES.get("dvts").budget(STRATEGIES.get("dvts").schema(lookahead=1), 4, 100, 10)[0] == 2 * 4 * 40
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["strategy=dvts", "strategy.lookahead=-1"], "strategy.lookahead: invalid value -1"),
        (["strategy=beam_search", "strategy.filter_duplicates=maybe"], "filter_duplicates"),
        (
            ["strategy=beam_search", "strategy.semantics=hf"],
            "strategy.semantics: invalid value 'hf'; allowed: sal, openr",
        ),
        (
            ["strategy=dvts", "strategy.final_leaves=some"],
            "strategy.final_leaves: invalid value 'some'; allowed: all, best",
        ),
        (
            ["strategy=rebase", "strategy.allocation=round"],
            "strategy.allocation: invalid value 'round'; allowed: reference, largest_remainder",
        ),
        (["strategy=rebase", "strategy.reward=min"], "strategy.reward: invalid value 'min'; allowed: last"),
        (["strategy=particle_filtering", "strategy.final_resampling=maybe"], "final_resampling"),
        (["strategy=rebase", "strategy.complete_at_limit=maybe"], "complete_at_limit"),
    ],
)
def test_grid_rejects_bad_search_options(overrides, message):
    with pytest.raises(ConfigError, match=message):
        expand(overrides)


def test_grid_accepts_the_search_options():
    [dvts] = expand(["strategy=dvts", "strategy.lookahead=2", "strategy.final_leaves=best", "n=4"]).cells
    [beam] = expand(
        ["strategy=beam_search", "strategy.filter_duplicates=true", "strategy.semantics=openr", "n=4"]
    ).cells
    [rebase] = expand(
        ["strategy=rebase", "strategy.allocation=largest_remainder", "strategy.reward=aggregate", "n=4"]
    ).cells
    [pf] = expand(["strategy=particle_filtering", "strategy.final_resampling=false", "n=4"]).cells
    assert dvts.config.strategy.lookahead == 2 and beam.config.strategy.filter_duplicates is True
    assert dvts.config.strategy.final_leaves == "best" and beam.config.strategy.semantics == "openr"
    assert (rebase.config.strategy.allocation, rebase.config.strategy.reward) == (
        "largest_remainder",
        "aggregate",
    )
    assert pf.config.strategy.final_resampling is False
    defaults = [expand([f"strategy={name}", "n=4"]).cells[0].config.strategy for name in FAMILY]
    assert [s.final_resampling for s in defaults[:1]] == [True]
    assert (defaults[1].allocation, defaults[1].reward, defaults[1].max_steps) == ("reference", "last", 25)


def test_beam_search_semantics_differ_as_their_references_do():
    """sal: N final beams at most, ranked by aggregate; openr: N/M at most (tests/conformance/test_openr_liu.py
    traces both rules by hand)."""
    policy = FakePolicy(seed=3, error_rate=0.4)
    sal = run("beam_search", policy, FakePRM(mode="hash"), problems=(FOUR,), n=8, beam_width=2)
    openr = run(
        "beam_search", policy, FakePRM(mode="hash"), problems=(FOUR,), n=8, beam_width=2, semantics="openr"
    )
    assert len(sal[0].candidates) <= 8 and len(openr[0].candidates) <= 4
    with pytest.raises(ValueError, match="semantics: invalid value 'x'"):
        run("beam_search", policy, FakePRM(), problems=(FOUR,), n=8, beam_width=2, semantics="x")
