"""The zoo recipe: which models `tts zoo train` trains, on what, for how long, and how it measures them.

Three policies of real, different strength (a size ladder, each trained a fixed number of steps on generated
chain problems) and two PRMs in the Qwen2.5-Math-PRM layout trained on exact step labels of the policies' own
samples: `zoo-prm-l` (a larger body initialised from zoo-policy-l, samples of all three policies, longer) and
`zoo-prm-s` (a small body from zoo-policy-s, samples of zoo-policy-s only, short): the weaker verifier. Every
number here is a count (steps, problems, samples), never a time budget, so a run is reproducible from its seed.
`scale` multiplies every count (the tests train at scale ~0.02). Last, `zoo-policy-r` (tts.zoo.revision): the
revision-capable policy, fine-tuned from the freshly trained zoo-policy-m on revision conversations of its own
samples; `ZooConfig.only = ("zoo-policy-r",)` with `init_dir` trains only it from an existing zoo-policy-m folder
(`tts zoo train --only zoo-policy-r --from tts/zoo/weights --out tts/zoo/weights`), leaving the others untouched.

Measurement, on held-out test-split problems (seed 1, disjoint from the sweeps' seed-0 problems only by seed,
and from all training problems by the split rule of tts.data.chain): per level, greedy pass@1, and over
`eval_samples` samples at T=0.8 pass@1 (mean), pass@k, majority@k and PRM best-of-k (last-step score) for each
PRM; PRM step AUROC on those held-out samples. The results go to `card.json` and `MODEL_CARD.md` in each folder.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tts.zoo.train import ModelSpec, TrainSpec

POLICIES: dict[str, tuple[ModelSpec, TrainSpec]] = {
    "zoo-policy-s": (ModelSpec(64, 2, 2, 192), TrainSpec(steps=1200, batch=32, warmup=100, seed=11)),
    "zoo-policy-m": (ModelSpec(96, 3, 3, 288), TrainSpec(steps=1500, batch=32, warmup=100, seed=12)),
    "zoo-policy-l": (ModelSpec(128, 4, 2, 512), TrainSpec(steps=1800, batch=32, warmup=100, seed=13)),
}


@dataclass(frozen=True)
class PRMRecipe:
    spec: ModelSpec
    train: TrainSpec
    init_from: str  # the policy whose body it starts from
    sampled_from: tuple[str, ...]  # whose samples it is trained on
    problems: int  # train-split problems sampled (each policy)
    samples: int  # samples per problem (each policy)


PRMS: dict[str, PRMRecipe] = {
    "zoo-prm-l": PRMRecipe(
        ModelSpec(128, 4, 2, 512),
        TrainSpec(steps=250, batch=16, lr=1e-3, warmup=30, seed=21),
        init_from="zoo-policy-l",
        sampled_from=("zoo-policy-s", "zoo-policy-m", "zoo-policy-l"),
        problems=200,
        samples=8,
    ),
    "zoo-prm-s": PRMRecipe(
        ModelSpec(64, 2, 2, 192),
        TrainSpec(steps=80, batch=16, lr=1e-3, warmup=10, seed=22),
        init_from="zoo-policy-s",
        sampled_from=("zoo-policy-s",),
        problems=100,
        samples=4,
    ),
}


@dataclass
class ZooConfig:
    scale: float = 1.0
    eval_per_level: int = 25
    eval_samples: int = 16
    temperature: float = 0.8
    seed: int = 0
    threads: int = 2
    only: tuple[str, ...] = ()  # train only these (only the revision policy can be trained alone)
    init_dir: Path | None = None  # with `only`: the folder holding the zoo-policy-m it starts from
    log: list[str] = field(default_factory=list)


def _scaled(n: int, scale: float, low: int = 1) -> int:
    return max(low, round(n * scale))


def save_policy(model: Any, tokenizer: Any, folder: Path) -> None:
    """fp16 safetensors, config, generation config and the tokenizer (with its chat template)."""
    import copy

    folder.mkdir(parents=True, exist_ok=True)
    copy.deepcopy(model).half().save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def save_prm(prm: Any, tokenizer: Any, folder: Path) -> None:
    """Qwen2ForProcessRewardModel layout: `model.*` body + `score.{0,2}.*`, fp16, config with num_labels 2."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().half().contiguous() for k, v in prm.state_dict().items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    cfg = prm.config.to_dict()
    cfg["architectures"] = ["Qwen2ForProcessRewardModel"]
    cfg["num_labels"] = 2  # vLLM's Qwen2ForProcessRewardModel head size (id2label says the same)
    cfg["dtype"] = "float16"  # transformers 5 spelling; older readers look for torch_dtype
    cfg["torch_dtype"] = "float16"
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    tokenizer.save_pretrained(folder)


