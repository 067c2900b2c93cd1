"""python -m tools.evaluation: score each demo head through the real server, beside transformers.pipeline.

Exit status: 0 when every goal is met (or there was nothing to score), 1 when a goal is missed or
a head could not be scored at a precision asked for, 2 when the evaluation could not run.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from export.options import PRECISIONS
from tools.evaluation.goals import AUTO
from tools.evaluation.heads import DEMO_HEADS, demo_targets
from tools.evaluation.report import format_table, write_json
from tools.evaluation.repository import EvaluationError, ensure_built
from tools.evaluation.runner import Settings, evaluate
from tools.training.config import DATA_DIR_ENV, default_data_dir


def precisions_to_score(text: str) -> list[str]:
    """The export's precisions, plus auto."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = (*PRECISIONS, AUTO)
    if not names or any(name not in known for name in names):
        raise argparse.ArgumentTypeError(f"choose from {','.join(known)} (got {text!r})")
    return names


def parser(prog: str = "python -m tools.evaluation") -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    cli.add_argument("--models-dir", type=Path, default=Path("models"), help="the model repository")
    cli.add_argument("--demo-dir", type=Path, default=Path("demo"), help="the demo checkpoints")
    cli.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"data sets (default ${DATA_DIR_ENV} or ../shared/data)",
    )
    cli.add_argument(
        "--precisions",
        type=precisions_to_score,
        default=["fp32", AUTO],
        help="comma-separated: fp32, fp16, int8, or auto (the variant served by default) (default fp32,auto)",
    )
    cli.add_argument("--heads", help=f"comma-separated subset of {','.join(h.folder for h in DEMO_HEADS)}")
    cli.add_argument("--limit", type=int, help="score a seeded random subset of N examples per head")
    cli.add_argument("--batch", type=int, default=32, help="inputs per request (and pipeline batch size)")
    cli.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    cli.add_argument("--threads", type=int, default=0, help="server ONNX Runtime threads (0: one per core)")
    cli.add_argument("--out", type=Path, default=Path("results/eval.json"), help="the JSON report")
    return cli


def main(argv: Sequence[str] | None = None, prog: str = "python -m tools.evaluation") -> int:
    args = parser(prog).parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so servers started are stopped

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    data_dir = args.data_dir or default_data_dir()
    only = set(args.heads.split(",")) if args.heads else None
    targets, skipped = demo_targets(args.demo_dir, data_dir, only)
    for head, why in skipped.items():
        say(f"skip {head}: {why}")
    if not targets:
        say("nothing to evaluate")
        return 0
    built = [p for p in PRECISIONS if p in args.precisions or AUTO in args.precisions]
    problems = ensure_built(targets, args.demo_dir, args.models_dir, built, say, data_dir=data_dir)
    if problems:
        say("\n".join(problems))
        return 2
    settings = Settings(
        precisions=tuple(args.precisions),
        limit=args.limit,
        batch=args.batch,
        concurrency=args.concurrency,
        threads=args.threads,
    )
    try:
        rows, unscored = evaluate(targets, args.models_dir, settings, say)
    except (EvaluationError, RuntimeError) as error:
        say(f"evaluation failed: {error}")
        return 2
    print(format_table(rows))
    for what, why in unscored.items():
        print(f"not scored: {what}: {why}")
    write_json(args.out, rows, skipped, unscored, {**vars(settings), "data_dir": str(data_dir)})
    say(f"wrote {args.out}")
    missed = [f"{r.head} {r.precision}: {r.goal}" for r in rows if r.passed is False]
    for line in missed:
        say(f"goal missed: {line}")
    return 1 if missed or unscored else 0


if __name__ == "__main__":
    sys.exit(main())
