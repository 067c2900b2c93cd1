"""The Head contract: what one demo head reads, trains on, and how its dev score is measured."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from tools.training.batching import Feature
from tools.training.config import TrainConfig


@dataclass(frozen=True)
class CardInfo:
    """Model-card facts about the head's data and use."""

    dataset: str
    dataset_source: str
    licence: str
    licence_id: str
    metric: str
    intended_use: str
    limitations: str


@dataclass(frozen=True)
class HeadSpec:
    """Static facts: names, data files, labels, defaults, card text."""

    name: str
    task: str
    model_class: type[PreTrainedModel]
    train_file: str
    dev_file: str
    labels: tuple[str, ...] | None
    card: CardInfo
    defaults: dict[str, Any] = field(default_factory=dict)


class Head(ABC):
    """One fine-tunable head: read the data, encode it, build the model, score the dev set."""

    def __init__(self, spec: HeadSpec) -> None:
        self.spec = spec

    def build_model(self, base: Path) -> PreTrainedModel:
        """The base encoder with a new, randomly initialised head for this task."""
        kwargs: dict[str, Any] = {}
        if self.spec.labels is not None:
            kwargs = {
                "num_labels": len(self.spec.labels),
                "id2label": dict(enumerate(self.spec.labels)),
                "label2id": {label: i for i, label in enumerate(self.spec.labels)},
            }
        model: PreTrainedModel = self.spec.model_class.from_pretrained(
            base, dtype=torch.float32, ignore_mismatched_sizes=True, **kwargs
        )
        if self.spec.task in ("classify", "pair"):
            model.config.problem_type = "single_label_classification"
        return model

    @abstractmethod
    def read(self, path: Path) -> list[Any]:
        """Examples of one split file."""

    @abstractmethod
    def encode_train(
        self, tokenizer: PreTrainedTokenizerFast, examples: Sequence[Any], cfg: TrainConfig
    ) -> list[Feature]:
        """Training features (ids, type ids, targets), unpadded."""

    @abstractmethod
    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerFast,
        examples: Sequence[Any],
        cfg: TrainConfig,
    ) -> dict[str, Any]:
        """Dev scores (the headline metrics first) plus the evaluation settings."""
