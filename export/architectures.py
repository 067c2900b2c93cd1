"""The encoder families the exporter serves, as data: head classes, position offsets, expected fusions.

The expected fusions are what ONNX Runtime's transformer optimizer (model_type "bert", which matches
every family here) does to graphs from optimum's exporter (TorchScript, opset 17, eager attention):

- BERT (MiniLM) and ELECTRA fuse fully: embeddings, attention, both layer norms, GELU;
- RoBERTa and XLM-RoBERTa fuse all but the embeddings: EmbedLayerNormalization numbers positions
  0..n-1, theirs start after the padding index and skip pads (a cumulative sum over the ids);
- DistilBERT fuses its layer norms and GELU; its attention is matched up to the mask, where ORT
  wants a constant shape for the expanded mask and finds a computed one (dynamic axes);
- DeBERTa-v2/v3 fuses its layer norms and GELU; ORT has no fusion for disentangled attention.
Unfused parts run as plain ONNX operators and are parity-checked like the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from export.fusion import ATTENTION, EMBEDDINGS, GELU, SKIP_LAYER_NORM, Requirement


@dataclass(frozen=True)
class Architecture:
    """One `model_type`: its transformers class prefix and what its graph must fuse into."""

    model_type: str
    family: str  # as the documentation names it (docs/export.md)
    prefix: str  # transformers class prefix: Bert -> BertForSequenceClassification
    fusions: tuple[Requirement, ...]
    extra_bare: tuple[str, ...] = ()  # further headless classes (pre-training heads)
    position_offset: bool = False  # positions start after padding_idx (RoBERTa): usable = max - pad - 1

    def head(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    @property
    def bare_encoders(self) -> frozenset[str]:
        return frozenset({f"{self.prefix}Model", f"{self.prefix}ForMaskedLM", *self.extra_bare})


FULL = (ATTENTION, SKIP_LAYER_NORM, EMBEDDINGS, GELU)
NO_EMBEDDINGS = (ATTENTION, SKIP_LAYER_NORM, GELU)
NO_ATTENTION = (SKIP_LAYER_NORM, GELU)

ARCHITECTURES: dict[str, Architecture] = {
    arch.model_type: arch
    for arch in (
        Architecture("bert", "BERT, MiniLM", "Bert", FULL, extra_bare=("BertForPreTraining",)),
        Architecture("roberta", "RoBERTa", "Roberta", NO_EMBEDDINGS, position_offset=True),
        Architecture("xlm-roberta", "XLM-RoBERTa", "XLMRoberta", NO_EMBEDDINGS, position_offset=True),
        Architecture("distilbert", "DistilBERT", "DistilBert", NO_ATTENTION),
        Architecture("electra", "ELECTRA", "Electra", FULL, extra_bare=("ElectraForPreTraining",)),
        Architecture("deberta-v2", "DeBERTa-v2, DeBERTa-v3", "DebertaV2", NO_ATTENTION),
    )
}


def all_bare_encoders() -> frozenset[str]:
    return frozenset(name for arch in ARCHITECTURES.values() for name in arch.bare_encoders)
