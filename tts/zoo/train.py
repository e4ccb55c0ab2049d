"""Training and measuring the zoo's models with torch + transformers on CPU: policies, samples, PRMs, AUROC.

Why here and not in a notebook: the shipped weights must be reproducible from a seed (`tts zoo train`), and the
tests run the same functions at a small size. Everything is deterministic for its seed (torch and data RNGs),
up to floating-point reduction order across thread counts.

- Policy: a Qwen2ForCausalLM (tied embeddings) trained on reference solutions of train-split chain problems,
  the loss on the assistant tokens only (the solution and its EOS), AdamW, linear warm-up then cosine decay.
- Samples: HF `generate` on test- or train-split prompts (left-padded batches, temperature sampling).
- PRM: Qwen2.5-Math-PRM layout (a Qwen2Model body and `score` = Linear-ReLU-Linear to 2 labels, read at every
  "<extra_0>"), its body initialised from a trained policy (as Qwen's PRMs start from Qwen-Math), trained with
  cross-entropy on step labels from the exact step checker (tts.data.chain.check_steps) of policies' samples.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tts.data.chain import LEVELS, STEP_DELIMITER, check_steps, generate, solution
from tts.data.problem import Problem
from tts.zoo.tokenizer import EOS, PAD, STEP_SEP, policy_prompt, prm_text

MAX_NEW_TOKENS = 160


@dataclass(frozen=True)
class ModelSpec:
    """A Qwen2 size: hidden width, layers, heads (head_dim = hidden / heads, >= 32 for vLLM on CPU), MLP width."""

    hidden: int
    layers: int
    heads: int
    mlp: int


@dataclass(frozen=True)
class TrainSpec:
    steps: int
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 200
    seed: int = 0


def qwen2_config(spec: ModelSpec, tokenizer: Any, **extra: Any) -> Any:
    from transformers import Qwen2Config

    eos = tokenizer.convert_tokens_to_ids(EOS)
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.mlp,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        head_dim=spec.hidden // spec.heads,
        max_position_embeddings=2048,
        tie_word_embeddings=extra.pop("tie_word_embeddings", True),
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD),
        **extra,
    )


def _window(train: TrainSpec) -> int:
    """Steps per point of the loss curve: 50, or a tenth of a short run."""
    return max(1, min(50, train.steps // 10))


def _schedule(step: int, spec: TrainSpec) -> float:
    if step < spec.warmup:
        return (step + 1) / spec.warmup
    progress = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(params: Any, spec: TrainSpec) -> tuple[Any, Any]:
    import torch

    opt = torch.optim.AdamW(params, lr=spec.lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, spec))
    return opt, sched


def _fit(
    module: Any, train: TrainSpec, batch_loss: Callable[[int], Any], log: Callable[[str], None]
) -> list[float]:
    """The one optimisation loop of the zoo: AdamW with warmup + cosine, gradient clipping at 1.0, `batch_loss(step)`
    giving each step's loss; returns the loss curve (mean per `_window` steps) and leaves `module` in eval mode."""
    import torch

    opt, sched = _optimizer(module.parameters(), train)
    module.train()
    curve, window, start = [], [], time.perf_counter()
    for step in range(train.steps):
        loss = batch_loss(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        sched.step()
        window.append(loss.item())
        if len(window) == _window(train) or step == train.steps - 1:
            curve.append(sum(window) / len(window))
            window = []
            log(f"  step {step + 1}/{train.steps} loss {curve[-1]:.4f} ({time.perf_counter() - start:.0f} s)")
    module.eval()
    return curve


def _pad(rows: Sequence[list[int]], value: int) -> Any:
    import torch

    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


def train_problems(count: int, seed: int, levels: Sequence[int] = tuple(LEVELS)) -> list[Problem]:
    """`count` train-split problems, levels interleaved uniformly, shuffled deterministically (a question may
    repeat: the easy levels have fewer distinct questions than a long run draws)."""
    per_level = -(-count // len(levels))
    problems = generate(list(levels), per_level, seed=seed, split="train", distinct=False)
    random.Random(seed).shuffle(problems)
    return problems[:count]


def train_policy(
    spec: ModelSpec,
    train: TrainSpec,
    tokenizer: Any,
    log: Callable[[str], None] = print,
    counts: dict[str, int] | None = None,
) -> tuple[Any, list[float]]:
    """Train a policy from scratch; returns the model and the loss curve (mean loss per 50 steps, or per tenth
    of a short run). `counts["tokens"]` (when given) gets the tokens processed, padding included: with the
    parameter count, the run's training FLOPs (6 x parameters x tokens)."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(train.seed)
    model = Qwen2ForCausalLM(qwen2_config(spec, tokenizer)).float()
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(EOS)
    problems = train_problems(train.steps * train.batch, seed=1000 + train.seed)
    eos, pad = tokenizer.convert_tokens_to_ids(EOS), tokenizer.convert_tokens_to_ids(PAD)
    prompts = tokenizer([policy_prompt(tokenizer, p.question) for p in problems], add_special_tokens=False)
    targets = tokenizer([solution(p) for p in problems], add_special_tokens=False)

    def batch_loss(step: int) -> Any:
        rows, labels = [], []
        for i in range(step * train.batch, (step + 1) * train.batch):
            p, t = prompts["input_ids"][i], targets["input_ids"][i] + [eos]
            rows.append(p + t)
            labels.append([-100] * len(p) + t)
        ids, lab = _pad(rows, pad), _pad(labels, -100)
        if counts is not None:
            counts["tokens"] = counts.get("tokens", 0) + ids.numel()
        return model(input_ids=ids, attention_mask=(lab != -100) | (ids != pad), labels=lab).loss

    return model, _fit(model, train, batch_loss, log)


# ------------------------------------------------------------------------------------------------ sampling
def sample(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    n: int,
    temperature: float,
    seed: int = 0,
    batch: int = 256,
) -> list[list[str]]:
    """`n` completions per problem (temperature 0: greedy, one completion repeated), as text without EOS."""
    copies = 1 if temperature == 0 else n
    prompts = [policy_prompt(tokenizer, p.question) for p in problems for _ in range(copies)]
    texts = complete(model, tokenizer, prompts, temperature, seed=seed, batch=batch)
    grouped = [texts[j * copies : (j + 1) * copies] for j in range(len(problems))]
    return [g * n if copies == 1 else g for g in grouped]


def sample_conversations(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[tuple[str, Sequence[Any]]],
    temperature: float,
    seed: int = 0,
    max_batch_tokens: int = 32768,
) -> list[str]:
    """One completion per (question, history) conversation (history: turns with `.role` and `.content`),
    rendered by `policy_prompt` as the policy engine renders it. Batched by length (longest prompt first, at
    most `max_batch_tokens` prompt + new tokens a batch); the result is in the order of `conversations`."""
    prompts = [policy_prompt(tokenizer, q, h) for q, h in conversations]
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    texts: list[str] = [""] * len(prompts)
    start = 0
    while start < len(order):
        width = lengths[order[start]] + MAX_NEW_TOKENS
        chunk = order[start : start + max(1, min(256, max_batch_tokens // width))]
        done = complete(model, tokenizer, [prompts[j] for j in chunk], temperature, seed=seed + start)
        for j, text in zip(chunk, done, strict=True):
            texts[j] = text
        start += len(chunk)
    return texts


def complete(
    model: Any, tokenizer: Any, prompts: Sequence[str], temperature: float, seed: int = 0, batch: int = 256
) -> list[str]:
    """One completion per prompt text (HF `generate`, left-padded batches of `batch`), as text without EOS."""
    import torch

    torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    eos, pad = tokenizer.convert_tokens_to_ids(EOS), tokenizer.convert_tokens_to_ids(PAD)
    texts: list[str] = []
    for i in range(0, len(prompts), batch):
        enc = tokenizer(
            list(prompts[i : i + batch]), add_special_tokens=False, padding=True, return_tensors="pt"
        )
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=MAX_NEW_TOKENS,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_k=0,
                top_p=1.0,
                eos_token_id=eos,
                pad_token_id=pad,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        texts += tokenizer.batch_decode(new, skip_special_tokens=True)
    return texts


def is_correct(problem: Problem, text: str) -> bool:
    """Graded by the project's own grader (final \\boxed{} answer, math equivalence)."""
    from tts.grading import grade

    return grade(problem, text).correct


# ---------------------------------------------------------------------------------------------------- PRM
def prm_module(spec: ModelSpec, tokenizer: Any) -> Any:
    """A Qwen2ForProcessRewardModel-shaped torch module: `model` (Qwen2Model) + `score` (Linear-ReLU-Linear)."""
    import torch
    from transformers import Qwen2Model

    class ProcessRewardModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = qwen2_config(spec, tokenizer, tie_word_embeddings=False, num_labels=2)
            self.config.architectures = ["Qwen2ForProcessRewardModel"]
            self.model = Qwen2Model(self.config)
            h = spec.hidden
            self.score = torch.nn.Sequential(torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, 2))

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.score(hidden)

    return ProcessRewardModel()


@dataclass(frozen=True)
class LabelledSolution:
    problem: Problem
    steps: tuple[str, ...]
    labels: tuple[bool, ...]


def label_samples(problems: Sequence[Problem], samples: Sequence[Sequence[str]]) -> list[LabelledSolution]:
    """Cut each sample into steps (the step delimiter) and label them with the exact step checker."""
    from tts.strategies.steps import split_steps

    out = []
    for problem, texts in zip(problems, samples, strict=True):
        for text in texts:
            steps = split_steps(text, STEP_DELIMITER)
            if steps:
                out.append(LabelledSolution(problem, steps, tuple(check_steps(problem, steps))))
    return out


def _prm_batch(tokenizer: Any, rows: Sequence[LabelledSolution]) -> tuple[Any, Any, Any]:
    import torch

    pad, sep = tokenizer.convert_tokens_to_ids(PAD), tokenizer.convert_tokens_to_ids(STEP_SEP)
    enc = tokenizer(
        [prm_text(tokenizer, r.problem.question, r.steps) for r in rows], add_special_tokens=False
    )["input_ids"]
    ids = _pad(enc, pad)
    labels = torch.full(ids.shape, -100)
    for b, (row, seq) in enumerate(zip(rows, enc, strict=True)):
        positions = [p for p, t in enumerate(seq) if t == sep]
        for pos, good in zip(positions, row.labels, strict=True):
            labels[b, pos] = int(good)
    mask = torch.zeros(ids.shape, dtype=torch.long)
    for b, seq in enumerate(enc):
        mask[b, : len(seq)] = 1
    return ids, mask, labels


OBJECTIVES = ("steps", "prefix", "outcome")  # what a verifier's head is trained to say (train_prm)


def corrupt(problem: Problem, rng: random.Random) -> tuple[str, ...]:
    """A synthetic hard negative: the reference chain with one step's result (or operand) perturbed, the chain
    continued from the wrong value to a wrong boxed answer, as a policy that slips once would write it."""
    from tts.data.chain import apply

    operands, ops = problem.metadata["operands"], problem.metadata["ops"]
    at = rng.randrange(len(ops))
    value, steps = operands[0], []
    for i, (op, x) in enumerate(zip(ops, operands[1:], strict=True)):
        new = apply(value, op, x)
        if i == at:
            kind = rng.random()
            if kind < 0.6:  # a slip in the result: off by one or ten, or two digits swapped
                slips = [new + d for d in (-10, -2, -1, 1, 2, 10) if new + d >= 0]
                if new >= 10 and str(new) != str(new)[::-1]:
                    slips.append(int(str(new)[::-1]))
                new = rng.choice(slips)
            elif kind < 0.8:  # the wrong operand copied
                x = max(0, x + rng.choice((-10, -1, 1, 10)))
                new = apply(value, op, x)
            else:  # the wrong running value carried in
                value = max(0, value + rng.choice((-10, -1, 1, 10)))
                new = apply(value, op, x)
        steps.append(f"{value}{op}{x}={new}")
        value = new
    steps.append(f"\\boxed{{{value}}}")
    return tuple(steps)


def _content(steps: Sequence[str]) -> str:
    from tts.engines.vllm_prm import QWEN_PRM_SEP

    return "".join(s.replace(QWEN_PRM_SEP, "") + QWEN_PRM_SEP for s in steps)


def _dense_batch(tokenizer: Any, rows: Sequence[LabelledSolution], objective: str) -> tuple[Any, ...]:
    """Inputs and per-token targets for the dense objectives: at every token of the solution, the class label
    (`prefix`: the text so far is the reference's prefix, which at a step tag is exactly the step label;
    `outcome`: the final answer is right) and, where the text so far is right, the reference's next token as a
    language-modelling target, so the body keeps computing each result it is asked to check."""
    import torch

    from tts.grading import grade

    pad = tokenizer.convert_tokens_to_ids(PAD)
    seqs, cls, lm = [], [], []
    for row in rows:
        full = prm_text(tokenizer, row.problem.question, row.steps)
        content = _content(row.steps)
        head = tokenizer(full[: full.rindex(content)], add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        mine = tokenizer(content, add_special_tokens=False)["input_ids"]
        ref = tokenizer(_content(row.problem.metadata["steps"]), add_special_tokens=False)["input_ids"]
        outcome = grade(row.problem, STEP_DELIMITER.join(row.steps)).correct
        c, t = [-100] * len(ids), [-100] * len(ids)
        t[len(head) - 1] = ref[0]
        ok = True
        for i, tok in enumerate(mine):
            ok = ok and i < len(ref) and tok == ref[i]
            c[len(head) + i] = int(ok) if objective == "prefix" else int(outcome)
            if ok and i + 1 < len(ref):
                t[len(head) + i] = ref[i + 1]
        seqs.append(ids)
        cls.append(c)
        lm.append(t)
    ids = _pad(seqs, pad)
    mask = torch.zeros(ids.shape, dtype=torch.long)
    for b, seq in enumerate(seqs):
        mask[b, : len(seq)] = 1
    return ids, mask, _pad(cls, -100), _pad(lm, -100)


def train_prm(
    spec: ModelSpec,
    train: TrainSpec,
    tokenizer: Any,
    data: Sequence[LabelledSolution],
    init_from: Any = None,
    log: Callable[[str], None] = print,
    objective: str = "steps",
    negatives: Callable[[random.Random], LabelledSolution] | None = None,
    negative_share: float = 0.0,
    lm_weight: float = 1.0,
    counts: dict[str, int] | None = None,
) -> tuple[Any, list[float]]:
    """Train a verifier on labelled solutions (epochs over `data`, shuffled by seed); body from `init_from`.

    `objective`: `steps` reads the head only at the step tags (one bit per step: on this world the head learns
    the steps' position and little else, FIELD_NOTES); `prefix` trains it at every token of the solution on
    "is the text so far the reference's prefix" (at a step tag: the step label) with a language-modelling loss
    (weight `lm_weight`, through the tied embeddings) on the reference's next token wherever the text so far is
    right; `outcome` (an ORM) trains every token on whether the final answer is right, with the same LM loss.
    `negatives(rng)` draws a synthetic hard negative for `negative_share` of each batch. `counts["tokens"]`
    (when given) gets the tokens processed, padding included."""
    import torch

    if objective not in OBJECTIVES:
        raise ValueError(f"objective: invalid value {objective!r}; allowed: {', '.join(OBJECTIVES)}")
    torch.manual_seed(train.seed)
    prm = prm_module(spec, tokenizer).float()
    if init_from is not None:
        body = {
            k.removeprefix("model."): v for k, v in init_from.state_dict().items() if k.startswith("model.")
        }
        prm.model.load_state_dict(body)
    rng = random.Random(train.seed)
    order: list[int] = []
    fake = round(train.batch * negative_share) if negatives is not None else 0

    def batch_loss(_step: int) -> Any:
        nonlocal order
        real = train.batch - fake
        if len(order) < real:
            fresh = list(range(len(data)))
            rng.shuffle(fresh)
            order += fresh
        chosen, order = order[:real], order[real:]
        rows = [data[i] for i in chosen] + [negatives(rng) for _ in range(fake)]  # type: ignore[misc]
        if objective == "steps":
            ids, mask, labels = _prm_batch(tokenizer, rows)
            if counts is not None:
                counts["tokens"] = counts.get("tokens", 0) + ids.numel()
            logits = prm(ids, mask)
            return torch.nn.functional.cross_entropy(
                logits.reshape(-1, 2), labels.reshape(-1), ignore_index=-100
            )
        ids, mask, cls, lm = _dense_batch(tokenizer, rows, objective)
        if counts is not None:
            counts["tokens"] = counts.get("tokens", 0) + ids.numel()
        hidden = prm.model(input_ids=ids, attention_mask=mask).last_hidden_state
        loss = torch.nn.functional.cross_entropy(
            prm.score(hidden).reshape(-1, 2), cls.reshape(-1), ignore_index=-100
        )
        if lm_weight:
            logits = hidden @ prm.model.embed_tokens.weight.T
            loss = loss + lm_weight * torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), lm.reshape(-1), ignore_index=-100
            )
        return loss

    return prm, _fit(prm, train, batch_loss, log)


