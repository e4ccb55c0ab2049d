"""The zoo recipe: which models `tts zoo train` trains, on what, for how long, and how it measures them.

Three policies of real, different strength (a size ladder: 0.12M / 0.39M / 1.97M parameters, the larger trained
on more tokens, each until its loss curve flattens) and three trained verifiers in the Qwen2.5-Math-PRM layout,
on the policies' own samples labelled by the exact step checker plus synthetic hard negatives (a step's result,
operand or running value perturbed, the chain continued from the wrong value): `zoo-prm-l` and `zoo-prm-s`
(objective "prefix": every token says whether the text so far is right, with a language-modelling loss, on the
zoo-policy-l and zoo-policy-m bodies) and the ORM `zoo-orm` (objective "outcome"). What made the difference for
the verifier axis: the plain step-label head learns the steps' position (FIELD_NOTES); the dense objective
lifts it only to a weak PRM (step AUROC ~0.8), because the head at a step tag must compare a token with the
body's prediction one position earlier, which it does not learn in minutes; reading that comparison directly,
zoo-policy-l's own probability of each step (JUDGES, tts.engines.likelihood_prm), is the strong verifier.

Every number here is a count (steps, problems, samples), never a time budget, so a run is reproducible from its
seed. `scale` multiplies every count (the tests train at scale ~0.02). Resumable model by model: each finished
model's folder holds `stage.json` (its recipe and card); a run finding one with the same recipe (and the same
models under it) keeps it. Last, `zoo-policy-r` (tts.zoo.revision): the revision-capable policy, fine-tuned from
zoo-policy-m on revision conversations of its own samples; `ZooConfig.only = ("zoo-policy-r",)` with `init_dir`
trains only it from an existing zoo-policy-m folder (`tts zoo train --only zoo-policy-r --from tts/zoo/weights
--out tts/zoo/weights`), leaving the others untouched.

Measurement, on held-out test-split problems (seed 1, disjoint from all training problems by the split rule of
tts.data.chain): per level, greedy pass@1, and over `eval_samples` samples at T=0.8 pass@1, pass@k, majority@k,
and per verifier best-of-k and weighted best-of-k (last-step score), each the sweep estimators' exact
expectation with a 95% interval over problems; each verifier's step AUROC and outcome AUROC on those samples.
Training FLOPs are 6 x parameters x tokens processed. The results go to `card.json` and `MODEL_CARD.md` in each
folder; `python -m tts.zoo.world_card` renders docs/zoo.md from them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from tts.zoo.train import ModelSpec, TrainSpec

POLICIES: dict[str, tuple[ModelSpec, TrainSpec]] = {
    "zoo-policy-s": (ModelSpec(64, 2, 2, 192), TrainSpec(steps=2000, batch=32, warmup=100, seed=11)),
    "zoo-policy-m": (ModelSpec(96, 3, 3, 288), TrainSpec(steps=2500, batch=32, warmup=100, seed=12)),
    "zoo-policy-l": (ModelSpec(192, 4, 6, 576), TrainSpec(steps=3000, batch=32, warmup=100, seed=13)),
}


@dataclass(frozen=True)
class PRMRecipe:
    """A verifier in the Qwen2.5-Math-PRM layout; `objective` is what its head is trained to say
    (tts.zoo.train.train_prm): `prefix` (every token: "the text so far is right", with a language-modelling
    loss), `steps` (one bit per step tag: the recipe that learns little, kept for the weak verifier) or
    `outcome` (an ORM: every token says whether the final answer is right; read at the last step)."""

    spec: ModelSpec
    train: TrainSpec
    init_from: str  # the policy whose body it starts from
    sampled_from: tuple[str, ...]  # whose samples it is trained on
    problems: int  # train-split problems sampled (each policy)
    samples: int  # samples per problem (each policy)
    objective: str = "steps"
    negative_share: float = 0.0  # of each batch: synthetic hard negatives (tts.zoo.train.corrupt)


ALL_POLICIES = tuple(POLICIES)
# Verifiers that are a policy's own likelihood (tts.engines.likelihood_prm, conf/prm/zoo_judge_l.yaml): nothing
# to train, measured beside the trained ones.
JUDGES: dict[str, str] = {"zoo-judge-l": "zoo-policy-l"}
PRMS: dict[str, PRMRecipe] = {
    "zoo-prm-l": PRMRecipe(  # the dense objective on the largest body (measured: no better than zoo-prm-s)
        POLICIES["zoo-policy-l"][0],
        TrainSpec(steps=800, batch=32, lr=1e-3, warmup=50, seed=21),
        init_from="zoo-policy-l",
        sampled_from=ALL_POLICIES,
        problems=300,
        samples=8,
        objective="prefix",
        negative_share=0.3,
    ),
    "zoo-prm-s": PRMRecipe(  # the weak PRM: the same objective on the middle body, shorter
        POLICIES["zoo-policy-m"][0],
        TrainSpec(steps=400, batch=32, lr=1e-3, warmup=50, seed=22),
        init_from="zoo-policy-m",
        sampled_from=ALL_POLICIES,
        problems=300,
        samples=8,
        objective="prefix",
        negative_share=0.3,
    ),
    "zoo-orm": PRMRecipe(  # the outcome reward model
        POLICIES["zoo-policy-m"][0],
        TrainSpec(steps=600, batch=32, lr=1e-3, warmup=50, seed=23),
        init_from="zoo-policy-m",
        sampled_from=ALL_POLICIES,
        problems=300,
        samples=8,
        objective="outcome",
        negative_share=0.3,
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


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean over problems and its normal-approximation 95% interval."""
    n = len(values)
    mean = sum(values) / n
    half = 1.96 * math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, n - 1) / n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def _level_table(
    problems: list[Any],
    samples: list[list[str]],
    greedy: list[list[str]],
    scores: dict[str, list[list[float]]],
) -> tuple[dict, dict]:
    """Per level: greedy and T>0 pass@1, pass@k, majority@k and, per verifier, best-of-k and weighted
    best-of-k on the last-step score, each the exact expectation the sweep's own estimators give
    (tts.strategies.estimators) over the whole pool; returns (means, 95% intervals over problems)."""
    from tts.grading import extract_answer
    from tts.strategies.estimators import (
        expected_best_of_k,
        expected_majority_at_k,
        expected_weighted_best_of_k,
    )
    from tts.strategies.voting import answer_groups
    from tts.zoo.train import is_correct

    k = len(samples[0])
    table: dict[int, dict[str, float]] = {}
    intervals: dict[int, dict[str, list[float]]] = {}
    for level in sorted({p.level for p in problems}):
        idx = [i for i, p in enumerate(problems) if p.level == level]
        per: dict[str, list[float]] = {"greedy": [], "pass@1": [], f"pass@{k}": [], f"majority@{k}": []}
        for i in idx:
            flags = [is_correct(problems[i], t) for t in samples[i]]
            groups = answer_groups([extract_answer(t).answer for t in samples[i]])
            per["greedy"].append(float(is_correct(problems[i], greedy[i][0])))
            per["pass@1"].append(sum(flags) / k)
            per[f"pass@{k}"].append(float(any(flags)))
            per[f"majority@{k}"].append(expected_majority_at_k(groups, flags, k))
            for name, rows in scores.items():
                per.setdefault(f"{name}-bon@{k}", []).append(expected_best_of_k(rows[i], flags, k))
                per.setdefault(f"{name}-weighted@{k}", []).append(
                    expected_weighted_best_of_k(groups, rows[i], flags, k).value
                )
        stats = {m: _mean_ci(v) for m, v in per.items()}
        table[level] = {"problems": len(idx)} | {m: round(v[0], 4) for m, v in stats.items()}
        intervals[level] = {m: [round(v[1], 4), round(v[2], 4)] for m, v in stats.items()}
    return table, intervals


