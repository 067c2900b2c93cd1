"""Token classification head: CoNLL-2003 named entities, the first sub-token of each word labelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from export.evaluation.datasets import TaggedSentence, read_conll
from tools.training.batching import PAD_LABEL, Feature
from tools.training.config import TrainConfig
from tools.training.heads.base import Head
from tools.training.inference import forward_all


def encode_words(
    tokenizer: PreTrainedTokenizerFast,
    sentences: Sequence[TaggedSentence],
    label2id: dict[str, int],
    max_length: int,
) -> list[Feature]:
    """Ids per sentence; `labels` holds the word's tag id on its first sub-token, -100 elsewhere.

    `first_token` maps each word to its first sub-token position (-1: no sub-token, or truncated away).
    """
    enc = tokenizer(
        [s.words for s in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        padding=False,
    )
    features: list[Feature] = []
    for i, sentence in enumerate(sentences):
        word_ids = enc.word_ids(i)
        labels = [PAD_LABEL] * len(word_ids)
        first_token = [-1] * len(sentence.words)
        previous = None
        for position, word in enumerate(word_ids):
            if word is not None and word != previous:
                labels[position] = label2id[sentence.tags[word]]
                first_token[word] = position
            previous = word
        features.append(
            {
                "input_ids": enc["input_ids"][i],
                "token_type_ids": enc["token_type_ids"][i],
                "labels": labels,
                "first_token": first_token,
            }
        )
    return features


class NerHead(Head):
    """BertForTokenClassification with IOB2 tags; scored by entity-level F1 (seqeval, conlleval mode)."""

    def read(self, path: Path) -> list[TaggedSentence]:
        return read_conll(path)

    def _label2id(self) -> dict[str, int]:
        assert self.spec.labels is not None
        return {label: i for i, label in enumerate(self.spec.labels)}

    def encode_train(
        self, tokenizer: PreTrainedTokenizerFast, examples: Sequence[TaggedSentence], cfg: TrainConfig
    ) -> list[Feature]:
        features = encode_words(tokenizer, examples, self._label2id(), cfg.max_length)
        for feature in features:
            del feature["first_token"]
        return features

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerFast,
        examples: Sequence[TaggedSentence],
        cfg: TrainConfig,
    ) -> dict[str, Any]:
        assert self.spec.labels is not None
        features = encode_words(tokenizer, examples, self._label2id(), cfg.eval_max_length)
        outputs = forward_all(model, features, cfg.eval_batch_size)
        predicted: list[list[str]] = []
        for feature, output in zip(features, outputs, strict=True):
            ids = np.argmax(output["logits"], axis=-1)
            predicted.append([self.spec.labels[ids[p]] if p >= 0 else "O" for p in feature["first_token"]])
        gold = [s.tags for s in examples]
        report = classification_report(gold, predicted, output_dict=True, zero_division=0)
        return {
            "f1": 100.0 * float(f1_score(gold, predicted)),
            "precision": 100.0 * float(precision_score(gold, predicted)),
            "recall": 100.0 * float(recall_score(gold, predicted)),
            "per_type_f1": {k: 100.0 * float(v["f1-score"]) for k, v in report.items() if "avg" not in k},
            "sentences": len(examples),
            "words_without_token": sum(p < 0 for f in features for p in f["first_token"]),
            "max_length": cfg.eval_max_length,
        }
