"""The Task contract: a request becomes encoded items, the items' outputs become an answer.

A task knows its schemas, its tokenization and its post-processing. It knows nothing of
batching, HTTP status codes or onnxruntime: the server feeds it items' outputs as numpy arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from app.contract.items import EncodedItem, ItemOutputs
from app.contract.manifest import Manifest
from app.runtime.tokenizer import TextEncoder
from app.tasks.tensors import TensorMapping


@dataclass
class Prepared:
    """What preprocess hands on: the items to run and the task's own plan to reassemble them."""

    items: list[EncodedItem]
    plan: Any
    truncated: int = 0  # inputs cut to fit the model (reported as a metric)


@dataclass(frozen=True)
class ModelContext:
    """What a task may know of the model that serves it."""

    name: str
    manifest: Manifest
    encoder: TextEncoder


RequestT = TypeVar("RequestT", bound=BaseModel)
ResponseT = TypeVar("ResponseT", bound=BaseModel)


class Task(ABC, Generic[RequestT, ResponseT]):
    """One endpoint's behaviour. Subclasses set the class attributes and the four methods."""

    name: ClassVar[str]
    summary: ClassVar[str]
    request_model: ClassVar[type[BaseModel]]
    response_model: ClassVar[type[BaseModel]]
    output_names: ClassVar[tuple[str, ...]]
    """The model outputs postprocess reads (a model serving the task must have them)."""
    tensors: ClassVar[TensorMapping]
    """The task's request and answer as Open Inference Protocol tensors."""

    @abstractmethod
    def preprocess(self, request: RequestT, model: ModelContext, max_windows: int | None = None) -> Prepared:
        """Tokenize the request into items (may be many per input: QA windows, NER chunks).

        A request whose inputs need more than `max_windows` windows (None: no limit) raises
        TooManyItems once they are counted, before any window is built."""

    @abstractmethod
    def postprocess(
        self, request: RequestT, prepared: Prepared, outputs: Sequence[ItemOutputs], model: ModelContext
    ) -> ResponseT:
        """Turn the items' outputs (same order as prepared.items) into the answer."""

    def postprocess_work(self, request: RequestT, prepared: Prepared) -> int:
        """What postprocess will read, in tokens: the service runs small amounts on the event loop."""
        return sum(item.length for item in prepared.items)

    @abstractmethod
    def input_count(self, request: RequestT) -> int:
        """How many inputs (texts, pairs, questions) the request carries, for the per-request limit."""

    @abstractmethod
    def texts(self, request: RequestT) -> list[str]:
        """Every string of the request that gets tokenized, for the per-text length limit."""
