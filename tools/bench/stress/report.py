"""A scenario's figures and checks, the table they print as, and the closing JSON line."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Row:
    """One scenario: what was measured, and which of its requirements held."""

    scenario: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    notes: dict[str, bool] = field(default_factory=dict)  # measured, not enforced in this profile

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def table(rows: list[Row]) -> str:
    lines = []
    for row in rows:
        lines.append(f"== {row.scenario}: {'PASS' if row.passed else 'FAIL'}")
        lines.append("   " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.figures.items()))
        for name, held in row.checks.items():
            lines.append(f"   [{'ok' if held else 'FAILED'}] {name}")
        for name, held in row.notes.items():
            lines.append(f"   [{'ok' if held else 'not met'}] (not enforced here) {name}")
    return "\n".join(lines)


def json_line(rows: list[Row], meta: dict[str, Any]) -> str:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, float):
            return round(value, 4)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    return json.dumps(
        {
            **meta,
            "passed": all(row.passed for row in rows),
            "scenarios": {
                row.scenario: {"passed": row.passed, **clean(row.figures), "checks": row.checks}
                for row in rows
            },
        }
    )
