"""Fusion verification on hand-made op counts."""

from __future__ import annotations

import pytest

from export.architectures import ARCHITECTURES
from export.errors import FusionError
from export.fusion import REQUIREMENTS, fused_op_counts, missing_fusions, verify_fusion

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


def test_a_head_may_add_gelu_but_not_attention() -> None:
    """ELECTRA's and DeBERTa's classifiers add a GELU of their own; extra Attention is still wrong."""
    assert missing_fusions({**FUSED_2_LAYERS, "Gelu": 1}, 2) == []
    assert missing_fusions({**FUSED_2_LAYERS, "Attention": 3}, 2) == [
        "Attention: found 3, expected 2 (1 per layer x 2)"
    ]
    assert missing_fusions({**FUSED_2_LAYERS, "BiasGelu": 1}, 2) == [
        "Gelu: found 1, expected 2 (at least 1 per layer x 2)"
    ]


@pytest.mark.parametrize(
    ("model_type", "counts"),
    [
        ("roberta", {"Attention": 2, "SkipLayerNormalization": 4, "BiasGelu": 2}),
        ("xlm-roberta", {"QAttention": 2, "SkipLayerNormalization": 4, "BiasGelu": 2}),
        ("distilbert", {"SkipLayerNormalization": 4, "BiasGelu": 2}),
        ("deberta-v2", {"SkipLayerNormalization": 4, "BiasGelu": 2, "Gelu": 1}),
        ("electra", {**FUSED_2_LAYERS, "Gelu": 1}),
    ],
)
def test_each_architecture_is_held_to_its_own_row(model_type: str, counts: dict[str, int]) -> None:
    requirements = ARCHITECTURES[model_type].fusions
    assert missing_fusions(counts, 2, requirements) == []
    with pytest.raises(FusionError, match="SkipLayerNormalization: found 0"):
        verify_fusion({}, 2, "fp32 graph", requirements, ARCHITECTURES[model_type].family)
    if model_type in ("roberta", "xlm-roberta", "distilbert", "deberta-v2"):
        assert missing_fusions(counts, 2) != []  # less than a full BERT: only its own row accepts it


def test_only_supported_model_types_have_rows() -> None:
    assert set(ARCHITECTURES) == {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2"}
    assert ARCHITECTURES["bert"].fusions == REQUIREMENTS
