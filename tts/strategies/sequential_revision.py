"""Sequential revisions mixed with parallel sampling (Snell et al. 2024, §6 "Refining the proposal
distribution"): P parallel chains, each making L = N / P attempts, where attempt i of a chain sees the last k
earlier attempts of that chain in the conversation, each followed by a revision instruction, and writes a
revised solution.

Why a ratio: Snell's finding is that the compute-optimal split of a fixed budget N between sequential revisions
(L) and parallel chains (P) depends on difficulty: easy problems want mostly revisions, hard ones a mix. So
`parallel` is swept with N fixed and the analysis reads the sequential/parallel ratio L/P of every cell
(tts.analysis.revisions). P = N is plain parallel sampling; P = 1 is one chain of N attempts.

The conversation of attempt i (i = 1..L) of a chain, as the policy engine renders it (tts.engines.protocols):

    user: <question>   (then, for each of the last min(k, i-1) attempts a of the chain, oldest first:)
    assistant: <a>     user: <instruction>

(`revision_history` builds those turns; the zoo's revision-capable policy is trained on exactly them.) With
k >= L - 1 each round's prompt extends the previous round's, so the engine's prefix cache serves it; a window
k < L - 1 drops the oldest attempt and the prompt is prefilled anew from there.

Final answer, from the P x L attempts (every attempt is a candidate, listed chain by chain and in attempt order,
so candidate i is attempt i % L of chain i // L, in the stored candidate_* columns too; `extra["chains"]` says
the same per candidate), by the rule `final_selection`: `weighted` (PRM-weighted vote, Snell's best-of-N
weighted; the default), `argmax` (the best PRM score), or `majority` (the most common answer, no verifier),
applied as `selection_scope` says:

  hierarchical  (the default) Snell et al. §6's selection for revisions: the rule picks one attempt within
                each chain, then the same rule picks among the chains' picks, each with its own score
                (`hierarchical_choice`). Chains [(5, .9), (7, .5), (7, .5)] and [(9, .7), (5, .6)] (answer,
                score), weighted: chain 1 picks 7 (1.0 against .9) with its attempt's score .5, chain 2 picks 9
                (.7), and across chains 9 (.7) beats 7 (.5): the answer is 9.
  flat          the rule over all P x L attempts at once (this module's rule before it followed Snell): the
                same chains give 5 (weighted 1.5 against 1.0 and .7).

Attempts are scored by the PRM only when the rule reads scores. (Snell et al. publish no code: the conformance
test traces the example above from the paper's description; tests/conformance/test_snell_revisions.py.)

Lockstep: one generate call per round for every chain of every problem (round 1 is one request of n = P per
problem, the chains' shared first prompt) and, when scoring, one PRM call per round for the new attempts.
Budget: generations = P x L = N exactly; tokens as the engine reported them (prompt, cached, generated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tts.data.problem import Problem
from tts.engines.aggregation import aggregate
from tts.engines.protocols import (
    Conversation,
    Message,
    PolicyEngine,
    PRMScorer,
    ScoreRequest,
)
from tts.grading import extract_answer
from tts.schemas import ConfigError, StrategyConfig
from tts.strategies.base import Candidate, SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.steps import split_steps
from tts.strategies.tree import check_positive_int
from tts.strategies.voting import FINAL_SELECTIONS, final_choice

NAME = "sequential_revision"
# The user turn after each earlier attempt. Short on purpose: the zoo's policies read one token per character.
INSTRUCTION = "Check each step of your solution, fix any mistake and write the corrected solution."
HISTORY = 4  # Snell's revision model sees up to four earlier attempts
# selection_scope: within each chain, then across chains | over all attempts at once
SCOPES = ("hierarchical", "flat")


@dataclass
class SequentialRevisionConfig(StrategyConfig):
    name: str = NAME
    parallel: int = 1  # P chains; each makes n / P attempts (the sequential length L)
    history: int = HISTORY  # k: earlier attempts of its chain that an attempt sees (0: independent samples)
    instruction: str = INSTRUCTION
    final_selection: str = "weighted"  # weighted | argmax | majority: the rule (FINAL_SELECTIONS)
    selection_scope: str = "hierarchical"  # hierarchical (within chains, then across: Snell) | flat (SCOPES)

    def check(self, n: int) -> None:
        super().check(n)
        check_positive_int("parallel", self.parallel)
        if n % self.parallel:
            raise ConfigError(
                f"strategy.parallel: invalid value {self.parallel!r}; n={n} must be a multiple of it "
                f"(each of the {self.parallel} chains makes n / parallel attempts); choose a divisor of n"
            )
        if isinstance(self.history, bool) or not isinstance(self.history, int) or self.history < 0:
            raise ConfigError(f"strategy.history: invalid value {self.history!r}; must be an integer >= 0")
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise ConfigError(
                f"strategy.instruction: invalid value {self.instruction!r}; give the revision request's text"
            )
        if self.final_selection not in FINAL_SELECTIONS:
            raise ConfigError(
                f"strategy.final_selection: invalid value {self.final_selection!r}; "
                f"allowed: {', '.join(FINAL_SELECTIONS)}"
            )
        if self.selection_scope not in SCOPES:
            raise ConfigError(
                f"strategy.selection_scope: invalid value {self.selection_scope!r}; allowed: {', '.join(SCOPES)}"
            )

    def verifier_needed(self) -> bool:
        return self.final_selection != "majority"


def revision_history(attempts: Sequence[str], history: int, instruction: str) -> tuple[Message, ...]:
    """The turns after the question for the next attempt: the last `history` attempts, oldest first, each
    followed by the revision instruction."""
    kept = list(attempts)[-history:] if history > 0 else []
    return tuple(m for a in kept for m in (Message("assistant", a), Message("user", instruction)))


def hierarchical_choice(
    answers: Sequence[str | None], scores: Sequence[float], chains: Sequence[int], selection: str
) -> int:
    """Index of the attempt Snell's hierarchical selection picks: `selection` (FINAL_SELECTIONS, the shared rule
    tts.strategies.voting.final_choice) within each chain (`chains[i]`: attempt i's chain), then `selection`
    among the chains' picks, each pick with its own answer and score (chains in order of first appearance)."""
    if not (len(answers) == len(scores) == len(chains)) or not answers:
        raise ValueError(
            f"answers, scores, chains: {len(answers)}, {len(scores)}, {len(chains)} values; give one of each "
            "per attempt, at least one"
        )
    members: dict[int, list[int]] = {}
    for i, chain in enumerate(chains):
        members.setdefault(chain, []).append(i)
    picks = [
        idx[final_choice([answers[i] for i in idx], [scores[i] for i in idx], selection)]
        for idx in members.values()
    ]
    return picks[final_choice([answers[i] for i in picks], [scores[i] for i in picks], selection)]


def sequential_ratio(n: int, parallel: int) -> float:
    """Snell's sequential/parallel ratio L / P of a cell (L = n / P attempts per chain)."""
    return (n / parallel) / parallel


@dataclass
class _Chain:
    problem: int
    attempts: list[Candidate]


def run(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    parallel: int = 1,
    history: int = HISTORY,
    instruction: str = INSTRUCTION,
    final_selection: str = "weighted",
    selection_scope: str = "hierarchical",
) -> list[StrategyResult]:
    """P = parallel chains of n / P attempts per problem, all advancing in lockstep. `seed` is accepted for the
    strategy signature; sampling randomness is the engine's."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: invalid value {n!r}; must be a positive integer")
    SequentialRevisionConfig(
        parallel=parallel,
        history=history,
        instruction=instruction,
        final_selection=final_selection,
        selection_scope=selection_scope,
    ).check(n)
    rounds = n // parallel
    score = final_selection != "majority"
    chains = [_Chain(i, []) for i in range(len(problems)) for _ in range(parallel)]
    tokens_in = [0] * len(problems)
    tokens_cached = [0] * len(problems)
    prm_tokens = [0] * len(problems)
    calls = 0
    for r in range(rounds):
        if r == 0:  # the chains of a problem share their first prompt: one request of n = P
            requests = [sampling.request(Conversation(p.question), n=parallel) for p in problems]
            owners = [[c for c in chains if c.problem == i] for i in range(len(problems))]
        else:
            requests = [
                sampling.request(
                    Conversation(
                        problems[c.problem].question,
                        revision_history([a.text for a in c.attempts], history, instruction),
                    ),
                    salt=("chain", k),  # chains whose attempts coincide still draw independently
                )
                for k, c in enumerate(chains)
            ]
            owners = [[c] for c in chains]
        generations = policy.generate(requests)
        calls += 1
        if len(generations) != len(requests):
            raise RuntimeError(f"policy returned {len(generations)} generations for {len(requests)} requests")
        new: list[tuple[_Chain, Candidate]] = []
        for gen, group in zip(generations, owners, strict=True):
            problem = group[0].problem
            tokens_in[problem] += gen.prompt_tokens
            tokens_cached[problem] += gen.cached_prompt_tokens
            for chain, done in zip(group, gen.completions, strict=True):
                text = done.text
                new.append(
                    (
                        chain,
                        Candidate(
                            text=text,
                            steps=split_steps(text, sampling.step_delimiter) if text.strip() else (),
                            step_scores=(),
                            score=0.0,
                            answer=extract_answer(text).answer,
                            finish_reason=done.finish_reason,
                            tokens_out=done.tokens_out,
                        ),
                    )
                )
        if score:
            _score(new, problems, prm, prm_tokens, sampling)
        for chain, candidate in new:
            chain.attempts.append(candidate)
    results = []
    for i, problem in enumerate(problems):
        mine = [c for c in chains if c.problem == i]
        candidates = [a for c in mine for a in c.attempts]
        where = [[k, j] for k, c in enumerate(mine) for j in range(len(c.attempts))]
        answers, scores = [c.answer for c in candidates], [c.score for c in candidates]
        if selection_scope == "hierarchical":
            chosen = hierarchical_choice(answers, scores, [k for k, _ in where], final_selection)
        else:
            chosen = final_choice(answers, scores, final_selection)
        best = candidates[chosen]
        results.append(
            StrategyResult(
                problem_id=problem.id,
                answer=best.answer,
                text=best.text,
                generations=len(candidates),
                tokens_in=tokens_in[i],
                tokens_out=sum(c.tokens_out for c in candidates),
                tokens_cached=tokens_cached[i],
                prm_tokens=prm_tokens[i],
                truncated=best.finish_reason == "length",
                fallback_extraction=extract_answer(best.text).fallback,
                candidates=tuple(candidates),
                extra={
                    "chosen": chosen,
                    "chains": where,
                    "parallel": parallel,
                    "attempts_per_chain": rounds,
                    "generate_calls": calls,
                    "final_selection": final_selection,
                    "selection_scope": selection_scope,
                },
            )
        )
    return results


def _score(
    new: list[tuple[_Chain, Candidate]],
    problems: Sequence[Problem],
    prm: PRMScorer,
    prm_tokens: list[int],
    sampling: SamplingSettings,
) -> None:
    """ONE PRM call for this round's attempts (an attempt without steps scores 0 and costs nothing)."""
    todo = [k for k, (_, c) in enumerate(new) if c.steps]
    results = prm.score([ScoreRequest(problems[new[k][0].problem].question, new[k][1].steps) for k in todo])
    if len(results) != len(todo):
        raise RuntimeError(f"PRM returned {len(results)} score lists for {len(todo)} requests")
    for k, scores in zip(todo, results, strict=True):
        chain, c = new[k]
        prm_tokens[chain.problem] += scores.computed_tokens
        step_scores = tuple(scores.scores)
        new[k] = (
            chain,
            Candidate(
                c.text,
                c.steps,
                step_scores,
                aggregate(step_scores, sampling.aggregation),
                c.answer,
                c.finish_reason,
                c.tokens_out,
            ),
        )


ENTRY = StrategyEntry(
    name=NAME,
    schema=SequentialRevisionConfig,
    run=run,
    traits=Traits(sequential=True),
)
