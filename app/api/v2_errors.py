"""Errors on the Open Inference Protocol routes: `{"error": "<message>"}`, the protocol's shape.

The status comes from the one table (app.errors), except that a request the server cannot use
(422 there) is 400 Bad Request here, as the protocol says; Retry-After is kept.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from app.errors import STATUS_TABLE, error_body

V2_PREFIX = "/v2"


def is_v2_path(path: str) -> bool:
    return path == V2_PREFIX or path.startswith(V2_PREFIX + "/")


def v2_status(kind: str) -> int:
    status = STATUS_TABLE[kind].status
    return 400 if status == 422 else status


def v2_error_response(
    kind: str, message: str, *, retry_after: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    headers = dict(headers or {})
    if STATUS_TABLE[kind].retry:
        headers["Retry-After"] = str(retry_after or 1)
    if kind == "unauthorized":
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": message}, status_code=v2_status(kind), headers=headers)


def error_body_for(path: str, kind: str, message: str) -> Any:
    """The error body for a path: the protocol's shape under /v2, the error table's elsewhere."""
    return {"error": message} if is_v2_path(path) else error_body(kind, message)
