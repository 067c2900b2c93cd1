"""POST /classify: labels for one text or many (`pipeline("text-classification")`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from app.tasks.common import NonEmptyList, Text, as_list
from app.tasks.sequence import SequenceOptions, SequenceTask
from app.tasks.tensors import LabelScores, TensorMapping


class ClassifyRequest(SequenceOptions):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"inputs": "This movie is disgustingly good!"},
                {"inputs": ["I loved it.", "Director tried too much."], "top_k": None},
            ]
        }
    )

    inputs: Text | Annotated[list[Text], NonEmptyList] = Field(
        description="a text, or a list of texts (the results mirror it)"
    )


class ClassifyTask(SequenceTask[ClassifyRequest]):
    name = "classify"
    summary = "Classify texts: the top_k labels of each, like transformers' text-classification pipeline"
    request_model: ClassVar[type[BaseModel]] = ClassifyRequest
    tensors: ClassVar[TensorMapping] = LabelScores(("text",))

    def encoder_inputs(self, request: ClassifyRequest) -> list[str]:
        return as_list(request.inputs)

    def is_single(self, request: ClassifyRequest) -> bool:
        return isinstance(request.inputs, str)

    def texts(self, request: ClassifyRequest) -> list[str]:
        return as_list(request.inputs)
