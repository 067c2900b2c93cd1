"""`python -m tools.training.rescore demo/squad-minilm [--data-dir DIR]`: score a trained head again with
today's scorer and rewrite its dev_scores.json and model card (the weights are not touched)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python -m tools.training.rescore", description=__doc__.splitlines()[0]
    )
    cli.add_argument("out", type=Path, nargs="+", help="trained head folders, e.g. demo/squad-minilm")
    cli.add_argument("--data-dir", type=Path, help="data folder (default: the one it was trained with)")
    args = cli.parse_args(argv)
    from tools.training.pipeline import rescore

    for out in args.out:
        rescore(out, args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
