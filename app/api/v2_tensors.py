"""Open Inference Protocol (v2) tensors: the request body (JSON, or JSON + binary tensor data), its
input tensors as lists of strings, and the outputs a request asks for. Each task maps the tensors to
its request and its answer to tensors (app.tasks.tensors).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.api.json_body import InvalidJSON, parse_json
from app.errors import ErrorKind, ServiceError, TooManyInputs, describe_invalid
from app.tasks.common import MAX_INPUTS_CEILING

MAX_TENSORS = 16
"""Most input tensors, and most requested outputs, in one request (a task has at most 8)."""

MAX_RANK = 8
"""Most dimensions of an input tensor's shape."""

MAX_PARAMETERS = 64
"""Most entries in a `parameters` object (the request's or a tensor's)."""


class BadTensorRequest(ServiceError):
    """A v2 request that does not fit the protocol or the model's tensors (400)."""

    kind = ErrorKind.INVALID_INPUT


Dimension = Annotated[int, Field(ge=0, le=MAX_INPUTS_CEILING)]
"""One dimension of a shape: a tensor holds at most one element per input of a request."""

Parameters = Annotated[dict[str, Any], Field(max_length=MAX_PARAMETERS)]


class InputTensor(BaseModel):
    name: str
    shape: Annotated[list[Dimension], Field(max_length=MAX_RANK)]
    datatype: str
    parameters: Parameters | None = None
    data: Any = None


class RequestedOutput(BaseModel):
    name: str
    parameters: Parameters | None = None


class InferRequest(BaseModel):
    """The v2 inference request (JSON part); fields the protocol may add later are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    parameters: Parameters = Field(default_factory=dict)
    inputs: Annotated[list[InputTensor], Field(max_length=MAX_TENSORS)]
    outputs: Annotated[list[RequestedOutput], Field(max_length=MAX_TENSORS)] | None = None


class OutputTensor(BaseModel):
    name: str
    datatype: str = Field(description="BYTES, FP32 or INT64")
    shape: list[int]
    data: list[Any] = Field(description="the elements, flattened in row-major order")


class InferResponse(BaseModel):
    """The v2 inference response."""

    model_name: str
    model_version: str
    id: str = Field(description="the request's id, or its x-request-id")
    outputs: list[OutputTensor]


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its definitions inlined (for a hand-read request body)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


PROTOCOL_PARAMETERS = frozenset(
    {"binary_data_output", "priority", "timeout", "sequence_id", "sequence_start", "sequence_end"}
)
"""Request parameters the protocol's clients may send that are no pipeline option (ignored)."""


def parse_body(body: bytes, header_length: str | None) -> tuple[InferRequest, bytes]:
    """The JSON request and the binary tensor data after it (binary data extension)."""
    split = len(body)
    if header_length is not None:
        try:
            split = int(header_length)
        except ValueError:
            raise BadTensorRequest(
                f"Inference-Header-Content-Length {header_length!r} is no number"
            ) from None
        if not 0 < split <= len(body):
            raise BadTensorRequest(
                f"Inference-Header-Content-Length {split} does not fit a {len(body)}-byte body"
            )
    try:
        document = parse_json(body[:split])
    except InvalidJSON as error:
        raise BadTensorRequest(f"the request body is not valid JSON: {error}") from None
    try:
        return InferRequest.model_validate(document), body[split:]
    except ValidationError as error:
        raise BadTensorRequest(f"not a v2 inference request: {describe_invalid(error.errors())}") from None


_END = object()
"""Marks an exhausted level in `flatten`."""


def flatten(data: Any, name: str, shape: list[int], expected: int) -> list[Any]:
    """The elements of `data` (a scalar, or lists nested at most as deep as the shape has
    dimensions) in row-major order; refused once it holds more than `expected` elements."""
    rank = max(len(shape), 1)
    values: list[Any] = []
    visits = 0
    most_visits = (rank + 1) * max(expected, 1)  # every list and element of a tensor of that shape
    levels: list[Iterator[Any]] = [iter((data,))]
    while levels:
        item = next(levels[-1], _END)
        if item is _END:
            levels.pop()
            continue
        visits += 1
        if visits > most_visits or len(values) > expected:
            raise BadTensorRequest(f"input {name!r}: more data than its shape {shape} holds")
        if isinstance(item, list):
            if len(levels) > rank:
                raise BadTensorRequest(f"input {name!r}: data nested deeper than its shape {shape}")
            levels.append(iter(item))
        else:
            values.append(item)
    return values


