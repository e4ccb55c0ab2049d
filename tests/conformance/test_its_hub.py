"""Particle filtering against its_hub itself (Red-Hat-AI-Innovation-Team/its_hub, the `its-hub` test extra,
1.2.0): its_hub/core/algorithms/particle_gibbs.py `ParticleFiltering` (= `ParticleGibbs.ainfer` with one
iteration and no reference particles) and ours (tts/strategies/particle_filtering.py) run on the SAME fake
policy and PRM (tts.testing.fake_engines, behind its_hub's `AbstractLanguageModel` / `AbstractProcessRewardModel`
interfaces), and their answer distributions over 500 seeds are compared with a chi-square test of homogeneity
(scipy's chi2 when installed, else the closed form below).

What makes the two comparable, sample for sample:
- the policy: FakePolicy's samples are a pure function of (seed, question, partial solution, sample index j).
  Our search asks the copies of one parent with one request of n = copies (j = 0, 1, ...); the adapter below
  gives the k-th its_hub particle on a given partial solution within one step the sample j = k, so step 1 (N
  particles on the empty solution) draws the same N steps on both sides, and later steps the same distribution.
- the PRM: its_hub's PRM returns one score per partial response; the adapter splits the response into steps
  at "\\n\\n" (its `_post_process(steps, stopped=True)` joins them with the step token) and returns the last
  step's score, which is our ranking score with aggregation "last". Scores are squashed into [0.45, 0.55]
  (`FlatPRM`), so weights are close to uniform and resampling really loses particles: the regime where the
  final resampling changes answers.
- the rest is its_hub's code: weights softmax(logit(score)) (`_inv_sigmoid`, `_softmax`), multinomial resampling
  (`random.choices`) after every propagation while any particle runs, the step that stops the last particle
  included, and the answer the argmax of the final (resampled) population's log weights.

Two scenarios, pooled as categories: "stepwise" (the question "3 + 4": a claim step, then the answer step, so
one intermediate resampling and the final one) and "whole" (one step holds the whole solution: ours with
max_steps = 1, its_hub with a step token the fake never writes; the final resampling is the only one). The
decisive comparison is over (scenario, answer right or wrong): the final resampling moves mass between right
and wrong (argmax keeps the right answer whenever one particle has it; resampling can lose it), while the wrong
answers spread over six values that would only dilute the test. The full (scenario, answer) table is compared
too. Measured on seed blocks 0-499 .. 2000-2499: right/wrong p 0.76-0.99 against its_hub, 9e-6-0.002 with the
final resampling off; full table p 0.74-0.999.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

its_hub = pytest.importorskip("its_hub")
from its_hub.api import AbstractLanguageModel  # noqa: E402
from its_hub.api.reward_models.prm import AbstractProcessRewardModel  # noqa: E402
from its_hub.core.algorithms.particle_gibbs import ParticleFiltering  # noqa: E402
from its_hub.core.lms.step_generation import StepGeneration  # noqa: E402

from tts.data.problem import Problem  # noqa: E402
from tts.engines.aggregation import aggregate  # noqa: E402
from tts.engines.protocols import Conversation, GenerationRequest, ScoreRequest, StepScores  # noqa: E402
from tts.grading import extract_answer  # noqa: E402
from tts.strategies.base import SamplingSettings  # noqa: E402
from tts.strategies.particle_filtering import run as particle_filtering  # noqa: E402
from tts.strategies.steps import split_steps  # noqa: E402
from tts.testing.fake_engines import FakePolicy, FakePRM  # noqa: E402

SEEDS = range(500)
N = 4  # particles
ERROR_RATE = 0.75  # a claim is wrong this often: the right answer is rarely in the majority
DELIMITER = "\n\n"
NEVER = "\n\n\n\n"  # a step token the fake policy never writes: its_hub's step is then the whole solution
PROBLEM = Problem(id="pf", question="3 + 4", answer="7", dataset="t")
SAMPLING = SamplingSettings(temperature=0.8, max_tokens=64, step_max_tokens=16, aggregation="last")


class FlatPRM(FakePRM):
    """FakePRM's checking scores squashed into [0.45, 0.55]: right claims still score above wrong ones, but the
    particle weights stay within a factor of 1.5 of each other."""

    def score(self, requests):
        return [
            StepScores(tuple(0.45 + 0.1 * x for x in r.scores), r.tokens, r.cached_tokens)
            for r in super().score(requests)
        ]


class HubPolicy(AbstractLanguageModel):
    """its_hub's language-model interface over FakePolicy: the k-th ask of a partial solution within one batch
    gets the fake's sample j = k (as one request of n > 1 would)."""

    def __init__(self, policy: FakePolicy) -> None:
        self.policy = policy

    async def agenerate(self, messages, stop=None, **kwargs):
        asked: Counter[str] = Counter()
        out = []
        for conversation in messages:
            question = conversation[0].content
            partial = conversation[1].content if len(conversation) > 1 else ""
            j = asked[partial]
            asked[partial] += 1
            request = GenerationRequest(
                Conversation(question, partial=partial), n=j + 1, max_tokens=64, stop=(stop,) if stop else ()
            )
            [generation] = self.policy.generate([request])
            out.append({"role": "assistant", "content": generation.completions[j].text})
        return out


