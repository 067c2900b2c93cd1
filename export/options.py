"""Command-line options more than one CLI takes (export, export.repository, evaluation), defined once."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import get_args

from app.contract.manifest import AccuracyBudget, Precision

PRECISIONS: tuple[Precision, ...] = get_args(Precision)
INT8_CHOICES = ("budget", "fastest", "accurate")


def precision_list(text: str) -> list[Precision]:
    """Parse "fp32,int8" into precisions, rejecting unknown names."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in PRECISIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(PRECISIONS)} (got {text!r})")
    return [p for p in PRECISIONS if p in names]


def add_precisions(
    cli: argparse.ArgumentParser, what: str, default: Sequence[Precision] = PRECISIONS
) -> None:
    """`--precisions`: comma-separated variants; `what` says what they are for."""
    cli.add_argument(
        "--precisions",
        type=precision_list,
        default=list(default),
        help=f"comma-separated variants {what} (default {','.join(default)})",
    )


def add_int8_choice(cli: argparse.ArgumentParser) -> None:
    """`--int8-choice`: which int8 graph to write among the candidates, and whether auto serves it."""
    cli.add_argument(
        "--int8-choice",
        choices=list(INT8_CHOICES),
        default="budget",
        help="int8 graph to write among the candidates (fused/unfused, per tensor/channel, partial): "
        "budget (default): the fastest within the accuracy budget on --eval-data, served by default, "
        "else the most accurate, not served by default; fastest: the fastest that passes parity, served "
        "by default (speed over agreement); accurate: the most accurate that passes, served by default",
    )


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction within 0..1, got {text}")
    return value


def points(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"expected points >= 0, got {text}")
    return value


def add_budget(cli: argparse.ArgumentParser) -> None:
    """`--min-agreement` and `--max-metric-drop`: the accuracy budget int8 is held to on the
    evaluation data."""
    default = AccuracyBudget()
    cli.add_argument(
        "--min-agreement",
        type=fraction,
        default=default.min_agreement,
        help="budget: fraction of answers equal to PyTorch fp32's (default %(default)s)",
    )
    cli.add_argument(
        "--max-metric-drop",
        type=points,
        default=default.max_metric_drop,
        help="budget: points each task metric may lose against PyTorch fp32 (default %(default)s)",
    )


def budget_of(args: argparse.Namespace) -> AccuracyBudget:
    return AccuracyBudget(min_agreement=args.min_agreement, max_metric_drop=args.max_metric_drop)
