"""The table printed at the end, and the JSON written beside it."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.evaluation.goals import AUTO, Row

HEADER = (
    "head",
    "precision",
    "metric",
    "service",
    "pipeline",
    "diff",
    "agree %",
    "examples",
    "ex/s service",
    "ex/s pipeline",
    "goal",
)


def table_rows(rows: list[Row]) -> list[tuple[str, ...]]:
    """One line per metric; the first line of a row carries the row's other columns."""
    lines: list[tuple[str, ...]] = []
    for row in rows:
        verdict = "" if row.passed is None else f"{'met' if row.passed else 'MISSED'}: {row.goal}"
        precision = f"{row.precision} ({row.served})" if row.precision == AUTO else row.precision
        for k, metric in enumerate(row.metrics):
            first = k == 0
            lines.append(
                (
                    row.head if first else "",
                    precision if first else "",
                    metric,
                    f"{row.metrics[metric]:.2f}",
                    f"{row.reference[metric]:.2f}",
                    f"{row.diff(metric):+.2f}",
                    f"{row.agreement:.2f}" if first else "",
                    str(row.examples) if first else "",
                    f"{row.examples / row.seconds:.0f}" if first and row.seconds else "",
                    f"{row.examples / row.reference_seconds:.0f}" if first and row.reference_seconds else "",
                    verdict if first else "",
                )
            )
    return lines


def format_table(rows: list[Row]) -> str:
    """A plain-text table, columns aligned."""
    lines = [HEADER, *table_rows(rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(t.rstrip() for t in text)


def markdown_table(rows: list[Row]) -> str:
    """The same table in Markdown (for the documentation, docs/export.md)."""
    lines = [HEADER, *table_rows(rows)]
    out = ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines]
    out.insert(1, "|" + "---|" * len(HEADER))
    return "\n".join(out)


def write_json(
    path: Path,
    rows: list[Row],
    skipped: dict[str, str],
    unscored: dict[str, str],
    settings: dict[str, Any],
) -> None:
    """Rows, heads skipped (no checkpoint or data), (head, precision) not served, and the settings."""
    document = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": settings,
        "goals_met": all(row.passed is not False for row in rows) and not unscored,
        "rows": [asdict(row) for row in rows],
        "skipped": skipped,
        "not_scored": unscored,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
