"""/classify on SST-2 (accuracy) and /pair on MRPC (accuracy and F1 of label 1)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tools.evaluation.tasks.base import EvalTask, ModelInfo
from tools.training.data import TextExample, read_mrpc, read_sst2
from tools.training.metrics import accuracy, binary_f1


def top_label(result: Any) -> str:
    """The best label of one result: a list of {label, score} (top_k 1), or a bare dict."""
    best = result[0] if isinstance(result, list) else result
    return str(best["label"])


class ClassifyTask(EvalTask):
    endpoint: ClassVar[str] = "/classify"
    pipeline_task: ClassVar[str] = "text-classification"
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy",)

    def read(self, path: Path) -> list[Any]:
        return list(read_sst2(path))

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

    def read(self, path: Path) -> list[Any]:
        return list(read_mrpc(path))

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
