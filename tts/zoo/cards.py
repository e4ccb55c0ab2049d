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
    if data["kind"] == "prm":
        lines += [
            f"- Body initialised from {data['init_from']}",
            f"- Held-out step AUROC: {data.get('heldout_auroc')} ({data.get('heldout_steps')} steps of all zoo "
            "policies' samples on held-out test-split problems)",
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
    (folder / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
