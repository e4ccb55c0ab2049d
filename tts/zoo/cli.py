"""`tts zoo train --out DIR [--scale S]`: train the zoo (tts.zoo.recipe) and write its model cards."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tts zoo", description="Train the zoo's policies and PRMs on CPU.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train every zoo model into DIR (the shipped ones: tts/zoo/weights)")
    t.add_argument("--out", required=True, type=Path, help="output folder (one sub-folder per model)")
    t.add_argument("--scale", type=float, default=1.0, help="multiply every step/problem count (default 1)")
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    t.add_argument("--seed", type=int, default=0, help="sampling/evaluation seed (default 0)")
    args = p.parse_args(list(argv) if argv is not None else None)
    from tts.zoo.recipe import ZooConfig, train_zoo

    train_zoo(args.out, ZooConfig(scale=args.scale, threads=args.threads, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
