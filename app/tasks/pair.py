"""POST /pair: labels for text pairs, two segments with token type ids (NLI, paraphrase, ...)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from app.tasks.common import ClosedModel, NonEmptyList, Text, as_list
from app.tasks.sequence import SequenceOptions, SequenceTask
from app.tasks.tensors import LabelScores, TensorMapping


class TextPair(ClosedModel):
    text: Text = Field(description="first segment (token type 0)")
    text_pair: Text = Field(description="second segment (token type 1)")


class PairRequest(SequenceOptions):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"inputs": {"text": "A man is eating.", "text_pair": "Someone eats."}, "top_k": None},
                {
                    "inputs": [
                        {"text": "It rains.", "text_pair": "The street is wet."},
                        {"text": "It rains.", "text_pair": "The sun is shining."},
                    ]
                },
            ]
        }
    )

    inputs: TextPair | Annotated[list[TextPair], NonEmptyList] = Field(
        description='a {"text", "text_pair"} object, or a list of them (the results mirror it)'
    )


class PairTask(SequenceTask[PairRequest]):
    name = "pair"
    summary = (
        'Classify text pairs, like transformers\' text-classification pipeline given {"text", "text_pair"}'
    )
    request_model: ClassVar[type[BaseModel]] = PairRequest
    tensors: ClassVar[TensorMapping] = LabelScores(("text", "text_pair"))

    def encoder_inputs(self, request: PairRequest) -> list[tuple[str, str]]:
        return [(pair.text, pair.text_pair) for pair in as_list(request.inputs)]

    def is_single(self, request: PairRequest) -> bool:
        return isinstance(request.inputs, TextPair)

    def texts(self, request: PairRequest) -> list[str]:
        return [text for pair in as_list(request.inputs) for text in (pair.text, pair.text_pair)]
