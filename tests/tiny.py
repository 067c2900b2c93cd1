"""Tiny BERT heads built on the fly: small config, random init, the real uncased WordPiece tokenizer."""

from __future__ import annotations

from pathlib import Path

from bench.model import minilm_dir

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
CLASSIFY_LABELS = ["NEGATIVE", "POSITIVE"]
PAIR_LABELS = ["entailment", "neutral", "contradiction"]


def build_tiny_checkpoint(
    task: str,
    out: Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    seed: int = 0,
    initializer_range: float = 0.2,
) -> Path:
    """Save a randomly initialised BERT head for `task` (classify, pair, qa, ner) into `out`."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        BertForTokenClassification,
    )

    labels = {"classify": CLASSIFY_LABELS, "pair": PAIR_LABELS, "ner": NER_LABELS, "qa": None}[task]
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=512,
        initializer_range=initializer_range,
    )
    if labels is not None:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    model_class = {
        "classify": BertForSequenceClassification,
        "pair": BertForSequenceClassification,
        "ner": BertForTokenClassification,
        "qa": BertForQuestionAnswering,
    }[task]
    torch.manual_seed(seed)
    model = model_class(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(out)
    return out
