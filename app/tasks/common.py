"""What the tasks share: input text types, the request/response envelope, score functions, and the
windowing skeleton of the tasks that split an input into several items (qa, ner)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import islice
from typing import Annotated, Any, ClassVar, Protocol, TypeVar

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, model_validator
from pydantic.json_schema import WithJsonSchema
from pydantic_core import PydanticCustomError
from tokenizers import Encoding

from app.contract.items import EncodedItem, ItemOutputs
from app.errors import TooManyItems
from app.tasks.base import Prepared

NON_BLANK = r"[^\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""A character that is not whitespace (Python's `str.isspace`), spelled out so that every regex
dialect reads it alike: a text must contain one. The schema's `pattern` and the validator are this."""

_NON_BLANK = re.compile(NON_BLANK)


def _not_blank(text: str) -> str:
    if _NON_BLANK.search(text) is None:
        raise ValueError("must not be empty or only whitespace")
    return text  # kept as sent: character offsets in answers refer to it


TEXT_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "pattern": NON_BLANK,
    "description": "a text with at least one character that is not whitespace",
}

Text = Annotated[str, AfterValidator(_not_blank), WithJsonSchema(TEXT_SCHEMA)]
"""A non-blank string, kept unchanged."""


def _whole(value: Any) -> Any:
    """A JSON number without a fraction (`5.0`) is the integer JSON Schema says it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WHOLE = BeforeValidator(_whole)
"""For an integer option, `Annotated[int, Strict(), Field(ge=..., le=...), WHOLE]`: JSON integers and
fraction-less numbers, no strings or booleans. The bounds go inside the Annotated, before WHOLE, so
that the schema states them as minimum and maximum."""

T = TypeVar("T")


MAX_INPUTS_CEILING = 4096
"""The most inputs one request's schema accepts: a static bound that keeps validating (and
describing) an oversized list cheap; the setting max_items_per_request is at most this."""

UNKNOWN_FIELDS_NAMED = 5
"""Up to this many unknown fields are each an error of its own; more are one error that names
this many and counts the rest."""


class ClosedModel(BaseModel):
    """A JSON object with known fields only, whose rejection costs the same however many unknown
    fields it has."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _not_many_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            fields = cls.model_fields
            unknown = len(data) - sum(1 for name in fields if name in data)
            if unknown > UNKNOWN_FIELDS_NAMED:
                named = islice((k for k in data if k not in fields), UNKNOWN_FIELDS_NAMED)
                raise PydanticCustomError(
                    "extra_forbidden",
                    "unknown fields {names} (and {more} more); the fields are {fields}",
                    {
                        "names": ", ".join(repr(str(name)[:40]) for name in named),
                        "more": unknown - UNKNOWN_FIELDS_NAMED,
                        "fields": ", ".join(fields),
                    },
                )
        return data


class TaskRequest(ClosedModel):
    """Fields every request has; unknown fields are rejected (a misspelt option is an error)."""

    model: str | None = Field(
        None, description="model to use (a name from /v1/models); the task's default model when null"
    )

    option_rules: ClassVar[dict[str, JsonValue]] = {}
    """JSON Schema keywords for rules between options (e.g. `not`): the Hugging Face format's
    `parameters` schema carries them too."""


class TaskResponse(BaseModel):
    """The envelope of every answer."""

    model: str = Field(description="the model that answered")


def as_list(inputs: T | list[T]) -> list[T]:
    """One input or many, as a list."""
    return inputs if isinstance(inputs, list) else [inputs]


def regroup(outputs: Sequence[T], sizes: Sequence[int]) -> list[list[T]]:
    """Split the flat per-item outputs back into one list per input (`sizes[i]` items each)."""
    if sum(sizes) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs for {sum(sizes)} items")
    groups: list[list[T]] = []
    cursor = 0
    for size in sizes:
        groups.append(list(outputs[cursor : cursor + size]))
        cursor += size
    return groups


class Windowed(Protocol):
    """One input split into windows, each run as one item."""

    @property
    def encodings(self) -> Sequence[Encoding]: ...


WindowedT = TypeVar("WindowedT", bound=Windowed)

LONGEST_WINDOW = 512
"""The longest maximum length of the supported architectures: the static ceiling of the window
options (each request is checked against its own model's length as well)."""


def windows_needed(tokens: int, window: int, stride: int) -> int:
    """How many windows of `window` tokens, consecutive ones overlapping by `stride`, cover `tokens`
    tokens: the count the tokenizer's overflow gives, known before any window is built."""
    if tokens <= window:
        return 1
    return 1 + -(-(tokens - window) // (window - stride))


def check_window_budget(model: str, needed: int, limit: int | None) -> None:
    """413 for a request that needs more windows than `limit` (None: no limit), before any is built."""
    if limit is not None and needed > limit:
        raise TooManyItems(
            f"model {model!r}: the request needs {needed} windows after tokenization; at most {limit} "
            "are allowed per request: send fewer or shorter texts, or a smaller stride"
        )


def prepare_windows(inputs: list[WindowedT], truncated: int = 0) -> Prepared:
    """One item per window of every input, in order; the plan keeps the inputs to regroup them."""
    items = [EncodedItem.from_encoding(e.ids, e.type_ids) for one in inputs for e in one.encodings]
    return Prepared(items=items, plan=inputs, truncated=truncated)


def outputs_per_input(
    inputs: Sequence[WindowedT], outputs: Sequence[ItemOutputs]
) -> list[tuple[WindowedT, list[ItemOutputs]]]:
    """Each input with its windows' outputs (the flat item outputs regrouped)."""
    grouped = regroup(outputs, [len(one.encodings) for one in inputs])
    return list(zip(inputs, grouped, strict=True))


def mirror(results: list[Any], single: bool) -> Any:
    """The single result for a single input, the list for a list (like the pipeline)."""
    return results[0] if single else results


def sigmoid(outputs: np.ndarray) -> np.ndarray:
    """`transformers.pipelines.text_classification.sigmoid`, verbatim."""
    result: np.ndarray = 1.0 / (1.0 + np.exp(-outputs))
    return result


def softmax(outputs: np.ndarray) -> np.ndarray:
    """`transformers.pipelines.text_classification.softmax` (the NER pipeline's too), verbatim."""
    maxes = np.max(outputs, axis=-1, keepdims=True)
    shifted_exp = np.exp(outputs - maxes)
    result: np.ndarray = shifted_exp / shifted_exp.sum(axis=-1, keepdims=True)
    return result


NonEmptyList = Field(min_length=1, max_length=MAX_INPUTS_CEILING, fail_fast=True)
"""For `Annotated[list[X], NonEmptyList]`: a list of inputs. Its length is checked before its
elements, and their validation stops at the first invalid one (one error, however long the list)."""
