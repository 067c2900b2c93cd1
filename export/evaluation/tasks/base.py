"""What an evaluation task does: read its data set, build inputs, read decisions and score results.

Inputs and options are the same JSON for the service and for the pipeline, so both sides are asked
exactly the same question; results are the JSON shapes both return (a result per example).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from export.evaluation.datasets import read_jsonl


@dataclass(frozen=True)
class ModelInfo:
    """What the options and the scoring need to know of a served model (from its manifest)."""

    max_length: int
    id2label: dict[int, str]

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in self.id2label.items()}


class EvalTask(ABC):
    """The scoring of one task; subclasses fix the endpoint, the pipeline task and the metrics."""

    endpoint: ClassVar[str]
    pipeline_task: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]
    layout: ClassVar[str]  # the data set layout `read` takes
    record_shape: ClassVar[str]  # one JSONL record, as the docs show it

    @abstractmethod
    def read(self, path: Path) -> list[Any]:
        """The examples of a data file in the data set's own layout (export.evaluation.datasets)."""

    @abstractmethod
    def from_record(self, record: dict[str, Any], model: ModelInfo) -> Any:
        """One example from a JSONL record in the task's request shape, gold answer optional;
        KeyError, TypeError or ValueError for a record that is not one."""

    @abstractmethod
    def labelled(self, example: Any) -> bool:
        """The example carries a gold answer."""

    def read_file(self, path: Path, model: ModelInfo) -> list[Any]:
        """The examples of `path`: JSONL (`.jsonl`, see `from_record`) or the data set's layout.
        ValueError names what is wrong."""
        if path.suffix != ".jsonl":
            try:
                return self.read(path)
            except (KeyError, IndexError, TypeError, ValueError) as error:
                raise ValueError(f"{path} is not in the layout {self.layout}: {error!r}") from error
        examples = []
        for number, record in enumerate(read_jsonl(path), 1):
            try:
                examples.append(self.from_record(record, model))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}: record {number} is not {self.record_shape}: {error!r}") from error
        return examples

    @abstractmethod
    def options(self, model: ModelInfo) -> dict[str, Any]:
        """Request options, passed unchanged to the pipeline as keyword arguments."""

    @abstractmethod
    def inputs(self, examples: Sequence[Any]) -> list[Any]:
        """One JSON input per example."""

    @abstractmethod
    def decision(self, result: Any) -> Hashable:
        """What must be equal for two results to agree (label, answer span, entity set)."""

    @abstractmethod
    def score(self, examples: Sequence[Any], results: Sequence[Any], model: ModelInfo) -> dict[str, float]:
        """The task metrics in percent, keyed by `metric_names`."""

    def run_pipeline(
        self, pipe: Any, inputs: list[Any], options: dict[str, Any], batch_size: int
    ) -> list[Any]:
        """The pipeline's result per input (a list in gives a list out)."""
        results = pipe(inputs, batch_size=batch_size, **options)
        return list(results) if isinstance(results, list) else [results]
