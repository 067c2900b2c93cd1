"""Command-line options more than one CLI takes (export, export.repository, evaluation), defined once."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import get_args

from app.contract.manifest import Precision

PRECISIONS: tuple[Precision, ...] = get_args(Precision)
INT8_CHOICES = ("fastest", "accurate")


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
    """`--int8-choice`: which int8 graph to write among the candidates that pass parity."""
    cli.add_argument(
        "--int8-choice",
        choices=list(INT8_CHOICES),
        default="fastest",
        help="int8 graph to write among the candidates (fused/unfused, per tensor/channel, partial) "
        "that pass parity: the fastest on this machine (default) or the most accurate",
    )