def _level_table(
    problems: list[Any], samples: list[list[str]], greedy: list[list[str]], prm_best: dict
) -> dict:
    from tts.grading import extract_answer
    from tts.zoo.train import is_correct

    table: dict[int, dict[str, float]] = {}
    for level in sorted({p.level for p in problems}):
        idx = [i for i, p in enumerate(problems) if p.level == level]
        row: dict[str, float] = {"problems": len(idx)}
        row["greedy"] = sum(is_correct(problems[i], greedy[i][0]) for i in idx) / len(idx)
        flags = [[is_correct(problems[i], t) for t in samples[i]] for i in idx]
        row["pass@1"] = sum(sum(f) / len(f) for f in flags) / len(idx)
        row[f"pass@{len(flags[0])}"] = sum(any(f) for f in flags) / len(idx)
        maj = 0
        for i, f in zip(idx, flags, strict=True):
            answers = [extract_answer(t).answer for t in samples[i]]
            counts = Counter(a for a in answers if a is not None)
            if counts:
                top = counts.most_common(1)[0][0]
                maj += f[answers.index(top)]
        row[f"majority@{len(flags[0])}"] = maj / len(idx)
        for name, best in prm_best.items():
            row[f"{name}-bon@{len(flags[0])}"] = sum(flags[k][best[i]] for k, i in enumerate(idx)) / len(idx)
        table[level] = row
    return table


def _policy_job(job: tuple[str, ModelSpec, TrainSpec, Path]) -> dict[str, Any]:
    """Train and save one policy (run in its own process, one torch thread); returns its card fields."""
    import torch

    from tts.data.chain import LEVELS
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import train_policy

    name, spec, train, out = job
    torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    start = time.perf_counter()
    with (out / f"train-{name}.log").open("a") as f:
        model, curve = train_policy(spec, train, tokenizer, log=lambda m: print(m, file=f, flush=True))
    save_policy(model, tokenizer, out / name)
    return {
        "kind": "policy",
        "architecture": "Qwen2ForCausalLM",
        "spec": asdict(spec),
        "train": asdict(train),
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(time.perf_counter() - start, 1),
        "loss_curve": [round(x, 4) for x in curve],
        "train_data": f"{train.steps * train.batch} train-split chain problems, levels 1-{max(LEVELS)} uniform",
    }


def _load_policy(folder: Path) -> Any:
    """The saved (fp16) policy, upcast to fp32: what is measured is what ships."""
    from transformers import Qwen2ForCausalLM

    return Qwen2ForCausalLM.from_pretrained(folder, dtype="float32").eval()


def best_of(prm: Any, tokenizer: Any, problems: list[Any], texts: list[list[str]]) -> list[int]:
    """Index of the sample with the highest last-step PRM score, per problem (an empty sample scores 0)."""
    from tts.data.chain import STEP_DELIMITER
    from tts.zoo.train import LabelledSolution, prm_scores

    where, rows = [], []
    for i, (problem, group) in enumerate(zip(problems, texts, strict=True)):
        for k, text in enumerate(group):
            steps = tuple(s.strip() for s in text.split(STEP_DELIMITER) if s.strip())
            if steps:
                where.append((i, k))
                rows.append(LabelledSolution(problem, steps, (False,) * len(steps)))
    last = [[0.0] * len(group) for group in texts]
    for (i, k), scores in zip(where, prm_scores(prm, tokenizer, rows), strict=True):
        last[i][k] = scores[-1]
    return [max(range(len(row)), key=row.__getitem__) for row in last]


