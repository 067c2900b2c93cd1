"""The one builder of error answers, for the routes, their exception handlers and the middleware.

Elsewhere the body is `{"error": {"type", "message"}}` with the error table's status (app.errors).
On the Open Inference Protocol routes it is `{"error": "<message>"}`, the protocol's shape, and a
request the server cannot use (422 in the table) is 400 Bad Request, as the protocol says.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from app.errors import STATUS_TABLE, ErrorKind, ErrorSpec, error_body

V2_PREFIX = "/v2"


def is_v2_path(path: str) -> bool:
    return path == V2_PREFIX or path.startswith(V2_PREFIX + "/")


def error_response(
    kind: ErrorKind,
    message: str,
    *,
    path: str = "",
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> JSONResponse:
    """The answer for an error of `kind` on `path`, with `headers` besides its own: Retry-After
    where the kind is worth retrying, WWW-Authenticate for 401. `status` is for kinds the table
    does not name."""
    spec = STATUS_TABLE.get(kind) or ErrorSpec(status or 500)
    headers = dict(headers or {})
    if spec.retry:
        headers["Retry-After"] = str(retry_after or 1)
    if kind == ErrorKind.UNAUTHORIZED:
        headers["WWW-Authenticate"] = "Bearer"
    message = encodable(message)
    if not is_v2_path(path):
        return JSONResponse(error_body(kind, message), status_code=spec.status, headers=headers)
    v2_status = 400 if spec.status == 422 and kind in STATUS_TABLE else spec.status
    return JSONResponse({"error": message}, status_code=v2_status, headers=headers)


def encodable(message: str) -> str:
    """The message as UTF-8 can carry it: a lone surrogate (from an OS name or an exception's text)
    is written as its escape instead of failing the response."""
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        return message.encode("utf-8", "backslashreplace").decode("utf-8")
    return message
