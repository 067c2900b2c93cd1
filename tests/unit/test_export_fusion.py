"""Fusion verification on hand-made op counts."""

from __future__ import annotations

import pytest

from export.errors import FusionError
from export.fusion import fused_op_counts, missing_fusions, verify_fusion

FUSED_2_LAYERS = {"Attention": 2, "SkipLayerNormalization": 4, "EmbedLayerNormalization": 1, "BiasGelu": 2}


def test_a_fully_fused_graph_passes() -> None:
    assert missing_fusions(FUSED_2_LAYERS, layers=2) == []
    verify_fusion(FUSED_2_LAYERS, 2, "fp32 graph")


def test_int8_and_alternative_op_names_count() -> None:
    counts = {"QAttention": 6, "SkipLayerNormalization": 12, "QEmbedLayerNormalization": 1, "FastGelu": 6}
    assert missing_fusions(counts, layers=6) == []
    counts = {"MultiHeadAttention": 1, "SkipLayerNormalization": 2, "EmbedLayerNormalization": 1, "Gelu": 1}
    assert missing_fusions(counts, layers=1) == []


def test_an_unfused_graph_names_everything_missing() -> None:
    with pytest.raises(FusionError) as error:
        verify_fusion({"SkipLayerNormalization": 4, "BiasGelu": 2}, 2, "fp32 graph")
    message = str(error.value)
    assert "Attention: found 0, expected 2 (1 per layer x 2)" in message
    assert "EmbedLayerNormalization: found 0, expected 1 (exactly)" in message
    assert "SkipLayerNormalization" not in message and "Gelu" not in message
    assert "fp32 graph" in message


def test_too_many_or_too_few_is_a_failure() -> None:
    assert missing_fusions({**FUSED_2_LAYERS, "SkipLayerNormalization": 3}, 2) == [
        "SkipLayerNormalization: found 3, expected 4 (2 per layer x 2)"
    ]
    assert missing_fusions({**FUSED_2_LAYERS, "EmbedLayerNormalization": 2}, 2) == [
        "EmbedLayerNormalization: found 2, expected 1 (exactly)"
    ]
    assert len(missing_fusions(FUSED_2_LAYERS, 3)) == 3  # counts of a 2-layer graph for a 3-layer model


def test_only_contrib_ops_are_counted() -> None:
    nodes = [
        ("Attention", "com.microsoft"),
        ("MatMul", ""),
        ("Attention", "com.microsoft"),
        ("Gelu", "com.microsoft"),
    ]
    assert fused_op_counts(nodes) == {"Attention": 2, "Gelu": 1}
