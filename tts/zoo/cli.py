"""`tts zoo train --out DIR [--scale S]`: train the zoo (tts.zoo.recipe) and write its model cards.

Resumable model by model: a model whose folder holds a `stage.json` with the same recipe (and the same models
under it) is kept, so an interrupted run started again trains only what is missing. `python -m
tts.zoo.world_card` then renders docs/zoo.md from the cards.

`tts zoo train --only zoo-policy-r --from tts/zoo/weights --out tts/zoo/weights` trains only the revision
policy, from the zoo-policy-m in the --from folder (the other folders in --out are left as they are).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from tts.zoo import REVISION_POLICY


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tts zoo", description="Train the zoo's policies and PRMs on CPU.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train every zoo model into DIR (the shipped ones: tts/zoo/weights)")
    t.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output folder (one sub-folder per model; models already trained there with the same recipe are kept)",
    )
    t.add_argument("--scale", type=float, default=1.0, help="multiply every step/problem count (default 1)")
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    t.add_argument("--seed", type=int, default=0, help="sampling/evaluation seed (default 0)")
    t.add_argument(
        "--only",
        choices=[REVISION_POLICY],
        action="append",
        default=[],
        help="train only this model (it starts from the zoo-policy-m in --from)",
    )
    t.add_argument("--from", dest="init_dir", type=Path, help="with --only: the folder holding zoo-policy-m")
    args = p.parse_args(list(argv) if argv is not None else None)
    if bool(args.only) != (args.init_dir is not None):
        p.error("--only and --from go together (e.g. --only zoo-policy-r --from tts/zoo/weights)")
    from tts.zoo.recipe import ZooConfig, train_zoo

    cfg = ZooConfig(
        scale=args.scale, threads=args.threads, seed=args.seed, only=tuple(args.only), init_dir=args.init_dir
    )
    train_zoo(args.out, cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