class HubPRM(AbstractProcessRewardModel):
    """its_hub's PRM interface over a tts PRM: a partial response's score is its last step's."""

    def __init__(self, prm: FakePRM) -> None:
        self.prm = prm

    def score(self, prompt_or_messages, steps):  # its_hub's ParticleFiltering only awaits ascore
        raise NotImplementedError

    async def ascore(self, prompt_or_messages, steps):
        scored = self.prm.score([ScoreRequest(prompt_or_messages, split_steps(r, DELIMITER)) for r in steps])
        return [aggregate(s.scores, "last") for s in scored]


def ours(seed: int, whole: bool, final_resampling: bool = True) -> str | None:
    [result] = particle_filtering(
        [PROBLEM],
        FakePolicy(seed, error_rate=ERROR_RATE),
        FlatPRM(seed, noise=0.5),
        n=N,
        sampling=SAMPLING,
        seed=seed,
        max_steps=1 if whole else 40,
        final_resampling=final_resampling,
    )
    return result.answer


def hub(seed: int, whole: bool) -> str | None:
    random.seed(1_000_003 + seed)  # its_hub resamples with Python's global generator
    steps = StepGeneration(max_steps=40, step_token=NEVER if whole else DELIMITER, stop_token="boxed")
    pf = ParticleFiltering(steps, HubPRM(FlatPRM(seed, noise=0.5)))
    response = pf.infer(HubPolicy(FakePolicy(seed, error_rate=ERROR_RATE)), PROBLEM.question, budget=N)
    return extract_answer(response["content"]).answer


def chi_square_p(stat: float, dof: int) -> float:
    """P(chi-square with `dof` degrees of freedom >= stat): scipy's chi2.sf when installed, else the closed form
    of the regularized upper incomplete gamma Q(dof / 2, stat / 2) for integer and half-integer arguments."""
    try:
        from scipy.stats import chi2
    except ImportError:
        half = stat / 2
        if dof % 2 == 0:
            return math.exp(-half) * sum(half**i / math.factorial(i) for i in range(dof // 2))
        tail = sum(half ** (i - 0.5) / math.gamma(i + 0.5) for i in range(1, (dof - 1) // 2 + 1))
        return math.erfc(math.sqrt(half)) + math.exp(-half) * tail
    return float(chi2.sf(stat, dof))


def homogeneity_p(a: Counter, b: Counter) -> float:
    """Chi-square test that two samples come from one categorical distribution (categories whose expected
    count is below 5 in either sample are pooled into one)."""
    keys = sorted(set(a) | set(b), key=str)
    table = np.array([[a[k] for k in keys], [b[k] for k in keys]], dtype=float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    rare = (expected < 5).any(0)
    if rare.any():
        table = np.column_stack([table[:, ~rare], table[:, rare].sum(1)])
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return chi_square_p(stat, table.shape[1] - 1)


def answers(sample) -> Counter:
    """(scenario, answer) counts over SEEDS."""
    return Counter((whole, sample(seed, whole)) for whole in (False, True) for seed in SEEDS)


def right_or_wrong(counts: Counter) -> Counter:
    """(scenario, answer is right) counts."""
    out: Counter = Counter()
    for (whole, answer), k in counts.items():
        out[(whole, answer == PROBLEM.answer)] += k
    return out


def test_chi_square_p_matches_known_quantiles():
    for dof, q999 in ((1, 10.828), (2, 13.816), (3, 16.266), (6, 22.458), (7, 24.322)):
        assert chi_square_p(q999, dof) == pytest.approx(0.001, rel=2e-3)
    assert chi_square_p(0.0, 4) == pytest.approx(1.0)


def test_particle_filtering_answers_agree_with_its_hub_and_not_without_the_final_resampling():
    """its_hub vs ours over 500 seeds x 2 scenarios: homogeneous (p > 0.01), right/wrong and answer by answer.
    With our final resampling off (the rule before: the final population kept as it is, so its best particle
    is never lost) the same right/wrong comparison rejects (p < 0.01): the final resampling is what makes the
    two agree."""
    reference, on = answers(hub), answers(ours)
    assert homogeneity_p(right_or_wrong(reference), right_or_wrong(on)) > 0.01
    assert homogeneity_p(reference, on) > 0.01
    off = answers(lambda seed, whole: ours(seed, whole, final_resampling=False))
    assert homogeneity_p(right_or_wrong(reference), right_or_wrong(off)) < 0.01


def test_one_step_draws_the_same_samples_on_both_sides():
    """The adapter's sample indices mirror our batching: with the whole solution in one step both sides draw the
    same four solutions (so the two distributions differ only by the resampling draws)."""
    seen_ours, seen_hub = [], []

    class Recording(FakePolicy):
        def generate(self, requests):
            out = super().generate(requests)
            seen_ours.extend(c.text for g in out for c in g.completions)
            return out

    class RecordingHub(HubPolicy):
        async def agenerate(self, messages, stop=None, **kwargs):
            out = await super().agenerate(messages, stop, **kwargs)
            seen_hub.extend(m["content"] for m in out)
            return out

    particle_filtering(
        [PROBLEM],
        Recording(3, error_rate=ERROR_RATE),
        FlatPRM(3, noise=0.5),
        n=N,
        sampling=SAMPLING,
        seed=3,
        max_steps=1,
    )
    steps = StepGeneration(max_steps=40, step_token=NEVER, stop_token="boxed")
    ParticleFiltering(steps, HubPRM(FlatPRM(3, noise=0.5))).infer(
        RecordingHub(FakePolicy(3, error_rate=ERROR_RATE)), PROBLEM.question, budget=N
    )
    assert len(seen_ours) == N and seen_ours == seen_hub
    assert len(set(seen_ours)) > 1  # and they differ: the resampling has something to choose from
