"""Adaptive majority (adaptive-consistency): the stopping rules, the exact expectations of accuracy and spent
generations over random orders against a brute force over every order of small pools, the Monte Carlo
fallback, the spent budget reaching the cell rows, and the config rejects."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from tts.config import ConfigError
from tts.grid import expand
from tts.results_schema import CELL_TYPES
from tts.runtime.cells import cell_rows, run_pool_job
from tts.runtime.plan import Problems, pool_works
from tts.store import to_table
from tts.strategies import STRATEGIES
from tts.strategies.adaptive_majority import (
    ENTRY,
    NAME,
    beta_leader_probability,
    dirichlet_leader_probability,
    estimate,
    select,
)
from tts.strategies.base import Candidate
from tts.strategies.estimators import expected_majority_at_k
from tts.strategies.pool import ProblemPool
from tts.strategies.voting import answer_groups
from tts.testing.fake_engines import FakePolicy

if NAME not in STRATEGIES:  # not yet in the installed entry points (until `pip install -e .`)
    STRATEGIES.register(NAME, ENTRY)


def cand(answer: str | None, tokens: int = 10) -> Candidate:
    text = f"work\n\nThe answer is \\boxed{{{answer}}}." if answer else "work"
    return Candidate(text, ("work",), (), 0.0, answer, "eos", tokens)


def pool_of(answers: list[str | None], tokens: list[int] | None = None, **kw: object) -> ProblemPool:
    tokens = tokens or [10 + i for i in range(len(answers))]
    cands = tuple(cand(a, t) for a, t in zip(answers, tokens, strict=True))
    return ProblemPool(problem_id="p", candidates=cands, prompt_tokens=7, **kw)  # type: ignore[arg-type]


def brute_force(
    pool: ProblemPool, n: int, correct: list[bool], **params: object
) -> tuple[float, float, float]:
    """Mean (correct, generations, tokens) of `select` over every ordered draw of n samples from the pool."""
    accs, gens, toks = [], [], []
    for order in itertools.permutations(range(pool.n_max), n):
        sub = ProblemPool("p", tuple(pool.candidates[i] for i in order), prompt_tokens=7)
        r = select(sub, n, "last", **params)
        accs.append(correct[order[r.extra["chosen"]]] if r.answer is not None else False)
        gens.append(r.generations)
        toks.append(r.tokens_out)
    return float(np.mean(accs)), float(np.mean(gens)), float(np.mean(toks))


SHAPES = [  # (answers, correct, n): unanimous, split, with abstainers, a mixed-grade class, cap reached
    (["7"] * 5, [True] * 5, 5),
    (["5", "5", "5", "3", "3", "9"], [True, True, True, False, False, False], 6),
    (["5", "5", "5", "3", "3", "9"], [True, True, True, False, False, False], 4),
    (["5", "3", None, "5", "9", "3", "5"], [True, False, False, True, False, False, True], 5),
    (["5", "3", "5", "3", "8", "8"], [True, False, False, False, True, True], 6),  # "5" graded 1 of 2
]
RULES = [
    {"rule": "beta"},
    {"rule": "beta", "confidence": 0.8, "min_samples": 2},
    {"rule": "dirichlet", "confidence": 0.6},
    {"rule": "margin", "margin": 2},
    {"rule": "margin", "margin": 1, "min_samples": 3},
]


@pytest.mark.parametrize("params", RULES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
def test_exact_expectation_matches_brute_force_over_every_order(shape: tuple, params: dict) -> None:
    answers, correct, n = shape
    pool = pool_of(answers)
    est = estimate(pool, n, "last", correct, **params)
    acc, gens, toks = brute_force(pool, n, correct, **params)
    assert est.method == "exact" and est.low == est.value == est.high
    assert est.value == pytest.approx(acc, abs=1e-12)
    assert est.generations == pytest.approx(gens, abs=1e-12)
    assert est.tokens_out == pytest.approx(toks, abs=1e-9)
    assert params.get("min_samples", 1) - 1e-12 <= est.generations <= n + 1e-12


def test_unanimous_stops_at_min_samples_or_the_beta_threshold() -> None:
    pool = pool_of(["7"] * 8)
    ok = [True] * 8
    assert estimate(pool, 8, "last", ok, rule="margin", margin=2).generations == 2
    assert estimate(pool, 8, "last", ok, rule="margin", margin=1, min_samples=3).generations == 3
    # Beta(v + 1, 1): P(p1 > 1/2) = 1 - 2^-(v+1) reaches 0.95 at v = 4
    assert estimate(pool, 8, "last", ok, rule="beta").generations == 4
    assert select(pool, 8, "last", rule="beta").generations == 4
    assert estimate(pool, 8, "last", ok, rule="beta").value == 1.0


def test_rule_that_never_fires_spends_n_and_is_majority_vote() -> None:
    answers = ["5", "5", "3", "3", "9", "5", None]
    correct = [a == "5" for a in answers]
    pool = pool_of(answers)
    for k in (1, 3, 5):  # 0.99 needs 6 unanimous votes: never within k <= 5
        est = estimate(pool, k, "last", correct, rule="beta", confidence=0.99)
        assert est.generations == k
        assert est.value == pytest.approx(expected_majority_at_k(answer_groups(answers), correct, k))


def test_margin_rule_on_a_hand_example() -> None:
    # A B A A ...: leader - runner-up after each sample is 1, 0, 1, 2 -> stops at the 4th sample
    pool = pool_of(["4", "6", "4", "4", "6", "6", "6"])
    r = select(pool, 7, "last", rule="margin", margin=2)
    assert (r.generations, r.answer, r.extra["stopped_at"], r.extra["cap"]) == (4, "4", 4, 7)
    assert r.tokens_out == 10 + 11 + 12 + 13 and r.tokens_in == 7 and r.prm_tokens == 0
    capped = select(pool, 3, "last", rule="margin", margin=2)  # the cap comes first
    assert (capped.generations, capped.answer) == (3, "4")


def test_beta_and_dirichlet_probabilities() -> None:
    assert beta_leader_probability(0, 0) == 0.5 and beta_leader_probability(1, 0) == 0.75
    assert beta_leader_probability(3, 1) == dirichlet_leader_probability((3, 1))  # two classes: the same
    rng = np.random.default_rng(0)
    for votes in [(3, 1, 1), (4, 2, 1, 1)]:
        draws = rng.dirichlet(np.array(votes) + 1.0, size=200_000)
        mc = (draws[:, 0] > draws[:, 1:].max(1)).mean()
        assert float(dirichlet_leader_probability(votes)) == pytest.approx(mc, abs=0.005)


def test_monte_carlo_fallback_is_seeded_and_close_to_exact() -> None:
    answers = ["5", "3", None, "5", "9", "3", "5", "5", "2", "5"]
    correct = [a == "5" for a in answers]
    pool = pool_of(answers)
    exact = estimate(pool, 8, "last", correct, rule="beta", confidence=0.8)
    mc = estimate(pool, 8, "last", correct, rule="beta", confidence=0.8, max_states=1, seed=3, samples=4000)
    again = estimate(
        pool, 8, "last", correct, rule="beta", confidence=0.8, max_states=1, seed=3, samples=4000
    )
    assert exact.method == "exact" and mc.method == "resampled" and mc.samples == 4000
    assert mc == again
    assert mc.low <= exact.value <= mc.high
    assert mc.generations == pytest.approx(exact.generations, abs=4 * 7 / 2 / math.sqrt(4000))


def test_greedy_pool_is_charged_once() -> None:
    pool = pool_of(["7"] * 4, tokens=[9] * 4, greedy=True)
    est = estimate(pool, 4, "last", [True] * 4, rule="margin", margin=2)
    assert (est.generations, est.tokens_out, est.value) == (1.0, 9.0, 1.0)
    assert select(pool, 4, "last", rule="margin", margin=2).generations == 1


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(TypeError, match="margn"):
        select(pool_of(["1"]), 1, "last", margn=2)


def test_the_spent_budget_reaches_the_cell_rows() -> None:
    cells = list(expand([f"strategy={NAME}", "n=2,8", "prm=none", "dataset.per_level=2"]).cells)
    assert {c.n for c in cells} == {2, 8} and all(c.strategy == NAME for c in cells)
    problems = Problems()
    problems.load(cells)
    (work,) = pool_works(cells, {c.id for c in cells}, problems.for_cell, lambda pid: None, sweep="s")
    assert work.job.n_max == 8 and not work.job.score
    assert all(
        j.params == {"rule": "beta", "confidence": 0.95, "margin": 2, "min_samples": 1}
        for j in work.job.cells
    )
    result = run_pool_job(work.job, FakePolicy(0), None)
    by_cell = {c.id: c for c in cells}
    for cid, outs in result.outcomes.items():
        n = by_cell[cid].n
        assert all(1.0 <= o["generations"] <= n and 0.0 <= o["expected_correct"] <= 1.0 for o in outs)
        rows = cell_rows(by_cell[cid], outs, sweep="s", pool_id=work.uid, policy_params=1000, prm_params=0)
        table = to_table(rows, CELL_TYPES)
        assert table.schema.field("generations").type == CELL_TYPES["generations"]
        assert all(r["config.strategy.rule"] == "beta" for r in rows)
    big = next(cid for cid, c in by_cell.items() if c.n == 8)
    assert any(o["generations"] < 8 for o in result.outcomes[big]), "some problem must stop early"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("strategy.rule=betta", "strategy.rule"),
        ("strategy.confidence=1.5", "strategy.confidence"),
        ("strategy.confidence=0.5", "strategy.confidence"),
        ("strategy.margin=0", "strategy.margin"),
        ("strategy.min_samples=0", "strategy.min_samples"),
        ("strategy.min_samples=9", "strategy.min_samples"),
    ],
)
def test_bad_parameters_are_rejected_naming_the_field(override: str, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        expand([f"strategy={NAME}", "n=8", "prm=none", override])
    assert str(err.value).startswith(f"{field}:"), str(err.value)
    assert override.split("=")[1] in str(err.value)


def test_yaml_and_entry_point_line_exist() -> None:
    root = Path(__file__).resolve().parents[2]
    assert (root / "conf" / "strategy" / f"{NAME}.yaml").is_file()
    assert f'{NAME} = "tts.strategies.adaptive_majority:ENTRY"' in (root / "pyproject.toml").read_text()
