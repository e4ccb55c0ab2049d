"""The sample pool: N_max samples per problem, generated once and scored once, from which every N <= N_max of
every pool-based strategy (trait `pool_based`: majority vote, best-of-N, weighted best-of-N, ...) is derived.

Why: these strategies differ only in how they pick from the same samples, so a sweep over N and over
strategies needs one generate call and one PRM call per (policy, problem set, seed), not one per cell.
`select(pool, rule, n, aggregation)` uses the FIRST n samples, so budgets nest (the N = 4 answer is picked
from the samples the N = 8 answer also saw) and compute accounting scales with n: n generations, the first n
samples' tokens, the problem's prompt counted once (one request of n samples prefills it once), and the first
n samples' PRM tokens (none for a rule that reads no scores). A greedy pool (temperature 0) holds one completion
repeated N_max times: it is sampled, scored and charged once whatever n. Each strategy module supplies its `PoolRule` and
its expected-accuracy estimator; this module never names a strategy.

The expected accuracy at budget k over all k-subsets of the pool (each entry's `estimate`) comes from the exact
estimators in `tts.strategies.estimators`, documented there with formulas and references:
  pass_at_k(n, c, k)                        Chen et al. 2021, 1 - C(n-c, k) / C(n, k)
  expected_best_of_k(scores, correct, k)    exact order statistic of a random k-subset, ties averaged
  expected_majority_at_k(groups, correct, k)  exact (multivariate hypergeometric DP); majority_at_k_resampled:
                                            seeded resampling with a confidence interval
  expected_weighted_best_of_k(...)          exact enumeration of k-subsets when few, else seeded resampling
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tts.data.problem import Problem
from tts.engines.aggregation import aggregate
from tts.engines.protocols import Conversation, PolicyEngine, PRMScorer, ScoreRequest
from tts.grading import Extraction, extract_answer
from tts.strategies.base import Candidate, SamplingSettings, StrategyResult
from tts.strategies.estimators import (
    Estimate,
    expected_best_of_k,
    expected_majority_at_k,
    expected_weighted_best_of_k,
    majority_at_k_resampled,
    pass_at_k,
)
from tts.strategies.steps import split_steps
from tts.strategies.voting import answer_groups

__all__ = [
    "Estimate",
    "PoolRule",
    "ProblemPool",
    "build_pool",
    "expected_best_of_k",
    "expected_majority_at_k",
    "expected_weighted_best_of_k",
    "majority_at_k_resampled",
    "pass_at_k",
    "run_pool_strategy",
    "select",
]


@dataclass(frozen=True)
class ProblemPool:
    """The N_max samples of one problem, in sampling order, with their verifier scores.

    prompt_tokens / cached_prompt_tokens: the problem's one request (prefilled once for all samples).
    prm_tokens[i] / fallback[i]: tokens the PRM read for sample i; whether sample i's answer came from the
    last-number fallback. Empty tuples mean zeros / False.
    """

    problem_id: str
    candidates: tuple[Candidate, ...]
    prompt_tokens: int
    cached_prompt_tokens: int = 0
    prm_tokens: tuple[int, ...] = ()
    fallback: tuple[bool, ...] = ()
    seed: int = 0
    greedy: bool = False  # temperature 0: every sample is the one completion; a budget of n is charged once

    def __post_init__(self) -> None:
        n = len(self.candidates)
        if n == 0:
            raise ValueError(
                f"ProblemPool {self.problem_id!r}: no candidates; a pool needs at least one sample"
            )
        for name, default in (("prm_tokens", 0), ("fallback", False)):
            values = getattr(self, name)
            if not values:
                object.__setattr__(self, name, (default,) * n)
            elif len(values) != n:
                raise ValueError(
                    f"ProblemPool {self.problem_id!r}: {name} has {len(values)} values for {n} samples"
                )

    @property
    def n_max(self) -> int:
        return len(self.candidates)

    @property
    def answers(self) -> tuple[str | None, ...]:
        return tuple(c.answer for c in self.candidates)

    def scores(self, aggregation: str) -> tuple[float, ...]:
        """Every sample's solution score under `aggregation` (the pool keeps per-step scores, so any works)."""
        return tuple(aggregate(c.step_scores, aggregation) for c in self.candidates)


