"""How a task's requests and answers look as Open Inference Protocol (v2) tensors.

Every input tensor holds N strings (one per input of the request); a task names its input tensors
and builds its output tensors from its answer. Rows of several per input (QA answers, entities) are
flattened in input order, with a `*_count` tensor saying how many belong to each input.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class TensorSpec:
    """An output tensor as model metadata lists it (-1: a dimension that varies)."""

    name: str
    datatype: str
    shape: list[int]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


def tensor(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


class TensorMapping(ABC):
    """A task's input tensors (named after its request's fields) and its output tensors."""

    def __init__(self, inputs: tuple[str, ...], outputs: tuple[TensorSpec, ...]) -> None:
        self.inputs = inputs
        self.outputs = outputs

    def request_inputs(self, texts: dict[str, list[str]]) -> list[Any]:
        """The task request's `inputs`: the texts of one tensor, or one object per input of several."""
        if len(self.inputs) == 1:
            return texts[self.inputs[0]]
        columns = [texts[name] for name in self.inputs]
        return [dict(zip(self.inputs, row, strict=True)) for row in zip(*columns, strict=True)]

    @abstractmethod
    def output_tensors(self, results: list[Any], request: BaseModel) -> list[dict[str, Any]]:
        """The output tensors of an answer's `results` (one entry per input, dumped to JSON types)."""


class LabelScores(TensorMapping):
    """`label` BYTES [N, k] and `score` FP32 [N, k]: the k labels of each input, best first."""

    def __init__(self, inputs: tuple[str, ...]) -> None:
        super().__init__(
            inputs, (TensorSpec("label", "BYTES", [-1, -1]), TensorSpec("score", "FP32", [-1, -1]))
        )

    def output_tensors(self, results: list[Any], request: BaseModel) -> list[dict[str, Any]]:
        shape = [len(results), len(results[0]) if results else 0]
        return [
            tensor("label", "BYTES", shape, [row["label"] for labels in results for row in labels]),
            tensor("score", "FP32", shape, [row["score"] for labels in results for row in labels]),
        ]


Columns = tuple[tuple[str, str], ...]
"""(name, datatype) of each column of a row."""


class Rows(TensorMapping):
    """One tensor [M] per column of the rows of every input, then `count_name` INT64 [N]."""

    def __init__(self, inputs: tuple[str, ...], columns: Columns, count_name: str) -> None:
        specs = tuple(TensorSpec(name, datatype, [-1]) for name, datatype in columns)
        super().__init__(inputs, (*specs, TensorSpec(count_name, "INT64", [-1])))
        self.count_name = count_name
        self._columns = columns

    def columns(self, request: BaseModel) -> Columns:
        """The columns of this request's rows (a task whose rows depend on its options overrides it)."""
        return self._columns

    def output_tensors(self, results: list[Any], request: BaseModel) -> list[dict[str, Any]]:
        per_input = [entry if isinstance(entry, list) else [entry] for entry in results]
        rows = [row for entries in per_input for row in entries]
        tensors = [
            tensor(name, datatype, [len(rows)], [row[name] for row in rows])
            for name, datatype in self.columns(request)
        ]
        counts = [len(entries) for entries in per_input]
        return [*tensors, tensor(self.count_name, "INT64", [len(counts)], counts)]
