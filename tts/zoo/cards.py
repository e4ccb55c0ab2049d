"""Model cards: `card.json` (machine-readable, read by the tests' regression checks) and `MODEL_CARD.md`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write(folder: Path, name: str, data: dict[str, Any], eval_config: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "card.json").write_text(
        json.dumps({"name": name, **data, "eval_config": eval_config}, indent=2) + "\n"
    )
    lines = [
        f"# {name}",
        "",
        f"{data['architecture']}, {data['params']:,} parameters ({data['spec']}), trained by `tts zoo train` "
        f"(tts/zoo/recipe.py) in {data['train_seconds']} s on CPU.",
        "",
        f"- Training: {data['train']}",
        f"- Data: {data['train_data']}",
        f"- Loss (mean per 50 steps): first {data['loss_curve'][0]}, last {data['loss_curve'][-1]}",
    ]
    if "train_flops" in data:
        lines.append(
            f"- Training compute: {data['train_tokens']:,} tokens processed (padding included), "
            f"{data['train_flops']:.3g} FLOPs (6 x parameters x tokens)"
        )
    if data["kind"] in ("prm", "orm"):
        lines += [
            f"- Body initialised from {data['init_from']}; objective `{data.get('objective', 'steps')}` "
            "(tts.zoo.train.train_prm)",
            f"- Held-out step AUROC: {data.get('heldout_auroc')} ({data.get('heldout_steps')} steps of all zoo "
            "policies' samples on held-out test-split problems)",
            f"- Held-out outcome AUROC (last-step score vs the answer's correctness): "
            f"{data.get('heldout_outcome_auroc')}",
        ]
    if "eval" in data:
        rows = data["eval"]
        cols = [c for c in next(iter(rows.values())) if c != "problems"]
        lines += [
            "",
            f"Measured on held-out test-split chain problems (seed 1), samples at T={eval_config['temperature']}:",
            "",
            "| level | problems | " + " | ".join(cols) + " |",
            "|---" * (len(cols) + 2) + "|",
        ]
        for level, row in rows.items():
            lines.append(
                f"| {level} | {int(row['problems'])} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |"
            )
    if "revision_eval" in data:
        lines += _revision_lines(data, eval_config)
    (folder / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")


def _revision_lines(data: dict[str, Any], eval_config: dict[str, Any]) -> list[str]:
    """The revision curve of each measured model, per level, with the paired gains and what they say."""
    table = data["revision_eval"]
    first = next(iter(table.values()))
    models = [k for k in first if isinstance(first[k], dict)]
    attempts = sorted(k for k in first[models[0]] if k.startswith("attempt_"))
    maj = [k for k in first[models[0]] if k.startswith("majority@")]
    lines = [
        f"- Body initialised from {data['init_from']}; longest training conversation "
        f"{data['longest_train_tokens']} tokens; history k = {data['history']}; instruction: "
        f'"{data["instruction"]}"',
        "",
        f"Revision chains on held-out test-split chain problems (seed 1), {first['chains']} chains a problem at "
        f"T={eval_config['temperature']}: attempt j sees the j - 1 earlier attempts of its chain (attempt 1 is an "
        "independent sample, so its accuracy is pass@1). Gain: attempt "
        f"{len(attempts)} - attempt 1, paired over problems, +- 1.96 standard errors; sequential - parallel: "
        f"majority over a chain's {len(attempts)} attempts minus majority over {len(attempts)} independent "
        'samples. A verdict other than "no effect" needs the 95% CI to exclude 0.',
    ]
    pooled = table.get("all", first)
    lines += ["", "What it shows (attempt 1 = pass@1 of independent samples):", ""]
    for model in models:
        said = "; ".join(
            f"level {level}: {row[model]['revision_verdict']} ({row[model]['revision_gain']:+.2f})"
            for level, row in table.items()
            if level != "all"
        )
        lines.append(
            f"- {model}: pass@1 {pooled[model]['attempt_1']:.3f}, attempt {len(attempts)} "
            f"{pooled[model][attempts[-1]]:.3f} over {pooled['problems']} problems; do revisions help? {said}"
        )
    for model in models:
        lines += [
            "",
            f"**{model}**",
            "",
            "| level | problems | "
            + " | ".join(a.replace("_", " ") for a in attempts + maj)
            + " | gain | revisions | sequential - parallel | sequential |",
            "|---" * (len(attempts) + len(maj) + 6) + "|",
        ]
        for level, row in table.items():
            r = row[model]
            cells = [f"{r[c]:.3f}" for c in attempts + maj]
            cells += [
                f"{r['revision_gain']:+.3f} +- {1.96 * r['revision_gain_se']:.3f}",
                r["revision_verdict"],
            ]
            if "sequential_verdict" in r:
                se = 1.96 * r["sequential_minus_parallel_se"]
                cells += [f"{r['sequential_minus_parallel']:+.3f} +- {se:.3f}", r["sequential_verdict"]]
            else:
                cells += ["", ""]
            lines.append(f"| {level} | {row['problems']} | " + " | ".join(cells) + " |")
    return lines
