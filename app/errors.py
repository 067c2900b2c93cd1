"""Domain errors and the one table that maps them to an HTTP status and a JSON body.

Every error answer has the body `{"error": {"type": ..., "message": ...}}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    """The `type` of an error answer; STATUS_TABLE gives each its status."""

    INVALID_JSON = "invalid_json"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    MODEL_NOT_FOUND = "model_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    TOO_MANY_INPUTS = "too_many_inputs"
    TEXT_TOO_LONG = "text_too_long"
    TOO_MANY_ITEMS = "too_many_items"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"
    INVALID_INPUT = "invalid_input"
    WRONG_TASK = "wrong_task"
    LOAD_FAILED = "load_failed"
    QUEUE_FULL = "queue_full"
    CLIENT_CLOSED = "client_closed"
    INTERNAL_ERROR = "internal_error"
    INFERENCE_FAILED = "inference_failed"
    MODEL_LOAD_ERROR = "model_load_error"
    MODEL_NOT_READY = "model_not_ready"
    OVERLOADED = "overloaded"
    SHUTTING_DOWN = "shutting_down"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"  # a status the table does not name (it comes with the exception)


class ServiceError(Exception):
    """Base of the errors the server answers with; `kind` keys the status table."""

    kind = ErrorKind.INTERNAL_ERROR

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class ModelLoadError(ServiceError):
    kind = ErrorKind.MODEL_LOAD_ERROR


class ModelLoadFailed(ServiceError):
    """A load asked for through the repository API failed; the model served before, if any, still serves."""

    kind = ErrorKind.LOAD_FAILED


class ModelNotFound(ServiceError):
    kind = ErrorKind.MODEL_NOT_FOUND


class WrongTask(ServiceError):
    kind = ErrorKind.WRONG_TASK


class ModelNotReady(ServiceError):
    kind = ErrorKind.MODEL_NOT_READY


class InvalidInput(ServiceError, ValueError):
    """A request that is well-formed JSON but cannot be served; tasks raise it (422)."""

    kind = ErrorKind.INVALID_INPUT


class TooManyInputs(ServiceError):
    kind = ErrorKind.TOO_MANY_INPUTS


class TextTooLong(ServiceError):
    kind = ErrorKind.TEXT_TOO_LONG


class QueueFull(ServiceError):
    """The queue cannot take the request's items now (429)."""

    kind = ErrorKind.QUEUE_FULL


class Overloaded(ServiceError):
    kind = ErrorKind.OVERLOADED


class Draining(ServiceError):
    kind = ErrorKind.SHUTTING_DOWN


class DeadlineExceeded(ServiceError):
    """An item was still waiting when its deadline passed (504)."""

    kind = ErrorKind.TIMEOUT


class TooManyItems(ServiceError):
    """The request needs more items (windows) than one request may have or a model's queue can ever hold."""

    kind = ErrorKind.TOO_MANY_ITEMS


class InferenceFailed(ServiceError):
    kind = ErrorKind.INFERENCE_FAILED


class Unauthorized(ServiceError):
    kind = ErrorKind.UNAUTHORIZED


class ClientClosed(ServiceError):
    kind = ErrorKind.CLIENT_CLOSED


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    retry: bool = False  # send Retry-After


STATUS_TABLE: dict[ErrorKind, ErrorSpec] = {
    ErrorKind.INVALID_JSON: ErrorSpec(400),
    ErrorKind.UNAUTHORIZED: ErrorSpec(401),
    ErrorKind.NOT_FOUND: ErrorSpec(404),
    ErrorKind.MODEL_NOT_FOUND: ErrorSpec(404),
    ErrorKind.METHOD_NOT_ALLOWED: ErrorSpec(405),
    ErrorKind.REQUEST_TIMEOUT: ErrorSpec(408),
    ErrorKind.PAYLOAD_TOO_LARGE: ErrorSpec(413),
    ErrorKind.TOO_MANY_INPUTS: ErrorSpec(413),
    ErrorKind.TEXT_TOO_LONG: ErrorSpec(413),
    ErrorKind.TOO_MANY_ITEMS: ErrorSpec(413),
    ErrorKind.UNSUPPORTED_MEDIA_TYPE: ErrorSpec(415),
    ErrorKind.VALIDATION_ERROR: ErrorSpec(422),
    ErrorKind.INVALID_INPUT: ErrorSpec(422),
    ErrorKind.WRONG_TASK: ErrorSpec(422),
    ErrorKind.LOAD_FAILED: ErrorSpec(422),
    ErrorKind.QUEUE_FULL: ErrorSpec(429, retry=True),
    ErrorKind.CLIENT_CLOSED: ErrorSpec(499),
    ErrorKind.INTERNAL_ERROR: ErrorSpec(500),
    ErrorKind.INFERENCE_FAILED: ErrorSpec(500),
    ErrorKind.MODEL_LOAD_ERROR: ErrorSpec(503, retry=True),
    ErrorKind.MODEL_NOT_READY: ErrorSpec(503, retry=True),
    ErrorKind.OVERLOADED: ErrorSpec(503, retry=True),
    ErrorKind.SHUTTING_DOWN: ErrorSpec(503, retry=True),
    ErrorKind.TIMEOUT: ErrorSpec(504),
}


def error_body(kind: ErrorKind, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"type": kind, "message": message}}


def describe_invalid(
    problems: Sequence[Mapping[str, Any]], *, hidden: Set[str] = frozenset(), whole: str = "body"
) -> str:
    """What clients are told of a value that does not fit its schema: the first five of pydantic's
    problems, each at its location (`whole` for the value itself); union branches and the `hidden`
    tags are no part of a location."""
    parts = []
    for problem in problems[:5]:
        loc = [str(p) for p in problem.get("loc", ()) if p != "body" and "[" not in str(p)]
        if loc and loc[0] in hidden:
            loc = loc[1:]
        parts.append(f"{'.'.join(loc) or whole}: {problem.get('msg', 'invalid')}")
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return "; ".join(parts) + more