def last_scores(score: Any, problems: list[Any], texts: list[list[str]]) -> list[list[float]]:
    """Each sample's last-step verifier score (`score(rows)`: per-step scores of LabelledSolutions; an empty
    sample scores 0), per problem."""
    from tts.data.chain import STEP_DELIMITER
    from tts.strategies.steps import split_steps
    from tts.zoo.train import LabelledSolution

    where, rows = [], []
    for i, (problem, group) in enumerate(zip(problems, texts, strict=True)):
        for k, text in enumerate(group):
            steps = split_steps(text, STEP_DELIMITER)
            if steps:
                where.append((i, k))
                rows.append(LabelledSolution(problem, steps, (False,) * len(steps)))
    last = [[0.0] * len(group) for group in texts]
    for (i, k), scores in zip(where, score(rows), strict=True):
        last[i][k] = scores[-1]
    return last


def _stage_key(*parts: Any) -> dict[str, Any]:
    """What a finished model's `stage.json` must match to be reused by a resumed run (its recipe, as JSON)."""
    return json.loads(json.dumps([asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts]))


def _finished(folder: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The card fields of a model trained earlier with the same recipe (resumable model by model), or None."""
    stage = folder / "stage.json"
    if not stage.exists():
        return None
    data = json.loads(stage.read_text())
    return data["card"] if data.get("key") == key else None


def _save_stage(folder: Path, key: Any, card: dict[str, Any]) -> None:
    (folder / "stage.json").write_text(json.dumps({"key": key, "card": card}, indent=1) + "\n")


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
    counts: dict[str, int] = {}
    with (out / f"train-{name}.log").open("a") as f:
        model, curve = train_policy(
            spec, train, tokenizer, log=lambda m: print(m, file=f, flush=True), counts=counts
        )
    params = sum(p.numel() for p in model.parameters())
    save_policy(model, tokenizer, out / name)
    card = {
        "kind": "policy",
        "architecture": "Qwen2ForCausalLM",
        "spec": asdict(spec),
        "train": asdict(train),
        "params": params,
        "train_seconds": round(time.perf_counter() - start, 1),
        "train_tokens": counts["tokens"],
        "train_flops": 6 * params * counts["tokens"],
        "loss_curve": [round(x, 4) for x in curve],
        "train_data": f"{train.steps * train.batch} train-split chain problems, levels 1-{max(LEVELS)} uniform",
    }
    _save_stage(out / name, _stage_key(spec, train), card)
    return card


def _load_policy(folder: Path) -> Any:
    """The saved (fp16) policy, upcast to fp32: what is measured is what ships."""
    from transformers import Qwen2ForCausalLM

    return Qwen2ForCausalLM.from_pretrained(folder, dtype="float32").eval()


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
    init_stage = out / revision.RECIPE.init_from / "stage.json"
    under = json.loads(init_stage.read_text())["key"] if init_stage.exists() else None
    key = _stage_key(revision.RECIPE, cfg.scale, cfg.temperature, cfg.seed, cfg.eval_per_level, under)
    done = _finished(out / revision.NAME, key) if under is not None else None
    if done is not None:
        log(f"{revision.NAME}: kept (trained earlier with the same recipe)")
        return done
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
    if under is not None:
        _save_stage(out / revision.NAME, key, card)
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


def train_policies(out: Path, cfg: ZooConfig, log: Any) -> dict[str, Any]:
    """Train the size ladder (resumable: a policy whose `stage.json` holds the same recipe is kept), on
    `cfg.threads` worker processes of one torch thread each, largest first so the longest job starts first;
    returns each policy's card fields."""
    card_data: dict[str, Any] = {}
    jobs = []
    for name, (spec, train) in POLICIES.items():
        train = replace(
            train, steps=_scaled(train.steps, cfg.scale, 4), warmup=_scaled(train.warmup, cfg.scale, 2)
        )
        done = _finished(out / name, _stage_key(spec, train))
        if done is not None:
            card_data[name] = done
            log(f"{name}: kept (trained earlier with the same recipe)")
        else:
            jobs.append((name, spec, train, out))
    jobs.sort(key=lambda j: -j[1].hidden * j[1].hidden * j[1].layers)
    log(f"training {len(jobs)} policies on {cfg.threads} workers: {[(j[0], j[1], j[2].steps) for j in jobs]}")
    if cfg.threads > 1 and len(jobs) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(cfg.threads, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(_policy_job, jobs))
    else:
        results = [_policy_job(j) for j in jobs]
    for (name, _, _, _), info in zip(jobs, results, strict=True):
        card_data[name] = info
        log(
            f"{name}: {info['params']:,} parameters, {info['train_seconds']} s, loss {info['loss_curve'][-1]}"
        )
    return {name: card_data[name] for name in POLICIES}


def _samples(
    out: Path, cfg: ZooConfig, policies: dict[str, Any], policy: str, n_problems: int, n: int
) -> list[Any]:
    """`policy`'s labelled samples on train-split problems (cached in `out/samples/`, so a resumed run does not
    sample again; the cache key is the count, the seed and the policy's own stage.json)."""
    from tts.data.chain import check_steps
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import LabelledSolution, label_samples, sample, train_problems

    problems = train_problems(n_problems, seed=5000 + cfg.seed)
    stage = json.loads((out / policy / "stage.json").read_text())["key"]
    cache = out / "samples" / f"{policy}-{n_problems}x{n}-T{cfg.temperature}-s{cfg.seed}.json"
    cached = json.loads(cache.read_text()) if cache.exists() else None
    if cached is not None and cached["policy_stage"] == stage:
        return [
            LabelledSolution(problems[i], tuple(st), tuple(check_steps(problems[i], st)))
            for i, st in cached["steps"]
        ]
    texts = sample(policies[policy], build_tokenizer(), problems, n, cfg.temperature, seed=cfg.seed)
    rows = label_samples(problems, texts)
    index = {p.id: i for i, p in enumerate(problems)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    payload = {"policy_stage": stage, "steps": [[index[r.problem.id], list(r.steps)] for r in rows]}
    cache.write_text(json.dumps(payload))
    return rows


def _load_prm(folder: Path, spec: ModelSpec) -> Any:
    """The saved (fp16) verifier, upcast to fp32."""
    from safetensors.torch import load_file

    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import prm_module

    prm = prm_module(spec, build_tokenizer())
    prm.load_state_dict({k: v.float() for k, v in load_file(folder / "model.safetensors").items()})
    return prm.eval()


def train_verifiers(out: Path, cfg: ZooConfig, policies: dict[str, Any], log: Any) -> dict[str, Any]:
    """Train every verifier of PRMS (resumable: one whose stage.json holds the same recipe, and the same
    policies under it, is kept) on its policies' labelled samples plus synthetic hard negatives; returns each
    one's card fields."""
    import random

    from tts.data.chain import check_steps
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import LabelledSolution, corrupt, train_prm, train_problems

    tokenizer = build_tokenizer()
    card_data: dict[str, Any] = {}
    stream = train_problems(_scaled(20000, cfg.scale, 100), seed=7000 + cfg.seed)

    def negative(rng: random.Random) -> Any:
        problem = stream[rng.randrange(len(stream))]
        steps = corrupt(problem, rng)
        return LabelledSolution(problem, steps, tuple(check_steps(problem, steps)))

    for name, recipe in PRMS.items():
        n_problems = _scaled(recipe.problems, cfg.scale, 6)
        train = replace(
            recipe.train,
            steps=_scaled(recipe.train.steps, cfg.scale, 4),
            warmup=_scaled(recipe.train.warmup, cfg.scale, 2),
        )
        under = {p: json.loads((out / p / "stage.json").read_text())["key"] for p in recipe.sampled_from}
        key = _stage_key(replace(recipe, train=train), n_problems, cfg.temperature, cfg.seed, under)
        done = _finished(out / name, key)
        if done is not None:
            card_data[name] = done
            log(f"{name}: kept (trained earlier with the same recipe)")
            continue
        start = time.perf_counter()
        data = [
            r
            for policy in recipe.sampled_from
            for r in _samples(out, cfg, policies, policy, n_problems, recipe.samples)
        ]
        good = sum(sum(r.labels) for r in data)
        steps_total = sum(len(r.labels) for r in data)
        log(f"{name}: {len(data)} labelled solutions, {good} good / {steps_total - good} bad steps")
        counts: dict[str, int] = {}
        prm, curve = train_prm(
            recipe.spec,
            train,
            tokenizer,
            data,
            init_from=policies[recipe.init_from],
            log=log,
            objective=recipe.objective,
            negatives=negative if recipe.negative_share else None,
            negative_share=recipe.negative_share,
            counts=counts,
        )
        save_prm(prm, tokenizer, out / name)
        params = sum(p.numel() for p in prm.parameters())
        negatives = round(train.batch * recipe.negative_share) * train.steps
        card_data[name] = {
            "kind": "prm" if recipe.objective != "outcome" else "orm",
            "architecture": "Qwen2ForProcessRewardModel",
            "objective": recipe.objective,
            "spec": asdict(recipe.spec),
            "train": asdict(train),
            "params": params,
            "train_seconds": round(time.perf_counter() - start, 1),
            "train_tokens": counts["tokens"],
            "train_flops": 6 * params * counts["tokens"],
            "loss_curve": [round(x, 4) for x in curve],
            "init_from": recipe.init_from,
            "train_data": (
                f"{len(data)} sampled solutions (T={cfg.temperature}) of {', '.join(recipe.sampled_from)} on "
                f"{n_problems} train-split problems x {recipe.samples} samples; {good} good / "
                f"{steps_total - good} bad steps (exact step checker)"
                + (f"; {negatives} synthetic hard negatives (one step corrupted)" if negatives else "")
            ),
        }
        _save_stage(out / name, key, card_data[name])
    return card_data


def _train_all(out: Path, cfg: ZooConfig, log: Any) -> dict[str, Any]:
    from tts.zoo import revision
    from tts.zoo.tokenizer import build_tokenizer
    from tts.zoo.train import auroc, is_correct, label_samples, likelihood_scores, prm_scores, sample

    tokenizer = build_tokenizer()
    card_data = train_policies(out, cfg, log)
    policies = {name: _load_policy(out / name) for name in POLICIES}

    card_data |= train_verifiers(out, cfg, policies, log)
    prms = {name: _load_prm(out / name, PRMS[name].spec) for name in PRMS}

    # measurement on held-out problems: the trained verifiers and the likelihood verifiers (JUDGES)
    verifiers = {name: partial(prm_scores, prm, tokenizer) for name, prm in prms.items()}
    verifiers |= {name: partial(likelihood_scores, policies[p], tokenizer) for name, p in JUDGES.items()}
    eval_problems = _eval_problems(cfg)
    held_out: list[Any] = []
    outcomes: list[bool] = []
    last_by_verifier: dict[str, list[float]] = {}
    for name, model in policies.items():
        start = time.perf_counter()
        greedy = sample(model, tokenizer, eval_problems, 1, 0.0, seed=cfg.seed)
        texts = sample(model, tokenizer, eval_problems, cfg.eval_samples, cfg.temperature, seed=cfg.seed + 1)
        rows = label_samples(eval_problems, texts)
        held_out += rows
        scores = {v: last_scores(fn, eval_problems, texts) for v, fn in verifiers.items()}
        card_data[name]["eval"], card_data[name]["eval_ci95"] = _level_table(
            eval_problems, texts, greedy, scores
        )
        outcomes += [is_correct(p, t) for p, group in zip(eval_problems, texts, strict=True) for t in group]
        for v, rows_v in scores.items():
            last_by_verifier.setdefault(v, []).extend(x for row in rows_v for x in row)
        card_data[name]["eval_seconds"] = round(time.perf_counter() - start, 1)
        log(f"{name}: {json.dumps(card_data[name]['eval'])}")
    for v, fn in verifiers.items():
        flat_s = [s for row in fn(held_out) for s in row]
        flat_y = [y for r in held_out for y in r.labels]
        value, outcome = auroc(flat_s, flat_y), auroc(last_by_verifier[v], outcomes)
        measured = {
            "heldout_auroc": None if math.isnan(value) else round(value, 4),
            "heldout_steps": {"good": sum(flat_y), "bad": len(flat_y) - sum(flat_y)},
            "heldout_outcome_auroc": round(outcome, 4),
        }
        if v in JUDGES:  # not a model of its own: recorded on the policy it reads
            card_data[JUDGES[v]].setdefault("as_verifier", {})[v] = measured
        else:
            card_data[v] |= measured
        log(f"{v}: held-out step AUROC {value:.4f}, outcome AUROC (last step vs answer) {outcome:.4f}")
    # last, so that the models above train and measure exactly as without it
    card_data[revision.NAME] = _revision_stage(policies[revision.RECIPE.init_from], out, cfg, log)
    return card_data
