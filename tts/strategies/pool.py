"""The sample pool: N_max samples per problem, generated once and scored once, from which every N <= N_max of
majority vote, best-of-N and weighted best-of-N is derived.

Why: these three strategies differ only in how they pick from the same samples, so a sweep over N and over
strategies needs one generate call and one PRM call per (policy, problem set, seed), not one per cell.
`select(pool, strategy, n, aggregation)` uses the FIRST n samples, so budgets nest (the N = 4 answer is picked
from the samples the N = 8 answer also saw) and compute accounting scales with n: n generations, the first n
samples' tokens, the problem's prompt counted once (one request of n samples prefills it once), and the first
n samples' PRM tokens (none for majority vote, which needs no verifier).

The expected accuracy at budget k over all k-subsets of the pool (`expected_correct`) comes from the exact
estimators in `tts.strategies.estimators`, documented there with formulas and references:
  pass_at_k(n, c, k)                        Chen et al. 2021, 1 - C(n-c, k) / C(n, k)
  expected_best_of_k(scores, correct, k)    exact order statistic of a random k-subset, ties averaged
  expected_majority_at_k(groups, correct, k)  exact (multivariate hypergeometric DP); majority_at_k_resampled:
                                            seeded resampling with a confidence interval
  expected_weighted_best_of_k(...)          exact enumeration of k-subsets when few, else seeded resampling
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tts.data.problem import Problem
from tts.engines.aggregation import aggregate
from tts.engines.protocols import GenerationRequest, PolicyEngine, PRMScorer, ScoreRequest
from tts.grading import Extraction, extract_answer
from tts.strategies import POOL_STRATEGIES
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
from tts.strategies.voting import answer_groups, best_choice, majority_choice, weighted_choice

__all__ = [
    "POOL_STRATEGIES",
    "Estimate",
    "ProblemPool",
    "build_pool",
    "expected_best_of_k",
    "expected_correct",
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
    requests = [
        GenerationRequest(
            prompt=policy.build_prompt(p.question),
            n=n_max,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
        )
        for p in problems
    ]
    generations = policy.generate(requests)
    if len(generations) != len(problems):
        raise RuntimeError(f"policy returned {len(generations)} generations for {len(problems)} requests")
    steps = [[split_steps(c.text, sampling.step_delimiter) for c in g.completions] for g in generations]
    to_score = [(i, j) for i, per in enumerate(steps) for j, s in enumerate(per) if s and score]
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
            result = by_sample.get((i, j))
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
            prm_tokens.append(result.tokens if result else 0)
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


def _check(pool: ProblemPool, strategy: str, n: int) -> None:
    if strategy not in POOL_STRATEGIES:
        raise ValueError(
            f"strategy: invalid value {strategy!r}; pool strategies are {', '.join(POOL_STRATEGIES)}"
        )
    if not isinstance(n, int) or not 1 <= n <= pool.n_max:
        raise ValueError(
            f"n: invalid value {n!r}; must be in [1, {pool.n_max}] (the pool of {pool.problem_id!r})"
        )


def select(pool: ProblemPool, strategy: str, n: int, aggregation: str) -> StrategyResult:
    """Apply `strategy` to the FIRST n samples of the pool, ranking by `aggregation` of the step scores."""
    _check(pool, strategy, n)
    first = pool.candidates[:n]
    scores = pool.scores(aggregation)[:n]
    groups = answer_groups(pool.answers)[:n] if strategy != "best_of_n" else (None,) * n
    if strategy == "best_of_n":
        chosen = best_choice(scores)
    elif strategy == "majority_vote":
        chosen = majority_choice(groups)
    else:
        chosen = weighted_choice(groups, scores)
    if chosen is None:  # no sample has an answer: report the best-scored (majority: the first) sample's text
        chosen = 0 if strategy == "majority_vote" else best_choice(scores)
    pick = first[chosen]
    extra: dict[str, object] = {"chosen": chosen, "n_max": pool.n_max}
    if strategy != "best_of_n":
        extra["votes"] = sum(g == groups[chosen] for g in groups) if groups[chosen] is not None else 0
        extra["distinct_answers"] = len({g for g in groups if g is not None})
    return StrategyResult(
        problem_id=pool.problem_id,
        answer=pick.answer,
        text=pick.text,
        generations=n,
        tokens_in=pool.prompt_tokens,
        tokens_out=sum(c.tokens_out for c in first),
        tokens_cached=pool.cached_prompt_tokens,
        prm_tokens=0 if strategy == "majority_vote" else sum(pool.prm_tokens[:n]),
        truncated=pick.finish_reason == "length",
        fallback_extraction=pool.fallback[chosen],
        candidates=tuple(replace(c, score=s) for c, s in zip(first, scores, strict=True)),
        extra=extra,
    )


def expected_correct(
    pool: ProblemPool,
    strategy: str,
    k: int,
    aggregation: str,
    correct: Sequence[bool],
    *,
    seed: int = 0,
    samples: int = 2000,
) -> Estimate:
    """Expected accuracy of `strategy` at budget k over random k-subsets of the whole pool. `correct[i]` grades
    sample i (the runtime grades, strategies never see references). Exact for best-of-N and majority vote;
    weighted best-of-N is exact when the subsets are few enough to enumerate, else resampled with `seed`."""
    _check(pool, strategy, k)
    if len(correct) != pool.n_max:
        raise ValueError(f"correct: {len(correct)} values for a pool of {pool.n_max}; grade every sample")
    if strategy == "best_of_n":
        value = expected_best_of_k(pool.scores(aggregation), correct, k)
        return Estimate(value, value, value, "exact")
    groups = answer_groups(pool.answers)
    if strategy == "majority_vote":
        value = expected_majority_at_k(groups, correct, k)
        return Estimate(value, value, value, "exact")
    return expected_weighted_best_of_k(
        groups, pool.scores(aggregation), correct, k, seed=seed, samples=samples
    )


def run_pool_strategy(
    strategy: str,
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
        raise TypeError(
            f"{strategy}: unexpected options {sorted(params)}; it takes none (only n and sampling)"
        )
    pools = build_pool(
        problems, policy, prm, n_max=n, sampling=sampling, seed=seed, score=strategy != "majority_vote"
    )
    return [select(p, strategy, n, sampling.aggregation) for p in pools]