def _deserialize_bytes(raw: bytes, name: str, expected: int) -> list[str]:
    """BYTES in the binary extension: each element a little-endian uint32 length, then the bytes;
    refused once there are more than `expected` elements."""
    texts: list[str] = []
    offset = 0
    while offset < len(raw):
        if len(texts) == expected:
            raise BadTensorRequest(f"input {name!r}: more than the {expected} elements of its shape")
        if offset + 4 > len(raw):
            raise BadTensorRequest(f"input {name!r}: truncated binary BYTES element")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadTensorRequest(f"input {name!r}: truncated binary BYTES element")
        try:
            texts.append(raw[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise BadTensorRequest(f"input {name!r}: element {len(texts)} is not UTF-8") from None
        offset += length
    return texts


def input_texts(request: InferRequest, binary: bytes, names: tuple[str, ...]) -> dict[str, list[str]]:
    """Each expected input tensor as a list of strings, all of one length."""
    given = {tensor.name: tensor for tensor in request.inputs}
    unknown = sorted(set(given) - set(names))
    if unknown or len(given) != len(request.inputs):
        raise BadTensorRequest(f"unexpected or repeated inputs {unknown}; this model takes {list(names)}")
    missing = [name for name in names if name not in given]
    if missing:
        raise BadTensorRequest(f"missing input {missing[0]!r}; this model takes {list(names)}")
    offset = 0
    texts: dict[str, list[str]] = {}
    for tensor in request.inputs:  # binary data follows the JSON in the order of the inputs
        if tensor.datatype != "BYTES":
            raise BadTensorRequest(f"input {tensor.name!r} is {tensor.datatype!r}; it must be BYTES (text)")
        expected = math.prod(tensor.shape)  # at most MAX_RANK factors, each at most MAX_INPUTS_CEILING
        if expected > MAX_INPUTS_CEILING:
            raise TooManyInputs(
                f"input {tensor.name!r} has shape {tensor.shape}, {expected} elements; "
                f"a request holds at most {MAX_INPUTS_CEILING} inputs"
            )
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadTensorRequest(
                    f"input {tensor.name!r}: binary_data_size {size!r} past the body's end"
                )
            values: list[Any] = _deserialize_bytes(binary[offset : offset + size], tensor.name, expected)
            offset += size
        elif tensor.data is None:
            raise BadTensorRequest(f"input {tensor.name!r} has no data")
        else:
            values = flatten(tensor.data, tensor.name, tensor.shape, expected)
        if len(values) != expected:
            raise BadTensorRequest(
                f"input {tensor.name!r} has shape {tensor.shape} but {len(values)} elements"
            )
        if not all(isinstance(value, str) for value in values):
            raise BadTensorRequest(f"input {tensor.name!r}: every element must be a string")
        texts[tensor.name] = values
    counts = {len(values) for values in texts.values()}
    if counts == {0}:
        raise BadTensorRequest("the inputs hold no elements")
    if len(counts) != 1:
        raise BadTensorRequest(f"inputs {list(names)} must hold the same number of elements")
    return texts


def select_outputs(
    tensors: list[dict[str, Any]], requested: list[RequestedOutput] | None
) -> list[dict[str, Any]]:
    """The outputs the request names (all when it names none)."""
    if not requested:
        return tensors
    by_name = {t["name"]: t for t in tensors}
    unknown = [output.name for output in requested if output.name not in by_name]
    if unknown:
        raise BadTensorRequest(f"unknown output {unknown[0]!r}; this answer has {list(by_name)}")
    return [by_name[output.name] for output in requested]
