"""Domain errors and the one table that maps them to an HTTP status and a JSON body.

Every error answer has the body `{"error": {"type": ..., "message": ...}}`.
"""

from __future__ import annotations

from dataclasses import dataclass


class ServiceError(Exception):
    """Base of the errors the server answers with; `kind` keys the status table."""

    kind = "internal_error"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class ModelLoadError(ServiceError):
    kind = "model_load_error"


class ModelNotFound(ServiceError):
    kind = "model_not_found"


class WrongTask(ServiceError):
    kind = "wrong_task"


class ModelNotReady(ServiceError):
    kind = "model_not_ready"


class InvalidInput(ServiceError, ValueError):
    """A request that is well-formed JSON but cannot be served; tasks raise it (422)."""

    kind = "invalid_input"


class TooManyInputs(ServiceError):
    kind = "too_many_inputs"


class TextTooLong(ServiceError):
    kind = "text_too_long"


class QueueFull(ServiceError):
    """The queue cannot take the request's items now (429)."""

    kind = "queue_full"


class Overloaded(ServiceError):
    kind = "overloaded"


class Draining(ServiceError):
    kind = "shutting_down"


class DeadlineExceeded(ServiceError):
    """An item was still waiting when its deadline passed (504)."""

    kind = "timeout"


class TooManyItems(ServiceError):
    """The request needs more items (windows) than one request may have or a model's queue can ever hold."""

    kind = "too_many_items"


class InferenceFailed(ServiceError):
    kind = "inference_failed"


class Unauthorized(ServiceError):
    kind = "unauthorized"


class ClientClosed(ServiceError):
    kind = "client_closed"


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    retry: bool = False  # send Retry-After


STATUS_TABLE: dict[str, ErrorSpec] = {
    "invalid_json": ErrorSpec(400),
    "unauthorized": ErrorSpec(401),
    "not_found": ErrorSpec(404),
    "model_not_found": ErrorSpec(404),
    "method_not_allowed": ErrorSpec(405),
    "request_timeout": ErrorSpec(408),
    "payload_too_large": ErrorSpec(413),
    "too_many_inputs": ErrorSpec(413),
    "text_too_long": ErrorSpec(413),
    "too_many_items": ErrorSpec(413),
    "unsupported_media_type": ErrorSpec(415),
    "validation_error": ErrorSpec(422),
    "invalid_input": ErrorSpec(422),
    "wrong_task": ErrorSpec(422),
    "queue_full": ErrorSpec(429, retry=True),
    "client_closed": ErrorSpec(499),
    "internal_error": ErrorSpec(500),
    "inference_failed": ErrorSpec(500),
    "model_load_error": ErrorSpec(503, retry=True),
    "model_not_ready": ErrorSpec(503, retry=True),
    "overloaded": ErrorSpec(503, retry=True),
    "shutting_down": ErrorSpec(503, retry=True),
    "timeout": ErrorSpec(504),
}


def error_body(kind: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"type": kind, "message": message}}
