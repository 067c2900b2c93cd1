"""Parity bounds and their check, on hand-made figures."""

from __future__ import annotations

import math

from export.tolerances import DEFAULT_TOLERANCES, Tolerance, violations


def test_the_bound_grows_with_the_output_scale() -> None:
    tolerance = Tolerance(atol=0.01, rtol=0.1, min_agreement=0.9)
    assert tolerance.bound(0.0) == 0.01
    assert math.isclose(tolerance.bound(5.0), 0.51)


def test_figures_within_bounds_pass() -> None:
    assert violations({"start_logits": 0.1, "end_logits": 0.2}, 0.95, bound=0.2, min_agreement=0.9) == []


def test_each_violation_is_named() -> None:
    problems = violations({"start_logits": 0.1, "end_logits": 0.3}, 0.8, bound=0.2, min_agreement=0.9)
    assert problems == ["max |diff| of end_logits is 0.3 > 0.2", "decision agreement 80.00% < 90.00%"]


def test_nan_never_passes() -> None:
    assert violations({"logits": float("nan")}, 1.0, bound=1.0, min_agreement=0.0)
    assert violations({"logits": 0.0}, float("nan"), bound=1.0, min_agreement=0.0)


def test_the_table_orders_precisions_by_strictness() -> None:
    fp32, fp16, int8 = (DEFAULT_TOLERANCES[p] for p in ("fp32", "fp16", "int8"))
    for scale in (0.05, 1.0, 10.0):
        assert fp32.bound(scale) < fp16.bound(scale) < int8.bound(scale)
    assert fp32.min_agreement >= fp16.min_agreement >= int8.min_agreement
