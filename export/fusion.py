"""Which fused ops a graph must contain, and the check that refuses one that did not fuse.

What each architecture must fuse is data (export/architectures.py lists the requirements per
model type); this module counts and compares.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from export.errors import FusionError

CONTRIB_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class Requirement:
    """`per_layer` (or `total`) fused nodes, counted over any of `ops` (int8 renames some to Q*).

    `at_least`: more are fine (a head may add its own, e.g. ELECTRA's classifier GELU).
    """

    label: str
    ops: tuple[str, ...]
    per_layer: int = 0
    total: int = 0
    at_least: bool = False

    def expected(self, layers: int) -> int:
        return self.per_layer * layers + self.total


ATTENTION = Requirement("Attention", ("Attention", "MultiHeadAttention", "QAttention"), per_layer=1)
SKIP_LAYER_NORM = Requirement("SkipLayerNormalization", ("SkipLayerNormalization",), per_layer=2)
EMBEDDINGS = Requirement(
    "EmbedLayerNormalization", ("EmbedLayerNormalization", "QEmbedLayerNormalization"), total=1
)
GELU = Requirement("Gelu", ("Gelu", "BiasGelu", "FastGelu", "GemmFastGelu"), per_layer=1, at_least=True)
REQUIREMENTS: tuple[Requirement, ...] = (ATTENTION, SKIP_LAYER_NORM, EMBEDDINGS, GELU)
"""A fully fused BERT."""


def fused_op_counts(nodes: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Count the contrib (com.microsoft) ops among (op_type, domain) pairs, sorted by name."""
    counts = Counter(op for op, domain in nodes if domain == CONTRIB_DOMAIN)
    return dict(sorted(counts.items()))


def missing_fusions(
    counts: Mapping[str, int], layers: int, requirements: Sequence[Requirement] = REQUIREMENTS
) -> list[str]:
    """One line per requirement the counts do not meet; empty when the graph fused as required."""
    problems = []
    for requirement in requirements:
        found = sum(counts.get(op, 0) for op in requirement.ops)
        expected = requirement.expected(layers)
        if found < expected or (found > expected and not requirement.at_least):
            scope = f"{requirement.per_layer} per layer x {layers}" if requirement.per_layer else "exactly"
            if requirement.at_least:
                scope = f"at least {scope}"
            problems.append(f"{requirement.label}: found {found}, expected {expected} ({scope})")
    return problems


def verify_fusion(
    counts: Mapping[str, int],
    layers: int,
    what: str,
    requirements: Sequence[Requirement] = REQUIREMENTS,
    family: str = "BERT",
) -> None:
    """Raise FusionError naming each missing fusion of `what` (e.g. "fp32 graph")."""
    problems = missing_fusions(counts, layers, requirements)
    if problems:
        raise FusionError(
            f"the {what} did not fuse as a {layers}-layer {family} must: {'; '.join(problems)}. "
            "Was it exported with dynamo=False and eager attention?"
        )
