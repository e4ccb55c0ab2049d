"""zoo-policy-r: the zoo's revision-capable policy, fine-tuned on (earlier attempts -> correct attempt)
conversations built from zoo-policy-m's own samples, as Snell et al. (2024, §6) fine-tuned their revision model;
and the measurement that says whether its revisions help (the "accuracy vs revision step" curve, per level).

Why its own recipe: the three ladder policies only ever saw one user turn. A chain of attempts, each seeing the
last HISTORY earlier ones followed by the revision instruction (tts.strategies.sequential_revision), is off
their training distribution; zoo-policy-m answers such a prompt with digit soup. zoo-policy-r starts from
zoo-policy-m's weights (same size) and is trained through the zoo's one optimisation loop (tts.zoo.train._fit)
on two kinds of rows each step (loss on the target assistant turn only):

- plain: a train-split problem as the only user turn -> its reference solution (as zoo-policy-m was trained),
  so a first attempt stays as good as zoo-policy-m's;
- revision: a train-split problem, then 1..HISTORY of zoo-policy-m's samples of it (T=0.8; a random subset in
  random order; every step of a step cycle uses one chain length, so rows pad little) as earlier attempts, each
  followed by INSTRUCTION, exactly as the policy engine renders them (`revision_prompt` = tts.zoo.tokenizer
  .policy_prompt over `revision_history`) -> the reference solution (tts.data.chain.solution). When the last
  attempt is wrong that is the correction; when it is right (as often as zoo-policy-m is right) the reference
  IS that attempt, verbatim in 93% of correct samples (the others reach the right answer by a flawed step), so
  revising learns to keep a correct answer.

Measurement (held-out test-split problems, seed 1, 25 a level, `chains` chains a problem at T=0.8): attempt j
(j = 1..ATTEMPTS) of a chain sees the j - 1 earlier ones (k = HISTORY); per level the accuracy of each attempt,
majority over a chain's ATTEMPTS attempts, and majority over ATTEMPTS independent first attempts (the parallel
use of the same budget), for zoo-policy-r and, as the baseline never trained on revisions, zoo-policy-m. Whether
revisions help is the paired difference attempt ATTEMPTS - attempt 1 over problems with its 95% CI: "helps" or
"hurts" only when the CI excludes 0, else "no effect".
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from tts.data.chain import solution
from tts.data.problem import Problem
from tts.strategies.sequential_revision import HISTORY, INSTRUCTION, revision_history
from tts.zoo import REVISION_POLICY
from tts.zoo.tokenizer import EOS, PAD, policy_prompt
from tts.zoo.train import TrainSpec, _fit, _pad, is_correct, sample, sample_conversations, train_problems

NAME = REVISION_POLICY
ATTEMPTS = 4  # attempts per chain measured: the revision curve's x axis


@dataclass(frozen=True)
class RevisionRecipe:
    init_from: str = "zoo-policy-m"  # the policy whose weights it starts from and whose samples it revises
    train: TrainSpec = TrainSpec(steps=400, batch=16, lr=1e-3, warmup=30, seed=14)  # batch: revision rows
    plain_rows: int = 16  # plain single-turn rows per step, besides the `batch` revision rows
    problems: int = 800  # train-split problems sampled
    samples: int = HISTORY  # samples of `init_from` a problem: the pool its earlier attempts come from
    eval_chains: int = 4  # chains per held-out problem


RECIPE = RevisionRecipe()


def revision_prompt(tokenizer: Any, question: str, attempts: Sequence[str], history: int = HISTORY) -> str:
    """The prompt of the attempt after `attempts`, as the policy engine renders the revision conversation."""
    return policy_prompt(tokenizer, question, revision_history(attempts, history, INSTRUCTION))


@dataclass(frozen=True)
class RevisionExample:
    problem: Problem
    attempts: tuple[str, ...]  # earlier attempts, oldest first
    target: str


def revision_example(
    problem: Problem, pool: Sequence[str], length: int, rng: random.Random
) -> RevisionExample:
    """`length` earlier attempts drawn from `pool` (a random subset in random order) -> the reference solution."""
    return RevisionExample(problem, tuple(rng.sample(list(pool), length)), solution(problem))


def train_revision(
    init: Any,
    recipe: RevisionRecipe,
    tokenizer: Any,
    problems: Sequence[Problem],
    pools: Sequence[Sequence[str]],
    log: Callable[[str], None] = print,
) -> tuple[Any, list[float], dict[str, int]]:
    """Fine-tune a copy of `init` on plain and revision rows (see the module docstring); returns the model, the
    loss curve and counts of the revision rows (by whether their last earlier attempt was correct)."""
    import torch

    train = recipe.train
    torch.manual_seed(train.seed)
    model = copy.deepcopy(init).float()
    plain = train_problems(train.steps * recipe.plain_rows, seed=1000 + train.seed)
    eos, pad = tokenizer.convert_tokens_to_ids(EOS), tokenizer.convert_tokens_to_ids(PAD)
    rng = random.Random(train.seed)
    correct = [[is_correct(p, t) for t in pool] for p, pool in zip(problems, pools, strict=True)]
    counts = {"rows": 0, "last_attempt_correct": 0}

    def loss_of(prompts: list[str], targets: list[str]) -> Any:
        ids_p = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        ids_t = tokenizer(targets, add_special_tokens=False)["input_ids"]
        rows = [p + t + [eos] for p, t in zip(ids_p, ids_t, strict=True)]
        labels = [[-100] * len(p) + t + [eos] for p, t in zip(ids_p, ids_t, strict=True)]
        ids, lab = _pad(rows, pad), _pad(labels, -100)
        return model(input_ids=ids, attention_mask=(lab != -100) | (ids != pad), labels=lab).loss

    def batch_loss(step: int) -> Any:
        chunk = plain[step * recipe.plain_rows : (step + 1) * recipe.plain_rows]
        loss = loss_of([policy_prompt(tokenizer, p.question) for p in chunk], [solution(p) for p in chunk])
        length = 1 + step % min(HISTORY, recipe.samples)
        examples = []
        for _ in range(train.batch):
            i = rng.randrange(len(problems))
            ex = revision_example(problems[i], pools[i], length, rng)
            counts["rows"] += 1
            counts["last_attempt_correct"] += correct[i][list(pools[i]).index(ex.attempts[-1])]
            examples.append(ex)
        revised = loss_of(
            [revision_prompt(tokenizer, ex.problem.question, ex.attempts) for ex in examples],
            [ex.target for ex in examples],
        )
        return (loss + revised) / 2

    return model, _fit(model, train, batch_loss, log), counts


# ------------------------------------------------------------------------------------------------ measuring
def chains(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    n_chains: int,
    attempts: int,
    temperature: float,
    seed: int,
) -> list[list[list[str]]]:
    """texts[problem][chain][attempt]: attempt 1 an independent sample, attempt j sees the earlier ones."""
    first = sample(model, tokenizer, problems, n_chains, temperature, seed=seed)
    texts = [[[t] for t in group] for group in first]
    for r in range(1, attempts):
        convs = [
            (p.question, revision_history(chain, HISTORY, INSTRUCTION))
            for p, group in zip(problems, texts, strict=True)
            for chain in group
        ]
        new = iter(sample_conversations(model, tokenizer, convs, temperature, seed=seed + 1000 * r))
        for group in texts:
            for chain in group:
                chain.append(next(new))
    return texts


def _majority_correct(problem: Problem, texts: Sequence[str]) -> bool:
    """Is the most common extracted answer (first seen wins a tie) correct? No answer at all: wrong."""
    from tts.grading import extract_answer

    answers = [extract_answer(t).answer for t in texts]
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return False
    return is_correct(problem, texts[answers.index(counts.most_common(1)[0][0])])


def _paired(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error over problems."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / max(1, n - 1)
    return mean, math.sqrt(var / n)


def verdict(mean: float, se: float) -> str:
    """'helps' / 'hurts' when the 95% CI of a paired difference excludes 0, else 'no effect'."""
    if mean - 1.96 * se > 0:
        return "helps"
    if mean + 1.96 * se < 0:
        return "hurts"
    return "no effect"


def chain_stats(problems: Sequence[Problem], texts: list[list[list[str]]]) -> dict[str, float | str]:
    """One model's row over `problems`: attempt accuracies, majorities, revision gain (paired, with SE)."""
    n_att = len(texts[0][0])
    flags = [
        [[is_correct(p, t) for t in chain] for chain in group]
        for p, group in zip(problems, texts, strict=True)
    ]
    per_problem = {
        j: [sum(chain[j] for chain in f) / len(f) for f in flags] for j in range(n_att)
    }  # attempt j's accuracy on each problem, averaged over its chains
    row: dict[str, float | str] = {}
    for j in range(n_att):
        row[f"attempt_{j + 1}"] = sum(per_problem[j]) / len(problems)
    chain_major = [
        sum(_majority_correct(p, chain) for chain in group) / len(group)
        for p, group in zip(problems, texts, strict=True)
    ]
    row[f"majority@{n_att}_chain"] = sum(chain_major) / len(problems)
    groups = len(texts[0]) // n_att
    if groups:
        indep = [
            sum(
                _majority_correct(p, [c[0] for c in group[g * n_att : (g + 1) * n_att]])
                for g in range(groups)
            )
            / groups
            for p, group in zip(problems, texts, strict=True)
        ]
        row[f"majority@{n_att}_independent"] = sum(indep) / len(problems)
        diff, diff_se = _paired([a - b for a, b in zip(chain_major, indep, strict=True)])
        row["sequential_minus_parallel"], row["sequential_minus_parallel_se"] = diff, diff_se
        row["sequential_verdict"] = verdict(diff, diff_se)
    gain, se = _paired([b - a for a, b in zip(per_problem[0], per_problem[n_att - 1], strict=True)])
    row["revision_gain"], row["revision_gain_se"] = gain, se
    row["revision_verdict"] = verdict(gain, se)
    return row