def train_zoo(out: Path, cfg: ZooConfig | None = None) -> dict[str, Any]:
    """Train the whole zoo into `out/<name>/` and write each model's card (with `cfg.only`, just those models,
    from `cfg.init_dir`); returns the cards."""
    import torch

    from tts.zoo import cards

    cfg = cfg or ZooConfig()
    torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    logfile = (out / "train.log").open("a")

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logfile.write(line + "\n")
        logfile.flush()

    total_start = time.perf_counter()
    card_data = _train_alone(out, cfg, log) if cfg.only else _train_all(out, cfg, log)
    total = round(time.perf_counter() - total_start, 1)
    for name, data in card_data.items():
        if not cfg.only:
            data["zoo_total_seconds"] = total
        data["zoo_scale"] = cfg.scale
        cards.write(out / name, name, data, eval_config=asdict(cfg) | {"log": None, "init_dir": None})
    log(f"{', '.join(card_data)} trained in {total:.0f} s")
    return card_data


def _eval_problems(cfg: ZooConfig) -> list[Any]:
    from tts.data.chain import LEVELS, generate

    return generate(sorted(LEVELS), _scaled(cfg.eval_per_level, cfg.scale, 4), seed=1, split="test")


def _revision_stage(init: Any, out: Path, cfg: ZooConfig, log: Any) -> dict[str, Any]:
    """Train, save and measure zoo-policy-r from `init` (zoo-policy-m); returns its card fields."""
    from tts.zoo import revision
    from tts.zoo.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    model, card = revision.stage(
        init,
        tokenizer,
        revision.RECIPE,
        _eval_problems(cfg),
        scale=cfg.scale,
        temperature=cfg.temperature,
        seed=cfg.seed,
        log=log,
    )
    save_policy(model, tokenizer, out / revision.NAME)
    return card


def _train_alone(out: Path, cfg: ZooConfig, log: Any) -> dict[str, Any]:
    from tts.zoo import revision

    if set(cfg.only) != {revision.NAME} or cfg.init_dir is None:
        raise ValueError(
            f"only: {list(cfg.only)!r}; only {revision.NAME!r} can be trained alone, and it needs the folder "
            f"holding its {revision.RECIPE.init_from} (--from DIR, e.g. tts/zoo/weights)"
        )
    init = _load_policy(cfg.init_dir / revision.RECIPE.init_from)
    card = _revision_stage(init, out, cfg, log)
    card["trained_alone_from"] = f"{revision.RECIPE.init_from} of {cfg.init_dir}"
    return {revision.NAME: card}


