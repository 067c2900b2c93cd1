"""Which fused ops a BERT graph must contain, and the check that refuses one that did not fuse."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from export.errors import FusionError

CONTRIB_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class Requirement:
    """`per_layer` (or `total`) fused nodes, counted over any of `ops` (int8 renames some to Q*)."""

    label: str
    ops: tuple[str, ...]
    per_layer: int = 0
    total: int = 0

    def expected(self, layers: int) -> int:
        return self.per_layer * layers + self.total


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("Attention", ("Attention", "MultiHeadAttention", "QAttention"), per_layer=1),
    Requirement("SkipLayerNormalization", ("SkipLayerNormalization",), per_layer=2),
    Requirement("EmbedLayerNormalization", ("EmbedLayerNormalization", "QEmbedLayerNormalization"), total=1),
    Requirement("Gelu", ("Gelu", "BiasGelu", "FastGelu", "GemmFastGelu"), per_layer=1),
)


def fused_op_counts(nodes: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Count the contrib (com.microsoft) ops among (op_type, domain) pairs, sorted by name."""
    counts = Counter(op for op, domain in nodes if domain == CONTRIB_DOMAIN)
    return dict(sorted(counts.items()))


def missing_fusions(counts: Mapping[str, int], layers: int) -> list[str]:
    """One line per requirement the counts do not meet; empty when the graph fused fully."""
    problems = []
    for requirement in REQUIREMENTS:
        found = sum(counts.get(op, 0) for op in requirement.ops)
        expected = requirement.expected(layers)
        if found != expected:
            scope = f"{requirement.per_layer} per layer x {layers}" if requirement.per_layer else "exactly"
            problems.append(f"{requirement.label}: found {found}, expected {expected} ({scope})")
    return problems


def verify_fusion(counts: Mapping[str, int], layers: int, what: str) -> None:
    """Raise FusionError naming each missing fusion of `what` (e.g. "fp32 graph")."""
    problems = missing_fusions(counts, layers)
    if problems:
        raise FusionError(
            f"the {what} did not fuse as a {layers}-layer BERT must: {'; '.join(problems)}. "
            "Was it exported with dynamo=False and eager attention?"
        )
