"""Particle filtering (Puri et al. 2025, "A Probabilistic Inference Approach to Inference-Time Scaling of LLMs";
settings as its_hub's `ParticleFiltering`): N particles per problem, extended one step at a time and resampled
by their PRM weights, so compute follows the promising partial solutions without beam search's hard pruning.

Each step every unfinished particle is extended by one sampled step (particles that are copies of one parent
share one request of n > 1, so the copies diverge), every new step is scored by the PRM, and the N particles of
a problem are resampled with replacement by

    weight_i = softmax(logit(aggregate(step scores_i)) / softmax_temperature)

the PRM score read as a probability and turned into a log-weight as its_hub does (logit, clipped at 1e-7), with
its_hub's temperature 1 as the default. `resampling` is multinomial (its_hub) or systematic (one uniform offset,
N evenly spaced draws: lower variance). The generator is numpy's, seeded from the cell seed and the problem id,
so a problem's resampling does not depend on which other problems share its batch.

Finished particles (EOS, a stated final answer, max_tokens) keep their place in the population as its_hub does:
they take part in every later resampling with their final weight (a good finished particle is copied, a bad
one is dropped) and are never extended. The population is resampled after EVERY step, the last one included:
its_hub's `ParticleGibbs.ainfer` (its_hub/core/algorithms/particle_gibbs.py, 1.2.0) propagates and resamples in
one `while not all(p.is_stopped ...)` loop, so the step that stops the last particle is followed by a
resampling too, and the answer is the argmax over that resampled population (`final_resampling`, on by default;
off: the final population is not resampled, this module's rule before it followed its_hub, under which the
best particle can never be lost). The search stops when every particle has finished or at max_steps, whose
step is sampled to EOS (a deliberate difference: its_hub stops a particle that already has `max_steps` steps
after one more ordinary step, so its max_steps K is our K + 1 with that last step cut at the delimiter; and
its_hub stops a particle only on its stop pattern, e.g. "\\boxed", never on EOS). The answer comes from the
final particles (copies included, so `majority` / `weighted` vote with the posterior's multiplicities) by
`final_selection` (argmax by default, as its_hub). All particles of all problems advance in lockstep: one
generate call and one PRM call per step (tts.strategies.tree).

Per problem `StrategyResult.extra` holds `resampling_steps`, `ancestors` (distinct first-step particles whose
descendants survive in the final population) and `origins` (each final particle's first-step index). These are
not result-row columns: the runtime stores the shared row fields only, so they are visible to callers of `run`
(and tests), not in the Parquet results.

Budget: generations = step-level samples / steps (N while no particle finishes early; Snell et al.'s unit, as
beam search); extra["step_samples"] is the count of every step sampled.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tts.data.problem import Problem
from tts.engines.protocols import PolicyEngine, PRMScorer
from tts.schemas import ConfigError
from tts.strategies.base import SamplingSettings, StrategyResult
from tts.strategies.entry import StrategyEntry, Traits
from tts.strategies.tree import Beam, Group, StepSearchConfig, one_tree_search, tree_budget

NAME = "particle_filtering"
RESAMPLING = ("multinomial", "systematic")
_EPS = 1e-7  # its_hub clips scores to [eps, 1 - eps] before the logit


@dataclass
class ParticleFilteringConfig(StepSearchConfig):
    name: str = NAME
    softmax_temperature: float = 1.0  # weights = softmax(logit(score) / T); its_hub: 1
    resampling: str = "multinomial"  # multinomial | systematic (RESAMPLING)
    final_resampling: bool = True  # resample after the last step too, as its_hub (false: keep it as it is)

    def check(self, n: int) -> None:
        super().check(n)
        t = self.softmax_temperature
        if isinstance(t, bool) or not isinstance(t, int | float) or not t > 0 or not math.isfinite(t):
            raise ConfigError(
                f"strategy.softmax_temperature: invalid value {t!r}; must be a number > 0 (1 = its_hub's)"
            )
        if self.resampling not in RESAMPLING:
            raise ConfigError(
                f"strategy.resampling: invalid value {self.resampling!r}; allowed: {', '.join(RESAMPLING)}"
            )
        if not isinstance(self.final_resampling, bool):
            raise ConfigError(
                f"strategy.final_resampling: invalid value {self.final_resampling!r}; must be true or false"
            )


def particle_weights(scores: Sequence[float], temperature: float) -> np.ndarray:
    """softmax(logit(clip(score)) / temperature): the resampling probabilities of a problem's particles."""
    p = np.clip(np.asarray(scores, dtype=float), _EPS, 1 - _EPS)
    logits = np.log(p / (1 - p)) / temperature
    w = np.exp(logits - logits.max())
    return w / w.sum()


