"""The one table of parity tolerances per precision, and the check against it.

A variant passes when, for every output, max |ORT - PyTorch| <= atol + rtol * scale (scale:
the largest |PyTorch output| over the validation inputs, so a head with small logits is not
waved through by a bound sized for large ones) and the fraction of matching decisions is at
least min_agreement. This is the structural check on the written samples; whether int8 is served
by default is decided on labelled data (export.accuracy). The bounds and the figures they were set
from are in docs (exporting). Override per precision with --atol-*/--rtol-*/--agreement-*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.contract.manifest import Precision


@dataclass(frozen=True)
class Tolerance:
    atol: float  # absolute part of the bound on max |diff|
    rtol: float  # part of the bound proportional to the output scale
    min_agreement: float  # fraction of decisions that must match PyTorch's

    def bound(self, scale: float) -> float:
        """The bound on max |diff| for outputs whose largest magnitude is `scale`."""
        return self.atol + self.rtol * scale


DEFAULT_TOLERANCES: dict[Precision, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-4, min_agreement=0.99),
    "fp16": Tolerance(atol=1e-3, rtol=1e-2, min_agreement=0.95),
    "int8": Tolerance(atol=5e-2, rtol=0.25, min_agreement=0.90),
}


def violations(
    max_abs_diff: Mapping[str, float], agreement: float, bound: float, min_agreement: float
) -> list[str]:
    """What exceeds the bounds, one line each; empty when the figures pass (NaN never passes)."""
    problems = [
        f"max |diff| of {name} is {diff:.3g} > {bound:.3g}"
        for name, diff in max_abs_diff.items()
        if not diff <= bound
    ]
    if not agreement >= min_agreement:
        problems.append(f"decision agreement {agreement:.2%} < {min_agreement:.2%}")
    return problems