def level_table(
    problems: Sequence[Problem], measured: dict[str, list[list[list[str]]]]
) -> dict[str, dict[str, Any]]:
    """Per level (and "all"): problems, chains, and each measured model's `chain_stats` row."""
    table: dict[str, dict[str, Any]] = {}
    levels = [*sorted({p.level for p in problems}), "all"]
    for level in levels:
        idx = [i for i, p in enumerate(problems) if level == "all" or p.level == level]
        some = next(iter(measured.values()))
        row: dict[str, Any] = {"problems": len(idx), "chains": len(some[idx[0]])}
        for name, texts in measured.items():
            row[name] = chain_stats([problems[i] for i in idx], [texts[i] for i in idx])
        table[str(level)] = row
    return table


@contextmanager
def _one_thread() -> Iterator[None]:
    """Generation with HF `generate` is thousands of tiny ops: one torch thread runs it several times faster
    than two on 2 busy cores (measured: 64 samples in 0.8 s vs 12 s), so sampling and measuring use one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def stage(
    init: Any,
    tokenizer: Any,
    recipe: RevisionRecipe,
    eval_problems: Sequence[Problem],
    *,
    scale: float,
    temperature: float,
    seed: int,
    log: Callable[[str], None],
) -> tuple[Any, dict[str, Any]]:
    """Sample `init`'s attempts, train zoo-policy-r, measure it and `init` on chains; returns it and its card."""
    from tts.zoo.recipe import _scaled

    train = recipe.train
    train = TrainSpec(
        steps=_scaled(train.steps, scale, 4),
        batch=train.batch,
        lr=train.lr,
        warmup=_scaled(train.warmup, scale, 2),
        seed=train.seed,
    )
    recipe = RevisionRecipe(
        init_from=recipe.init_from,
        train=train,
        plain_rows=recipe.plain_rows,
        problems=_scaled(recipe.problems, scale, 6),
        samples=recipe.samples,
        eval_chains=max(ATTEMPTS, _scaled(recipe.eval_chains, scale)),
    )
    start = time.perf_counter()
    problems = train_problems(recipe.problems, seed=6000 + seed)
    with _one_thread():
        pools = sample(init, tokenizer, problems, recipe.samples, temperature, seed=seed)
    sample_seconds = time.perf_counter() - start
    texts = [
        revision_prompt(tokenizer, p.question, pool) + solution(p)
        for p, pool in zip(problems, pools, strict=True)
    ]
    longest = max(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]) + 1  # + EOS
    log(
        f"{NAME}: {len(problems)} problems x {recipe.samples} samples of {recipe.init_from} in "
        f"{sample_seconds:.0f} s; longest training conversation {longest} tokens"
    )
    model, curve, counts = train_revision(init, recipe, tokenizer, problems, pools, log=log)
    train_seconds = time.perf_counter() - start
    log(f"{NAME}: trained in {train_seconds:.0f} s, loss {curve[-1]:.4f}; revision rows {counts}")
    start = time.perf_counter()
    with _one_thread():
        measured = {
            name: chains(
                m, tokenizer, eval_problems, recipe.eval_chains, ATTEMPTS, temperature, seed=seed + 1
            )
            for name, m in ((NAME, model), (recipe.init_from, init))
        }
    table = level_table(eval_problems, measured)
    eval_seconds = round(time.perf_counter() - start, 1)
    log(f"{NAME}: measured in {eval_seconds} s")
    card = {
        "kind": "policy",
        "architecture": "Qwen2ForCausalLM",
        "spec": asdict(_spec_of(model)),
        "train": asdict(train),
        "recipe": {k: v for k, v in asdict(recipe).items() if k != "train"},
        "params": sum(p.numel() for p in model.parameters()),
        "init_from": recipe.init_from,
        "sample_seconds": round(sample_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": eval_seconds,
        "loss_curve": [round(x, 4) for x in curve],
        "longest_train_tokens": longest,
        "revision_rows": counts,
        "history": HISTORY,
        "instruction": INSTRUCTION,
        "train_data": (
            f"{train.steps * recipe.plain_rows} plain train-split problems and {counts['rows']} revision "
            f"conversations ({counts['last_attempt_correct']} with a correct last attempt) on {len(problems)} "
            f"train-split problems x {recipe.samples} samples (T={temperature}) of {recipe.init_from}; 1-"
            f"{min(HISTORY, recipe.samples)} earlier attempts; target: the reference solution"
        ),
        "revision_eval": table,
    }
    return model, card


def _spec_of(model: Any) -> Any:
    from tts.zoo.train import ModelSpec

    c = model.config
    return ModelSpec(c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size)