def resample(weights: np.ndarray, rng: np.random.Generator, method: str) -> np.ndarray:
    """len(weights) indices drawn with replacement: i.i.d. by weight (multinomial) or at evenly spaced points
    of the cumulative weights from one uniform offset (systematic), sorted ascending."""
    n = len(weights)
    if method == "multinomial":
        return np.sort(rng.choice(n, size=n, p=weights))
    if method == "systematic":
        points = (rng.random() + np.arange(n)) / n
        cumulative = np.cumsum(weights)
        cumulative[-1] = 1.0  # guard against rounding
        return np.searchsorted(cumulative, points, side="right")
    raise ValueError(f"resampling: invalid value {method!r}; allowed: {', '.join(RESAMPLING)}")


def problem_rng(seed: int, problem_id: str) -> np.random.Generator:
    """A generator seeded from the cell seed and the problem id (stable across batches and processes)."""
    digest = hashlib.blake2b(problem_id.encode(), digest_size=8).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "big")])


class ResampleRule:
    """The advance rule: the group is one problem's population of N particles (finished ones included)."""

    def __init__(
        self, rngs: list[np.random.Generator], temperature: float, method: str, final: bool = True
    ) -> None:
        self.rngs, self.temperature, self.method, self.final = rngs, temperature, method, final
        self.population: dict[int, list[Beam]] = {}
        self.resamplings: dict[int, int] = {}

    def __call__(self, group: Group, children: list[Beam]) -> None:
        old = self.population.get(group.problem)
        if old is None:  # step 1: N children of the root, numbered as the lineage roots
            for i, child in enumerate(children):
                child.origin = i
            population = list(children)
        else:  # every unfinished particle was replaced by its one child, in population order
            grown = iter(children)
            population = [p if p.finished else next(grown) for p in old]
        if self.final or any(not p.finished for p in population):  # final: the last step's too (its_hub)
            weights = particle_weights([p.rank for p in population], self.temperature)
            picks = resample(weights, self.rngs[group.problem], self.method)
            population = [population[i] for i in picks]
            self.resamplings[group.problem] = self.resamplings.get(group.problem, 0) + 1
        self.population[group.problem] = population
        group.active = [p for p in population if not p.finished]
        group.finished = [p for p in population if p.finished]
        group.widths = [1] * len(group.active)
        group.done = not group.active

    def extra(self, problem: int) -> dict[str, Any]:
        origins = tuple(p.origin for p in self.population.get(problem, []))
        return {
            "resampling_steps": self.resamplings.get(problem, 0),
            "ancestors": len(set(origins)),
            "origins": origins,
        }


def run(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    sampling: SamplingSettings,
    seed: int,
    max_steps: int = 40,
    final_selection: str = "argmax",
    softmax_temperature: float = 1.0,
    resampling: str = "multinomial",
    final_resampling: bool = True,
) -> list[StrategyResult]:
    """Particle filtering with N = n particles per problem; `seed` seeds the resampling."""
    config = ParticleFilteringConfig(
        max_steps=max_steps,
        final_selection=final_selection,
        softmax_temperature=softmax_temperature,
        resampling=resampling,
        final_resampling=final_resampling,
    )
    rule = ResampleRule(
        [problem_rng(seed, p.id) for p in problems], softmax_temperature, resampling, final_resampling
    )
    results = one_tree_search(problems, policy, prm, n=n, config=config, advance=rule, sampling=sampling)
    for i, result in enumerate(results):
        result.extra.update(rule.extra(i))
    return results


ENTRY = StrategyEntry(
    name=NAME,
    schema=ParticleFilteringConfig,
    run=run,
    traits=Traits(needs_verifier=True, tree=True),
    budget=tree_budget,
)
