"""The lockstep step-level tree search shared by beam search, DVTS, lookahead search, particle filtering and
REBASE.

Why one engine: the strategies differ only in how the children of a step are pruned (the `advance` rule: top-k,
best-one, resampling, reward-balanced widths) and in how a child is scored (its own prefix, or a greedy k-step
rollout). Everything else is shared: every live beam of every problem is expanded with ONE `policy.generate`
call per step (plus one per lookahead step) and every child is scored with ONE `prm.score` call per step, so a
batch of problems costs as many engine calls as its longest search, not as its number of problems.

Vocabulary. A beam is a partial solution (the text generated so far). A *group* is the unit of selection: beam
search has one group per problem (width N, keeps the top N/M), DVTS has N/M groups per problem (width M, keeps
its best one). Each step a group's kept beams are expanded into `width` children (spread evenly over the kept
beams, or per beam as `Group.widths` says when the advance rule sets it; children of one parent are sampled
with one request of n > 1, so the prefix is prefilled once). A step is the text up to `sampling.step_delimiter`
or `step_max_tokens` tokens; a step cut by the token limit does not end the beam (the next step continues the
text). A child is *finished* when the policy ends it (EOS or an empty
step), when it states a final answer (\\boxed{}, "####"), or when the solution reaches `sampling.max_tokens`
(truncated, finish_reason "length").

Stopping, per strategy as its reference stops (`search(last_to_eos=..., include_unfinished=...)` and the advance
rule; each strategy's docstring cites the code):

  strategy                  a problem stops when                          step max_steps          final beams
  beam search, sal          N beams finished (sal keeps the first N),    sampled to EOS          the first N finished
                            no live beam, or max_steps
  beam search, openr        N/M finished, none live, or max_steps        an ordinary step        <= N/M finished + the
                                                                                                 unfinished left
  DVTS                      every subtree's best child finished, or      sampled to EOS          N leaves (or N/M)
                            max_steps (sal also prunes on "boxed{")
  lookahead                 as beam search, sal                          sampled to EOS          as beam search, sal
  particle filtering        every particle finished, or max_steps        sampled to EOS          the N particles, after
                            (its_hub: all stopped)                                               a final resampling
  REBASE                    N completed, an empty frontier, or           an ordinary step        the completed (the
                            max_steps = 25 (the reference's depth)                               unfinished if none)

Scores. A child's step scores come from the PRM on its own steps; its ranking score is
aggregate(step scores, aggregation), or, with lookahead k > 0, the same aggregate over a greedy (temperature 0)
rollout of k more steps (Snell et al. 2024: with aggregation "last", the PRM's score of the rollout's last
step); REBASE (`reward: last`) and beam search's openr semantics rank by the newest step's score instead, as
their references do. The final beams (the table above) are kept as candidates, best score first (a candidate's
score is always aggregate(step scores, aggregation)); the answer is picked from them by `final_selection`
(FINAL_SELECTIONS; argmax: the best, ties the first finished).

Accounting per problem: tokens_in / tokens_cached / tokens_out sum every request made for that problem (the
prompt plus the partial solution of each request, rollouts included), prm_tokens every score request.
generations = step-level samples / mean steps per group, i.e. N for beam search and DVTS and about N (k + 1)
for lookahead (Snell et al.'s budget units).

Trace. Every search records its tree in `StrategyResult.extra["tree"]` (SearchTree.as_dict: one entry per
sampled child, node ids in sampling order; parent -1 is the root), so the report's trace viewer can show which
beams were kept, resampled or dropped and which leaf was chosen. Recording never changes what is searched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tts.data.problem import Problem
from tts.engines.aggregation import aggregate
from tts.engines.protocols import (
    Completion,
    Conversation,
    Generation,
    PolicyEngine,
    PRMScorer,
    ScoreRequest,
)
from tts.grading import extract_answer
from tts.schemas import ConfigError, StrategyConfig
from tts.strategies.base import Candidate, SamplingSettings, StrategyResult
from tts.strategies.steps import split_steps, states_final_answer
from tts.strategies.voting import FINAL_SELECTIONS, final_choice


@dataclass
class Beam:
    """A partial (or finished) solution of one problem."""

    problem: int
    text: str = ""
    tokens_out: int = 0
    finish_reason: str | None = None  # None while the beam can still grow
    step_scores: tuple[float, ...] = ()
    rank: float = 0.0  # ranking score: prefix aggregate, or the rollout's aggregate with lookahead
    origin: int = -1  # index of its first-step ancestor, for rules that track lineage (-1: not tracked)
    node: int = field(default=-1, compare=False)  # its id in the problem's SearchTree (-1: the root)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class Group:
    """A unit of selection: its kept beams, its finished beams, and how it expands."""

    problem: int
    width: int  # children sampled per step
    keep: int  # beams kept per step
    cap: int  # stop once this many beams have finished
    active: list[Beam]
    finished: list[Beam] = field(default_factory=list)
    steps: int = 0
    done: bool = False
    widths: list[int] | None = None  # children per active beam (None: `width` spread evenly)


Advance = Callable[[Group, list[Beam]], None]


@dataclass
class SearchTree:
    """One problem's search tree as parallel lists (node id = index): what the trace viewer draws.

    status: kept (expanded further), finished (a final beam), dropped (pruned, or finished past the cap);
    copies: how many times the advance rule kept the node (particle filtering's resampling keeps one particle
    0, 1 or several times; the others 0 or 1)."""

    parent: list[int] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    group: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # the step's own text (not the whole prefix)
    step_score: list[float | None] = field(default_factory=list)  # the PRM's score of this step
    rank: list[float] = field(default_factory=list)  # the ranking score the advance rule saw
    status: list[str] = field(default_factory=list)
    copies: list[int] = field(default_factory=list)

    def add(self, parent: Beam, child: Beam, depth: int, group: int) -> None:
        child.node = len(self.parent)
        self.parent.append(parent.node)
        self.depth.append(depth)
        self.group.append(group)
        self.text.append(child.text[len(parent.text) :])
        self.step_score.append(None)
        self.rank.append(0.0)
        self.status.append("dropped")
        self.copies.append(0)

    def settle(self, g: Group, children: list[Beam]) -> None:
        """After the advance rule ran on `children`: their scores, and whether each was kept."""
        kept: dict[int, int] = {}
        for b in [*g.active, *g.finished]:
            kept[id(b)] = kept.get(id(b), 0) + 1
        for c in children:
            self.step_score[c.node] = float(c.step_scores[-1]) if c.step_scores else None
            self.rank[c.node] = float(c.rank)
            self.copies[c.node] = kept.get(id(c), 0)
            if self.copies[c.node]:
                self.status[c.node] = "finished" if c.finished else "kept"

    def as_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.__dict__.items()}


def keep_top(group: Group, children: list[Beam], filter_duplicates: bool = False) -> None:
    """Beam search (search-and-learn): finished children are set aside, the first `cap` to finish kept (in the
    order they finished, within a step in sampling order: sal's `completed_beams[: config.n]`); the top `keep`
    unfinished children survive. With `filter_duplicates` (search-and-learn's option), unfinished children with
    the same text are merged first, keeping one (identical texts score alike), so the kept beams are distinct
    partial solutions."""
    group.finished.extend(c for c in children if c.finished)
    del group.finished[group.cap :]
    live = sorted((c for c in children if not c.finished), key=lambda c: -c.rank)  # stable: first wins ties
    if filter_duplicates:
        first: dict[str, Beam] = {}
        for c in live:
            first.setdefault(c.text, c)  # the best-ranked of each text
        live = list(first.values())  # in the ranking order: a dict keeps the order of first insertion
    group.active = live[: group.keep]
    group.done = not group.active or len(group.finished) >= group.cap


def keep_best(group: Group, children: list[Beam], all_leaves: bool = False) -> None:
    """DVTS: the subtree follows its single best child; it ends when that child is finished. Its final beams
    are then that child alone, or with `all_leaves` every child of its last expansion (the best and its M - 1
    siblings, finished or not), as search-and-learn's `_dvts` returns `previous_text + next_texts[i]` for each
    of the beam_width children."""
    best = max(children, key=lambda c: c.rank) if children else None  # max keeps the first of ties
    if best is None or best.finished:
        group.finished.extend(children if all_leaves else [best] if best else [])
        group.active, group.done = [], True
    else:
        group.active = [best]


@dataclass
class _Usage:
    tokens_in: int = 0
    tokens_cached: int = 0
    tokens_out: int = 0
    prm_tokens: int = 0
    samples: int = 0


# How the answer is picked from a problem's final beams (Snell et al. use weighted best-of-N over them):
#   argmax    the beam with the best aggregated PRM score
#   weighted  PRM-weighted vote over equivalent final answers (its best-scored beam)
#   majority  the most common final answer (ties: the class seen first among the score-ordered beams)


@dataclass
class StepSearchConfig(StrategyConfig):
    """The knobs every step-level search has (depth, final selection); each search strategy's schema extends it
    (TreeSearchConfig adds the beam width; particle filtering and REBASE have none)."""

    max_steps: int = 40  # search-and-learn's and Liu et al.'s depth; the last step is sampled to EOS
    final_selection: str = "argmax"  # argmax | weighted | majority, over the final beams (FINAL_SELECTIONS)

    def check(self, n: int) -> None:
        super().check(n)
        check_positive_int("max_steps", self.max_steps)
        if self.final_selection not in FINAL_SELECTIONS:
            raise ConfigError(
                f"strategy.final_selection: invalid value {self.final_selection!r}; "
                f"allowed: {', '.join(FINAL_SELECTIONS)}"
            )

    def rollout_steps(self) -> int:
        """Greedy steps rolled out per candidate step to score it (0: the candidate's own prefix)."""
        return 0


def check_positive_int(fname: str, value: object) -> None:
    """ConfigError naming `strategy.<fname>` unless `value` is a positive integer."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"strategy.{fname}: invalid value {value!r}; must be a positive integer")


@dataclass
class TreeSearchConfig(StepSearchConfig):
    """The knobs of the beam-width tree searches (beam search, DVTS, lookahead)."""

    beam_width: int = 4  # M (beam search: keep N/M beams, expand each into M; DVTS: N/M subtrees of width M)

    def check(self, n: int) -> None:
        super().check(n)
        check_positive_int("beam_width", self.beam_width)
        if n % self.beam_width != 0:
            raise ConfigError(
                f"n: invalid value {n!r}; {self.name} needs N to be a multiple of "
                f"strategy.beam_width={self.beam_width}"
            )


def check_lookahead(value: object) -> None:
    """ConfigError naming `strategy.lookahead` unless `value` is an integer >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"strategy.lookahead: invalid value {value!r}; must be an integer >= 0")


def tree_budget(config: StepSearchConfig, n: int, max_tokens: int, step_max_tokens: int) -> tuple[int, int]:
    """At most n step samples per step (plus lookahead rollouts), max_steps steps of step_max_tokens each."""
    steps = config.max_steps * (1 + config.rollout_steps())
    return n * steps, n * steps * step_max_tokens


def one_tree_search(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    n: int,
    config: StepSearchConfig,
    advance: Advance,
    sampling: SamplingSettings,
    last_to_eos: bool = True,
    include_unfinished: bool = False,
) -> list[StrategyResult]:
    """One tree of N = n nodes per problem, every node of it a frontier slot (particle filtering, REBASE): the
    direct caller's n is checked, then the config, then the lockstep `search` runs with `advance` (and
    `last_to_eos` / `include_unfinished` as `search` reads them)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: invalid value {n!r}; must be a positive integer")
    config.check(n)
    return search(
        problems,
        policy,
        prm,
        groups_per_problem=1,
        width=n,
        keep=n,
        cap=n,
        advance=advance,
        sampling=sampling,
        max_steps=config.max_steps,
        final_selection=config.final_selection,
        n=n,
        last_to_eos=last_to_eos,
        include_unfinished=include_unfinished,
    )


def check_search_args(n: int, beam_width: int, max_steps: int, lookahead: int = 0) -> None:
    """Clear errors for the search knobs (the config validator checks the same, this guards direct callers)."""
    for name, value in (("n", n), ("beam_width", beam_width), ("max_steps", max_steps)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: invalid value {value!r}; must be a positive integer")
    if n % beam_width:
        raise ValueError(
            f"n: invalid value {n}; tree search needs N to be a multiple of beam_width={beam_width}"
        )
    if not isinstance(lookahead, int) or lookahead < 0:
        raise ValueError(f"lookahead: invalid value {lookahead!r}; must be an integer >= 0")


@dataclass
class _Request:
    problem: int
    prompt: Conversation
    max_tokens: int
    n: int = 0


class _Batch:
    """One lockstep generate call: requests deduplicated per (problem, partial solution), completions handed back in the
    order they were asked for. Sampled asks for one prompt become one request of n > 1; greedy asks (`shared`)
    for one prompt get the same single completion."""

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        self.keys: dict[tuple[int, str], int] = {}
        self.requests: list[_Request] = []
        self.asks: list[int] = []

    def ask(self, problem: int, prompt: Conversation, max_tokens: int) -> None:
        key = (problem, prompt.partial)
        if key not in self.keys:
            self.keys[key] = len(self.requests)
            self.requests.append(_Request(problem, prompt, max_tokens))
        if not self.shared or self.requests[self.keys[key]].n == 0:
            self.requests[self.keys[key]].n += 1
        self.asks.append(self.keys[key])

    def run(
        self,
        policy: PolicyEngine,
        usage: list[_Usage],
        sampling: SamplingSettings,
        temperature: float,
        to_eos: bool = False,
    ) -> list[Completion]:
        """to_eos: no step delimiter stop (the search's last step completes the solution)."""
        reqs = [
            sampling.request(
                r.prompt,
                n=r.n,
                max_tokens=r.max_tokens,
                temperature=temperature,
                stop=() if to_eos else (sampling.step_delimiter,),
            )
            for r in self.requests
        ]
        gens: list[Generation] = policy.generate(reqs) if reqs else []
        if len(gens) != len(reqs):
            raise RuntimeError(f"policy returned {len(gens)} generations for {len(reqs)} requests")
        for r, g in zip(self.requests, gens, strict=True):
            if len(g.completions) != r.n:
                raise RuntimeError(
                    f"policy returned {len(g.completions)} completions for a request of n={r.n}"
                )
            u = usage[r.problem]
            u.tokens_in += g.prompt_tokens
            u.tokens_cached += g.cached_prompt_tokens
            u.tokens_out += sum(c.tokens_out for c in g.completions)
            u.samples += len(g.completions)
        taken = [0] * len(gens)
        out = []
        for idx in self.asks:
            out.append(gens[idx].completions[taken[idx]])
            taken[idx] += 0 if self.shared else 1
        return out


def _grow(beam: Beam, completion: Completion, sampling: SamplingSettings) -> Beam:
    """The child of `beam` after one sampled step."""
    text = beam.text + completion.text
    if completion.finish_reason == "stop_string":
        text += sampling.step_delimiter
    child = Beam(
        problem=beam.problem,
        text=text,
        tokens_out=beam.tokens_out + completion.tokens_out,
        origin=beam.origin,
    )
    if completion.finish_reason == "eos" or not completion.text.strip():
        child.finish_reason = completion.finish_reason
    elif states_final_answer(completion.text):  # done, even if the step ran on past the answer
        child.finish_reason = "stop_string"
    elif child.tokens_out >= sampling.max_tokens:
        child.finish_reason = "length"
    return child


def _spread(width: int, parents: int) -> list[int]:
    return [width // parents + (i < width % parents) for i in range(parents)]


def search(
    problems: Sequence[Problem],
    policy: PolicyEngine,
    prm: PRMScorer,
    *,
    groups_per_problem: int,
    width: int,
    keep: int,
    cap: int,
    advance: Advance,
    sampling: SamplingSettings,
    max_steps: int,
    lookahead: int = 0,
    n: int,
    final_selection: str = "argmax",
    last_to_eos: bool = True,
    include_unfinished: bool = False,
) -> list[StrategyResult]:
    """Run a lockstep tree search over all problems; one StrategyResult per problem, in input order.

    last_to_eos: step `max_steps` is sampled without the delimiter stop, up to max_tokens (search-and-learn's
    last iteration), so every beam ends; False: it is a step like the others and the beams still unfinished
    after it stay unfinished (REBASE, OpenR). include_unfinished: the final candidates are the finished beams
    AND the unfinished ones left at the end (OpenR's truncated end nodes); otherwise the unfinished count only
    when nothing finished."""
    prompts = [Conversation(p.question) for p in problems]
    usage = [_Usage() for _ in problems]
    groups = [
        Group(problem=i, width=width, keep=keep, cap=cap, active=[Beam(problem=i)])
        for i in range(len(problems))
        for _ in range(groups_per_problem)
    ]
    trees = [SearchTree() for _ in problems]
    group_ids = {id(g): k % groups_per_problem for k, g in enumerate(groups)}
    for step in range(max_steps):
        live = [g for g in groups if not g.done]
        if not live:
            break
        last = last_to_eos and step == max_steps - 1  # runs to EOS (or max_tokens), not to the delimiter
        batch, parents = _Batch(), []
        for g in live:
            g.steps += 1
            widths = g.widths if g.widths is not None else _spread(g.width, len(g.active))
            for beam, count in zip(g.active, widths, strict=True):
                left = sampling.max_tokens - beam.tokens_out
                budget = left if last else min(sampling.step_max_tokens, left)
                for _ in range(count):
                    batch.ask(beam.problem, prompts[beam.problem].continued(beam.text), max(budget, 1))
                    parents.append((g, beam))
        completions = batch.run(policy, usage, sampling, sampling.temperature, to_eos=last)
        children = [_grow(beam, c, sampling) for (_, beam), c in zip(parents, completions, strict=True)]
        scored_texts = _rollouts(children, prompts, policy, usage, sampling, lookahead)
        _score(children, scored_texts, problems, prm, usage, sampling)
        by_group: dict[int, list[Beam]] = {}
        for (g, parent), child in zip(parents, children, strict=True):
            by_group.setdefault(id(g), []).append(child)
            trees[child.problem].add(parent, child, step + 1, group_ids[id(g)])
        for g in live:
            advance(g, by_group.get(id(g), []))
            trees[g.problem].settle(g, by_group.get(id(g), []))
    return [
        _result(i, p, groups, usage[i], sampling, n, final_selection, include_unfinished, trees[i])
        for i, p in enumerate(problems)
    ]


def _rollouts(
    children: list[Beam],
    prompts: list[Conversation],
    policy: PolicyEngine,
    usage: list[_Usage],
    sampling: SamplingSettings,
    lookahead: int,
) -> list[str]:
    """The text each child is scored on: itself, or itself plus a greedy rollout of `lookahead` steps (one
    lockstep generate call per rollout step; identical prefixes are rolled out once)."""
    texts = [c.text for c in children]
    tokens = [c.tokens_out for c in children]
    running = [i for i, c in enumerate(children) if not c.finished]
    for _ in range(lookahead):
        running = [i for i in running if sampling.max_tokens - tokens[i] > 0]
        if not running:
            break
        batch = _Batch(shared=True)
        for i in running:
            budget = min(sampling.step_max_tokens, sampling.max_tokens - tokens[i])
            batch.ask(children[i].problem, prompts[children[i].problem].continued(texts[i]), budget)
        completions = batch.run(policy, usage, sampling, temperature=0.0)
        still = []
        for i, c in zip(running, completions, strict=True):
            texts[i] += c.text + (sampling.step_delimiter if c.finish_reason == "stop_string" else "")
            tokens[i] += c.tokens_out
            if c.finish_reason != "eos" and c.text.strip() and not states_final_answer(c.text):
                still.append(i)
        running = still
    return texts


def _score(
    children: list[Beam],
    texts: list[str],
    problems: Sequence[Problem],
    prm: PRMScorer,
    usage: list[_Usage],
    sampling: SamplingSettings,
) -> None:
    """ONE PRM call for every child of every problem; sets step_scores and rank."""
    delim = sampling.step_delimiter
    todo = [(i, split_steps(t, delim)) for i, t in enumerate(texts)]
    todo = [(i, steps) for i, steps in todo if steps]
    results = (
        prm.score([ScoreRequest(problems[children[i].problem].question, s) for i, s in todo]) if todo else []
    )
    if len(results) != len(todo):
        raise RuntimeError(f"PRM returned {len(results)} score lists for {len(todo)} requests")
    for (i, _), r in zip(todo, results, strict=True):
        child = children[i]
        usage[child.problem].prm_tokens += r.computed_tokens
        own = len(split_steps(child.text, delim))
        child.step_scores = tuple(r.scores[:own])
        child.rank = aggregate(r.scores, sampling.aggregation)


def _candidate(beam: Beam, sampling: SamplingSettings) -> tuple[Candidate, bool]:
    extraction = extract_answer(beam.text)
    candidate = Candidate(
        text=beam.text,
        steps=split_steps(beam.text, sampling.step_delimiter),
        step_scores=beam.step_scores,
        score=aggregate(beam.step_scores, sampling.aggregation),
        answer=extraction.answer,
        finish_reason=beam.finish_reason or "length",
        tokens_out=beam.tokens_out,
    )
    return candidate, extraction.fallback


def _result(
    index: int,
    problem: Problem,
    groups: list[Group],
    usage: _Usage,
    sampling: SamplingSettings,
    n: int,
    final_selection: str = "argmax",
    include_unfinished: bool = False,
    tree: SearchTree | None = None,
) -> StrategyResult:
    mine = [g for g in groups if g.problem == index]
    beams = [b for g in mine for b in g.finished]
    if include_unfinished or not beams:
        beams += [b for g in mine for b in g.active]
    ranked = sorted(((b, _candidate(b, sampling)) for b in beams), key=lambda bc: -bc[1][0].score)[:n]
    pairs = [cf for _, cf in ranked]
    steps = sum(g.steps for g in mine) / len(mine)
    chosen = (
        final_choice([c.answer for c, _ in pairs], [c.score for c, _ in pairs], final_selection)
        if pairs
        else 0
    )
    best, fallback = pairs[chosen] if pairs else (None, False)
    return StrategyResult(
        problem_id=problem.id,
        answer=best.answer if best else None,
        text=best.text if best else "",
        generations=round(usage.samples / steps) if steps else 0,
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        tokens_cached=usage.tokens_cached,
        prm_tokens=usage.prm_tokens,
        truncated=best is None or best.finish_reason == "length",
        fallback_extraction=fallback,
        candidates=tuple(c for c, _ in pairs),
        extra={
            "steps": max((g.steps for g in mine), default=0),
            "step_samples": usage.samples,
            "finished": sum(len(g.finished) for g in mine),
            "chosen": chosen,
            "final_selection": final_selection,
            "tree": {
                **(tree or SearchTree()).as_dict(),
                "candidate_nodes": [
                    b.node for b, _ in ranked
                ],  # the final candidates' leaves, in their order
            },
        },
    )