def _train_all(out: Path, cfg: ZooConfig, log: Any) -> dict[str, Any]:
    from tts.zoo import revision
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import auroc, label_samples, prm_scores, sample, train_prm, train_problems

    tokenizer = build_tokenizer()
    card_data: dict[str, Any] = {}
    jobs = []
    for name, (spec, train) in POLICIES.items():
        train = replace(
            train, steps=_scaled(train.steps, cfg.scale, 4), warmup=_scaled(train.warmup, cfg.scale, 2)
        )
        jobs.append((name, spec, train, out))
    log(
        f"training {len(jobs)} policies in parallel, one thread each: {[(j[0], j[1], j[2].steps) for j in jobs]}"
    )
    if cfg.threads > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(len(jobs), mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(_policy_job, jobs))
    else:
        results = [_policy_job(j) for j in jobs]
    policies: dict[str, Any] = {}
    for (name, _, _, _), info in zip(jobs, results, strict=True):
        card_data[name] = info
        policies[name] = _load_policy(out / name)
        log(
            f"{name}: {info['params']:,} parameters, {info['train_seconds']} s, loss {info['loss_curve'][-1]}"
        )

    # PRM training data: each listed policy's samples on train-split problems, labelled by the step checker
    sample_cache: dict[tuple[str, int, int], list[Any]] = {}
    prms: dict[str, Any] = {}
    for name, recipe in PRMS.items():
        n_problems = _scaled(recipe.problems, cfg.scale, 6)
        n_samples = recipe.samples
        data = []
        start = time.perf_counter()
        for policy in recipe.sampled_from:
            key = (policy, n_problems, n_samples)
            if key not in sample_cache:
                problems = train_problems(n_problems, seed=5000 + cfg.seed)
                texts = sample(
                    policies[policy], tokenizer, problems, n_samples, cfg.temperature, seed=cfg.seed
                )
                sample_cache[key] = label_samples(problems, texts)
            data += sample_cache[key]
        good = sum(sum(r.labels) for r in data)
        steps_total = sum(len(r.labels) for r in data)
        log(f"{name}: {len(data)} labelled solutions, {good} good / {steps_total - good} bad steps")
        train = replace(
            recipe.train,
            steps=_scaled(recipe.train.steps, cfg.scale, 4),
            warmup=_scaled(recipe.train.warmup, cfg.scale, 2),
        )
        prm, curve = train_prm(
            recipe.spec, train, tokenizer, data, init_from=policies[recipe.init_from], log=log
        )
        prms[name] = prm
        save_prm(prm, tokenizer, out / name)
        card_data[name] = {
            "kind": "prm",
            "architecture": "Qwen2ForProcessRewardModel",
            "spec": asdict(recipe.spec),
            "train": asdict(train),
            "params": sum(p.numel() for p in prm.parameters()),
            "train_seconds": round(time.perf_counter() - start, 1),
            "loss_curve": [round(x, 4) for x in curve],
            "init_from": recipe.init_from,
            "train_data": (
                f"{len(data)} sampled solutions (T={cfg.temperature}) of {', '.join(recipe.sampled_from)} on "
                f"{n_problems} train-split problems x {n_samples} samples; {good} good / "
                f"{steps_total - good} bad steps (exact step checker)"
            ),
        }

    # measurement on held-out problems
    eval_problems = _eval_problems(cfg)
    held_out: list[Any] = []
    for name, model in policies.items():
        start = time.perf_counter()
        greedy = sample(model, tokenizer, eval_problems, 1, 0.0, seed=cfg.seed)
        texts = sample(model, tokenizer, eval_problems, cfg.eval_samples, cfg.temperature, seed=cfg.seed + 1)
        rows = label_samples(eval_problems, texts)
        held_out += rows
        best = {prm_name: best_of(prm, tokenizer, eval_problems, texts) for prm_name, prm in prms.items()}
        card_data[name]["eval"] = _level_table(eval_problems, texts, greedy, best)
        card_data[name]["eval_seconds"] = round(time.perf_counter() - start, 1)
        log(f"{name}: {json.dumps(card_data[name]['eval'])}")
    for prm_name, prm in prms.items():
        scores = prm_scores(prm, tokenizer, held_out)
        flat_s = [s for row in scores for s in row]
        flat_y = [y for r in held_out for y in r.labels]
        value = auroc(flat_s, flat_y)
        card_data[prm_name]["heldout_auroc"] = None if math.isnan(value) else round(value, 4)
        card_data[prm_name]["heldout_steps"] = {"good": sum(flat_y), "bad": len(flat_y) - sum(flat_y)}
        log(f"{prm_name}: held-out step AUROC {value:.4f}")
    # last, so that the models above train and measure exactly as without it
    card_data[revision.NAME] = _revision_stage(policies[revision.RECIPE.init_from], out, cfg, log)
    return card_data
