"""Sequence classification shared by /classify (one text) and /pair (two segments).

The scoring is `transformers.TextClassificationPipeline.postprocess` with `top_k` given: the
labels sorted by score, `top_k` of them (all when null).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, Field, Strict

from app.contract.items import EncodedItem, ItemOutputs
from app.contract.manifest import Manifest
from app.errors import InvalidInput
from app.tasks.base import ModelContext, Prepared, Task
from app.tasks.common import WHOLE, TaskRequest, TaskResponse, mirror, sigmoid, softmax

FunctionToApply = Literal["softmax", "sigmoid", "none"]
MAX_TOP_K = 1000
"""Most labels one answer lists; null lists every label of the model, whatever their number."""


class SequenceOptions(TaskRequest):
    """The options of /classify and /pair: `TextClassificationPipeline`'s, with its defaults."""

    top_k: Annotated[int, Strict(), Field(ge=1, le=MAX_TOP_K), WHOLE] | None = Field(
        1,
        description=f"how many labels to return, best first (at most {MAX_TOP_K}); null returns every label",
    )
    function_to_apply: FunctionToApply | None = Field(
        None,
        description="score function; null picks it from the model like the pipeline: none for "
        "regression, sigmoid for multi-label or a single label, softmax otherwise",
    )
    truncation: bool = Field(
        True,
        strict=True,
        description="cut inputs longer than the model's maximum length (counted in "
        "bertserve_truncated_inputs_total); false rejects them with 422",
    )


class LabelScore(BaseModel):
    label: str = Field(description="a label of the model")
    score: float = Field(description="its score after function_to_apply")


class ClassificationResponse(TaskResponse):
    """Labels for a single input, or a list of them for a list of inputs."""

    results: list[LabelScore] | list[list[LabelScore]] = Field(
        description="per input, the top_k labels sorted by score (a single input gives one list)",
        examples=[[{"label": "POSITIVE", "score": 0.9998}]],
    )


def default_function(manifest: Manifest) -> FunctionToApply:
    """What the pipeline applies when function_to_apply is not given."""
    num_labels = len(manifest.id2label)
    if manifest.problem_type == "regression":
        return "none"
    if manifest.problem_type == "multi_label_classification" or num_labels == 1:
        return "sigmoid"
    return "softmax"  # single_label_classification, or several labels


def label_scores(
    logits: np.ndarray, function: FunctionToApply, id2label: dict[int, str], top_k: int | None
) -> list[LabelScore]:
    """One input's logits [labels] as sorted label scores."""
    if function == "sigmoid":
        scores = sigmoid(logits)
    elif function == "softmax":
        scores = softmax(logits)
    else:
        scores = logits
    ranked = [(id2label[i], float(score)) for i, score in enumerate(scores)]
    ranked.sort(key=lambda pair: pair[1], reverse=True)  # stable, like the pipeline's list.sort
    if top_k is not None:
        ranked = ranked[:top_k]
    return [LabelScore(label=label, score=score) for label, score in ranked]


RequestT = TypeVar("RequestT", bound=SequenceOptions)


class SequenceTask(Task[RequestT, ClassificationResponse]):
    """One item per input; the subclass says what the inputs are."""

    response_model: ClassVar[type[BaseModel]] = ClassificationResponse
    output_names: ClassVar[tuple[str, ...]] = ("logits",)

    @abstractmethod
    def encoder_inputs(self, request: RequestT) -> list[str] | list[tuple[str, str]]:
        """What the tokenizer gets: texts, or (text, text_pair) tuples."""

    @abstractmethod
    def is_single(self, request: RequestT) -> bool:
        """Whether the request carries one input (not a list)."""

    def input_count(self, request: RequestT) -> int:
        return len(self.encoder_inputs(request))

    def preprocess(self, request: RequestT, model: ModelContext, max_windows: int | None = None) -> Prepared:
        """One item per input: their number is bounded by the input limit, not by `max_windows`."""
        limit = model.manifest.max_length
        encodings = model.encoder.encode_batch(
            self.encoder_inputs(request), max_length=limit if request.truncation else None
        )
        if not request.truncation:
            for position, encoding in enumerate(encodings):
                if len(encoding.ids) > limit:
                    raise InvalidInput(
                        f"input {position} is {len(encoding.ids)} tokens long; model {model.name!r} "
                        f"accepts at most {limit}: shorten it or send truncation=true"
                    )
        truncated = sum(1 for encoding in encodings if encoding.overflowing)
        items = [EncodedItem.from_encoding(e.ids, e.type_ids) for e in encodings]
        return Prepared(items=items, plan=None, truncated=truncated)

    def postprocess(
        self,
        request: RequestT,
        prepared: Prepared,
        outputs: Sequence[ItemOutputs],
        model: ModelContext,
    ) -> ClassificationResponse:
        function = request.function_to_apply or default_function(model.manifest)
        id2label = model.manifest.id2label
        results = [label_scores(out["logits"], function, id2label, request.top_k) for out in outputs]
        return ClassificationResponse(model=model.name, results=mirror(results, self.is_single(request)))
