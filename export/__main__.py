"""CLI: python -m export --model PATH_OR_HUB_ID --task {classify,pair,qa,ner} --out models/NAME."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from app.contract.manifest import Precision
from export.accuracy import EvalOptions
from export.errors import ExportError
from export.options import PRECISIONS, add_budget, add_int8_choice, add_precisions, budget_of
from export.tasks import TASKS
from export.tolerances import DEFAULT_TOLERANCES, Tolerance


def parser(prog: str = "python -m export") -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog=prog,
        description="Export a BERT-family checkpoint (BERT, MiniLM, RoBERTa, XLM-R, DistilBERT, ELECTRA, "
        "DeBERTa-v2/v3) into a fused, validated ONNX model folder for bertserve.",
    )
    cli.add_argument("--model", required=True, help="checkpoint folder, or a hub id (needs the hub)")
    cli.add_argument("--task", required=True, choices=list(TASKS), help="the head to serve")
    cli.add_argument("--out", required=True, type=Path, help="model folder to create, e.g. models/NAME")
    add_precisions(cli, "to write")
    cli.add_argument(
        "--max-length", type=int, help="longest input in tokens (default: what the model allows)"
    )
    cli.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    cli.add_argument("--name", help="model name in the manifest (default: the --out folder name)")
    cli.add_argument("--force", action="store_true", help="replace an existing --out")
    cli.add_argument("--strict", action="store_true", help="fail when any variant is over tolerance")
    add_int8_choice(cli)
    cli.add_argument(
        "--eval-data",
        type=Path,
        help="labelled data every variant is scored on against PyTorch fp32: JSONL in the task's request "
        "shape plus an optional gold answer, or SST-2/MRPC TSV, CoNLL-2003, SQuAD v1.1 JSON (docs: "
        "exporting). Without it int8 is written but not served by default (--int8-choice budget)",
    )
    cli.add_argument(
        "--eval-limit", type=int, help="score a seeded random subset of this many examples (default: all)"
    )
    cli.add_argument("--eval-seed", type=int, default=0, help="seed of that subset (default 0)")
    add_budget(cli)
    for precision in PRECISIONS:
        default = DEFAULT_TOLERANCES[precision]
        cli.add_argument(
            f"--atol-{precision}",
            type=float,
            metavar="X",
            help=f"absolute part of the {precision} max |diff| bound (default {default.atol:g})",
        )
        cli.add_argument(
            f"--rtol-{precision}",
            type=float,
            metavar="X",
            help=f"part of the {precision} bound relative to the output scale (default {default.rtol:g})",
        )
        cli.add_argument(
            f"--agreement-{precision}",
            type=float,
            metavar="F",
            help=f"minimum {precision} decision agreement (default {default.min_agreement:g})",
        )
    return cli


def tolerances(args: argparse.Namespace) -> dict[Precision, Tolerance]:
    """The default table with the command line's overrides applied."""
    table = dict(DEFAULT_TOLERANCES)
    for precision in PRECISIONS:
        changes = {
            field: value
            for field, option in (("atol", "atol"), ("rtol", "rtol"), ("min_agreement", "agreement"))
            if (value := getattr(args, f"{option}_{precision}")) is not None
        }
        table[precision] = replace(table[precision], **changes)
    return table


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None, prog: str = "python -m export") -> int:
    args = parser(prog).parse_args(argv)
    from export.pipeline import export_model  # after argument errors: importing torch takes seconds

    try:
        export_model(
            args.model,
            args.task,
            args.out,
            precisions=args.precisions,
            max_length=args.max_length,
            opset=args.opset,
            force=args.force,
            name=args.name,
            progress=_print,
            tolerances=tolerances(args),
            strict=args.strict,
            int8_choice=args.int8_choice,
            evaluation=EvalOptions(args.eval_data, args.eval_limit, args.eval_seed, budget=budget_of(args))
            if args.eval_data
            else None,
        )
    except ExportError as error:
        _print(f"error: {error}")
        return error.exit_code
    except KeyboardInterrupt:
        _print("interrupted; nothing was written")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
