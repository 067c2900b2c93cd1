"""Sequence classification heads: SST-2 sentiment (classify) and MRPC paraphrase (pair)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from export.evaluation.datasets import TextExample
from export.evaluation.metrics import accuracy, binary_f1
from tools.training.batching import Feature
from tools.training.config import TrainConfig
from tools.training.heads.base import Head, HeadSpec
from tools.training.inference import forward_all


def encode_texts(
    tokenizer: PreTrainedTokenizerFast, examples: Sequence[TextExample], max_length: int
) -> list[Feature]:
    """Ids and type ids (segment B gets type 1), truncated longest-first; `labels` is the class id."""
    texts = [e.text for e in examples]
    pairs = [e.text_pair or "" for e in examples] if examples and examples[0].text_pair is not None else None
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
    return [
        {"input_ids": ids, "token_type_ids": types, "labels": e.label}
        for ids, types, e in zip(enc["input_ids"], enc["token_type_ids"], examples, strict=True)
    ]


class ClassificationHead(Head):
    """BertForSequenceClassification over one text or a text pair."""

    def __init__(self, spec: HeadSpec, reader: Callable[[Path], list[TextExample]]) -> None:
        super().__init__(spec)
        self._reader = reader

    def read(self, path: Path) -> list[TextExample]:
        return self._reader(path)

    def encode_train(
        self, tokenizer: PreTrainedTokenizerFast, examples: Sequence[TextExample], cfg: TrainConfig
    ) -> list[Feature]:
        return encode_texts(tokenizer, examples, cfg.max_length)

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerFast,
        examples: Sequence[TextExample],
        cfg: TrainConfig,
    ) -> dict[str, Any]:
        features = encode_texts(tokenizer, examples, cfg.eval_max_length)
        outputs = forward_all(model, features, cfg.eval_batch_size)
        predictions = [int(np.argmax(o["logits"])) for o in outputs]
        labels = [e.label for e in examples]
        scores: dict[str, Any] = {"accuracy": 100.0 * accuracy(predictions, labels)}
        if self.spec.task == "pair":
            scores["f1"] = 100.0 * binary_f1(predictions, labels, positive=1)
        scores["examples"] = len(examples)
        scores["max_length"] = cfg.eval_max_length
        return scores
