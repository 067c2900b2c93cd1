"""/classify on SST-2 (accuracy) and /pair on MRPC (accuracy and F1 of label 1)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from export.evaluation.datasets import UNLABELLED, TextExample, read_mrpc, read_sst2
from export.evaluation.metrics import accuracy, binary_f1
from export.evaluation.tasks.base import EvalTask, ModelInfo


def top_label(result: Any) -> str:
    """The best label of one result: a list of {label, score} (top_k 1), or a bare dict."""
    best = result[0] if isinstance(result, list) else result
    return str(best["label"])


def gold_label(record: dict[str, Any], model: ModelInfo) -> int:
    """The record's class id: `label` as an id or a label name; none given: UNLABELLED."""
    label = record.get("label")
    if label is None:
        return UNLABELLED
    if isinstance(label, bool) or not isinstance(label, int | str):
        raise TypeError(f"label must be a class id or a label name, got {label!r}")
    if isinstance(label, str):
        if label not in model.label2id:
            raise ValueError(f"label {label!r} is not one of the model's {sorted(model.label2id)}")
        return model.label2id[label]
    if label not in model.id2label:
        raise ValueError(f"label {label} is not one of the model's ids {sorted(model.id2label)}")
    return label


def text_field(record: dict[str, Any], key: str) -> str:
    value = record[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string, got {type(value).__name__}")
    return value


class ClassifyTask(EvalTask):
    endpoint: ClassVar[str] = "/classify"
    pipeline_task: ClassVar[str] = "text-classification"
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy",)
    layout: ClassVar[str] = "of SST-2 (TSV: label, text_a)"
    record_shape: ClassVar[str] = '{"text": "...", "label": 1 or "POSITIVE"}'

    def read(self, path: Path) -> list[Any]:
        return list(read_sst2(path))

    def from_record(self, record: dict[str, Any], model: ModelInfo) -> TextExample:
        return TextExample(text=text_field(record, "text"), label=gold_label(record, model))

    def labelled(self, example: TextExample) -> bool:
        return example.label != UNLABELLED

    def options(self, model: ModelInfo) -> dict[str, Any]:
        return {"top_k": 1, "truncation": True}

    def inputs(self, examples: Sequence[TextExample]) -> list[Any]:
        return [e.text for e in examples]

    def decision(self, result: Any) -> Hashable:
        return top_label(result)

    def predictions(self, results: Sequence[Any], model: ModelInfo) -> list[int]:
        """Class ids (-1 for a label the model does not declare)."""
        label2id = model.label2id
        return [label2id.get(top_label(r), -1) for r in results]

    def score(
        self, examples: Sequence[TextExample], results: Sequence[Any], model: ModelInfo
    ) -> dict[str, float]:
        labels = [e.label for e in examples]
        return {"accuracy": 100.0 * accuracy(self.predictions(results, model), labels)}


class PairTask(ClassifyTask):
    endpoint: ClassVar[str] = "/pair"
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy", "f1")
    layout: ClassVar[str] = "of MRPC (TSV: Quality, #1 ID, #2 ID, #1 String, #2 String)"
    record_shape: ClassVar[str] = '{"text": "...", "text_pair": "...", "label": 1}'

    def read(self, path: Path) -> list[Any]:
        return list(read_mrpc(path))

    def from_record(self, record: dict[str, Any], model: ModelInfo) -> TextExample:
        return TextExample(
            text=text_field(record, "text"),
            text_pair=text_field(record, "text_pair"),
            label=gold_label(record, model),
        )

    def inputs(self, examples: Sequence[TextExample]) -> list[Any]:
        return [{"text": e.text, "text_pair": e.text_pair} for e in examples]

    def score(
        self, examples: Sequence[TextExample], results: Sequence[Any], model: ModelInfo
    ) -> dict[str, float]:
        predictions = self.predictions(results, model)
        labels = [e.label for e in examples]
        return {
            "accuracy": 100.0 * accuracy(predictions, labels),
            "f1": 100.0 * binary_f1(predictions, labels),
        }