def prm_scores(
    prm: Any, tokenizer: Any, rows: Sequence[LabelledSolution], batch: int = 64
) -> list[list[float]]:
    """P(good) at every step of every row, read at the "<extra_0>" tokens as vLLM's pooling runner reads them."""
    import torch

    out: list[list[float]] = []
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        ids, mask, labels = _prm_batch(tokenizer, chunk)
        with torch.no_grad():
            probs = torch.softmax(prm(ids, mask), dim=-1)[..., 1]
        for b in range(len(chunk)):
            out.append(probs[b][labels[b] != -100].tolist())
    return out


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half): P(score of a good step > a bad one's)."""
    pairs = sorted(zip(scores, labels, strict=True))
    pos = sum(1 for _, y in pairs if y)
    neg = len(pairs) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2
        rank_sum += mean_rank * sum(1 for _, y in pairs[i:j] if y)
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def likelihood_scores(
    model: Any, tokenizer: Any, rows: Sequence[LabelledSolution], batch: int = 64
) -> list[list[float]]:
    """Per-step scores of a policy's likelihood verifier, the rule tts.engines.likelihood_prm serves through
    vLLM's prompt logprobs, here in torch (for the model cards): the policy prompt, then each step and the step
    delimiter; a step's own probability is the smallest of its tokens' and of its delimiter's first token (after
    the last step plus P(EOS)); its score the smallest over it and the steps before."""
    import torch

    eos, pad = tokenizer.convert_tokens_to_ids(EOS), tokenizer.convert_tokens_to_ids(PAD)
    delimiter = tokenizer(STEP_DELIMITER, add_special_tokens=False)["input_ids"]
    built = []
    for row in rows:
        ids = tokenizer(policy_prompt(tokenizer, row.problem.question), add_special_tokens=False)["input_ids"]
        spans = []
        for step in row.steps:
            start = len(ids)
            ids = ids + tokenizer(step, add_special_tokens=False)["input_ids"]
            spans.append((start, len(ids) + 1))
            ids = ids + delimiter
        built.append((ids, spans))
    out: list[list[float]] = []
    for i in range(0, len(built), batch):
        chunk = built[i : i + batch]
        ids = _pad([b[0] for b in chunk], pad)
        mask = torch.zeros(ids.shape, dtype=torch.long)
        for b, (seq, _) in enumerate(chunk):
            mask[b, : len(seq)] = 1
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for b, (seq, spans) in enumerate(chunk):
            token = [1.0] + [probs[b, p - 1, seq[p]].item() for p in range(1, len(seq))]
            last = spans[-1][1] - 1
            token[last] = min(1.0, token[last] + probs[b, last - 1, eos].item())
            scores, worst = [], 1.0
            for start, end in spans:
                worst = min(worst, *token[start:end])
                scores.append(worst)
            out.append(scores)
    return out