def build_pool(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n_max: int,
    sampling: SamplingSettings,
    seed: int,
    score: bool = True,
) -> list[ProblemPool]:
    """Sample n_max complete solutions per problem (ONE generate call for all problems), cut them into steps at
    `sampling.step_delimiter`, score every candidate (ONE PRM call; skipped when `score` is False, e.g. for
    majority vote) and extract answers. Returns one pool per problem, in input order."""
    if not isinstance(n_max, int) or n_max < 1:
        raise ValueError(f"n_max: invalid value {n_max!r}; must be a positive integer (the pool size)")
    if not problems:
        return []
    greedy = sampling.temperature == 0  # one completion repeated: sampled once, scored once, charged once
    requests = [sampling.request(Conversation(p.question), n=1 if greedy else n_max) for p in problems]
    generations = policy.generate(requests)
    if len(generations) != len(problems):
        raise RuntimeError(f"policy returned {len(generations)} generations for {len(problems)} requests")
    if greedy:  # the pool still holds n_max (identical) samples, so every budget N <= n_max reads it
        generations = [replace(g, completions=g.completions[:1] * n_max) for g in generations]
    steps = [[split_steps(c.text, sampling.step_delimiter) for c in g.completions] for g in generations]
    to_score = [
        (i, j) for i, per in enumerate(steps) for j, s in enumerate(per) if s and score and not (greedy and j)
    ]
    scored = (
        prm.score([ScoreRequest(problems[i].question, steps[i][j]) for i, j in to_score]) if to_score else []
    )
    if len(scored) != len(to_score):
        raise RuntimeError(f"PRM returned {len(scored)} score lists for {len(to_score)} requests")
    by_sample = dict(zip(to_score, scored, strict=True))
    pools = []
    for i, (problem, gen) in enumerate(zip(problems, generations, strict=True)):
        candidates, prm_tokens, fallback = [], [], []
        extractions = _extract_answers(problem, [c.text for c in gen.completions])
        for j, completion in enumerate(gen.completions):
            result = by_sample.get((i, 0 if greedy else j))
            step_scores = tuple(result.scores) if result else ()
            extraction = extractions[j]
            candidates.append(
                Candidate(
                    text=completion.text,
                    steps=steps[i][j],
                    step_scores=step_scores,
                    score=aggregate(step_scores, sampling.aggregation),
                    answer=extraction.answer,
                    finish_reason=completion.finish_reason,
                    tokens_out=completion.tokens_out,
                )
            )
            prm_tokens.append(result.computed_tokens if result and not (greedy and j) else 0)
            fallback.append(extraction.fallback)
        pools.append(
            ProblemPool(
                problem_id=problem.id,
                candidates=tuple(candidates),
                prompt_tokens=gen.prompt_tokens,
                cached_prompt_tokens=gen.cached_prompt_tokens,
                prm_tokens=tuple(prm_tokens),
                fallback=tuple(fallback),
                seed=seed,
                greedy=greedy,
            )
        )
    return pools


def _extract_answers(problem: Problem, texts: Sequence[str]) -> list[Extraction]:
    """Math: each text's final answer. Code: each program's execution signature on the problem's public
    examples (tts.grading.code), so majority vote groups programs that behave alike."""
    if problem.kind == "code":
        from tts.grading.code import execution_answers

        return execution_answers(problem, texts)
    return [extract_answer(t) for t in texts]


@dataclass(frozen=True)
class PoolRule:
    """How a pool-based strategy answers from samples: the pieces its module plugs into `select`.

    choose(groups, scores) -> index or None: the chosen sample among the first n (None: no sample has an answer).
    fallback(scores) -> index: the sample whose text is reported when `choose` gives None.
    uses_scores: the rule reads PRM scores (its PRM tokens are charged; the pool must be scored).
    uses_groups: the rule reads answer classes (votes and distinct answers are reported in `extra`).
    """

    choose: Callable[[Sequence[int | None], Sequence[float]], int | None]
    fallback: Callable[[Sequence[float]], int]
    uses_scores: bool
    uses_groups: bool


def check_budget(pool: ProblemPool, n: int) -> None:
    if not isinstance(n, int) or not 1 <= n <= pool.n_max:
        raise ValueError(
            f"n: invalid value {n!r}; must be in [1, {pool.n_max}] (the pool of {pool.problem_id!r})"
        )


def select(pool: ProblemPool, rule: PoolRule, n: int, aggregation: str) -> StrategyResult:
    """Apply `rule` to the FIRST n samples of the pool, ranking by `aggregation` of the step scores.

    Accounting: n generations, the first n samples' tokens, the prompt once, and the first n samples' PRM
    tokens when the rule reads scores."""
    check_budget(pool, n)
    first = pool.candidates[:n]
    charged = first[:1] if pool.greedy else first  # what was actually computed for these n samples
    scores = pool.scores(aggregation)[:n]
    groups = answer_groups(pool.answers)[:n] if rule.uses_groups else (None,) * n
    chosen = rule.choose(groups, scores)
    if chosen is None:  # no sample has an answer: report the rule's fallback sample's text
        chosen = rule.fallback(scores)
    pick = first[chosen]
    extra: dict[str, object] = {"chosen": chosen, "n_max": pool.n_max}
    if rule.uses_groups:
        extra["votes"] = sum(g == groups[chosen] for g in groups) if groups[chosen] is not None else 0
        extra["distinct_answers"] = len({g for g in groups if g is not None})
    return StrategyResult(
        problem_id=pool.problem_id,
        answer=pick.answer,
        text=pick.text,
        generations=len(charged),
        tokens_in=pool.prompt_tokens,
        tokens_out=sum(c.tokens_out for c in charged),
        tokens_cached=pool.cached_prompt_tokens,
        prm_tokens=sum(pool.prm_tokens[:n]) if rule.uses_scores else 0,
        truncated=pick.finish_reason == "length",
        fallback_extraction=pool.fallback[chosen],
        candidates=tuple(replace(c, score=s) for c, s in zip(first, scores, strict=True)),
        extra=extra,
    )


def check_correct(pool: ProblemPool, k: int, correct: Sequence[bool]) -> None:
    check_budget(pool, k)
    if len(correct) != pool.n_max:
        raise ValueError(f"correct: {len(correct)} values for a pool of {pool.n_max}; grade every sample")


def run_pool_strategy(
    name: str,
    rule: PoolRule,
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    params: dict[str, object],
) -> list[StrategyResult]:
    """A pool strategy run on its own: a pool of exactly n samples, then `select` at n."""
    if params:
        raise TypeError(f"{name}: unexpected options {sorted(params)}; it takes none (only n and sampling)")
    pools = build_pool(problems, policy, prm, n_max=n, sampling=sampling, seed=seed, score=rule.uses_scores)
    return [select(p, rule, n, sampling.aggregation) for p in pools]
