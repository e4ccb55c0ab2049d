"""Sequential revision, as a plugin strategy that lives outside `tts/` (the worked example of
docs/add_a_strategy.md).

The policy writes a first solution; each later generation sees its earlier attempts and a fixed feedback turn
in the conversation ("Review your solution ...") and writes a revised one (Snell et al. 2024 §6 revise
sequentially; here with a base model, so revisions are what the model makes of the request). N = total
attempts: one first attempt plus N - 1 revisions, all problems advancing in lockstep (one generate call per
round). The answer is the last attempt's (`final: last`) or the most common one over all attempts
(`final: majority`, Snell's sequential majority). No verifier is needed.

Declared once, in pyproject.toml beside this file (`revise = "tts_revise:ENTRY"` in the `tts.strategies` entry
points); its schema becomes `strategy=revise` with no YAML. Install it next to tts and use it:

    pip install -e examples/revise
    tts sweep strategy=revise strategy.final=majority n=1,2,4 prm=none
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tts.data.problem import Problem
from tts.engines.protocols import Conversation, Message, PolicyEngine, PRMScorer
from tts.grading import extract_answer
from tts.schemas import ConfigError, StrategyConfig
from tts.strategies.base import Candidate, SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.voting import answer_groups, majority_choice

NAME = "revise"
FINALS = ("last", "majority")


@dataclass
class ReviseConfig(StrategyConfig):
    name: str = NAME
    feedback: str = "Review your solution step by step, fix any mistake, and write the corrected solution."
    final: str = "last"  # last | majority: which attempt answers

    def check(self, n: int) -> None:
        super().check(n)
        if self.final not in FINALS:
            raise ConfigError(f"strategy.final: invalid value {self.final!r}; allowed: {', '.join(FINALS)}")
        if not self.feedback.strip():
            raise ConfigError("strategy.feedback: invalid value ''; give the feedback turn's text")


def run(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    feedback: str = ReviseConfig.feedback,
    final: str = "last",
) -> list[StrategyResult]:
    """N attempts per problem, each revising the previous ones (their text is in the conversation)."""
    conversations = [Conversation(p.question) for p in problems]
    attempts: list[list[Candidate]] = [[] for _ in problems]
    tokens_in = [0] * len(problems)
    tokens_cached = [0] * len(problems)
    for _ in range(n):
        requests = [sampling.request(c) for c in conversations]
        for i, gen in enumerate(policy.generate(requests)):
            done = gen.completions[0]
            tokens_in[i] += gen.prompt_tokens
            tokens_cached[i] += gen.cached_prompt_tokens
            answer = extract_answer(done.text).answer
            attempts[i].append(
                Candidate(done.text, (done.text,), (), 0.0, answer, done.finish_reason, done.tokens_out)
            )
            turns = (Message("assistant", done.text), Message("user", feedback))
            conversations[i] = Conversation(problems[i].question, conversations[i].history + turns)
    results = []
    for i, problem in enumerate(problems):
        mine = attempts[i]
        pick = len(mine) - 1
        if final == "majority":
            chosen = majority_choice(answer_groups([c.answer for c in mine]))
            pick = pick if chosen is None else chosen
        best = mine[pick]
        results.append(
            StrategyResult(
                problem_id=problem.id,
                answer=best.answer,
                text=best.text,
                generations=len(mine),
                tokens_in=tokens_in[i],
                tokens_out=sum(c.tokens_out for c in mine),
                tokens_cached=tokens_cached[i],
                truncated=best.finish_reason == "length",
                fallback_extraction=extract_answer(best.text).fallback,
                candidates=tuple(mine),
                extra={"chosen": pick},
            )
        )
    return results


ENTRY = StrategyEntry(name=NAME, schema=ReviseConfig, run=run, traits=Traits(sequential=True))
