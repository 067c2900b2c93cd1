"""The goals each row is held to: fp32 answers as the pipeline does; the variant served by default
(auto) within the export's accuracy budget; int8, when asked for by name, costs under a point."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.contract.manifest import AccuracyBudget

AUTO = "auto"  # the precision BERTSERVE_PRECISION=auto serves: the default variant
BUDGET = AccuracyBudget()

FP32_MIN_AGREEMENT = 99.9  # percent of examples with the pipeline's decision
INT8_MAX_METRIC_DIFF = 1.0  # points, on every task metric, against the pipeline (PyTorch fp32)


@dataclass
class Row:
    """One head at one precision, against the pipeline on the same examples."""

    head: str
    task: str
    precision: str
    served: str  # the variant and provider GET /v1/models reports
    metrics: dict[str, float]  # the service's
    reference: dict[str, float]  # the pipeline's
    agreement: float  # percent of examples with the same decision
    examples: int
    seconds: float  # the service, over HTTP
    reference_seconds: float  # the pipeline, model loading excluded
    disagreements: list[int] = field(default_factory=list)  # indices of the first few
    goal: str | None = None
    passed: bool | None = None

    def diff(self, metric: str) -> float:
        return self.metrics[metric] - self.reference[metric]


def judge(row: Row) -> None:
    """Fill `goal` and `passed` (None when no goal applies to the precision)."""
    if row.precision == "fp32":
        row.goal = f"agreement >= {FP32_MIN_AGREEMENT} %"
        row.passed = row.agreement >= FP32_MIN_AGREEMENT
    elif row.precision == AUTO:
        row.goal = f"agreement >= {100 * BUDGET.min_agreement:g} %, metric drop <= {BUDGET.max_metric_drop:g}"
        row.passed = row.agreement >= 100 * BUDGET.min_agreement and all(
            -row.diff(m) <= BUDGET.max_metric_drop for m in row.metrics
        )
    elif row.precision == "int8":
        row.goal = f"|metric - pipeline| <= {INT8_MAX_METRIC_DIFF}"
        row.passed = all(abs(row.diff(m)) <= INT8_MAX_METRIC_DIFF for m in row.metrics)


def agreement(ours: list[object], reference: list[object]) -> tuple[float, list[int]]:
    """(percent of equal decisions, indices of the first 10 that differ)."""
    differ = [i for i, (a, b) in enumerate(zip(ours, reference, strict=True)) if a != b]
    return 100.0 * (1 - len(differ) / max(len(reference), 1)), differ[:10]
