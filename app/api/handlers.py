"""Exception handlers: every error leaves through app.api.error_response, with its status.

Unexpected exceptions are not handled here but in `app.edge.middleware`, inside the metrics and the
request id, so that a 500 is counted and carries `x-request-id` like any other answer.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from app.api.error_response import error_response
from app.api.huggingface import FORMAT_TAGS
from app.errors import ErrorKind, ServiceError, describe_invalid

HTTP_KINDS = {
    400: ErrorKind.INVALID_JSON,
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.METHOD_NOT_ALLOWED,
    413: ErrorKind.PAYLOAD_TOO_LARGE,
    415: ErrorKind.UNSUPPORTED_MEDIA_TYPE,
}


def describe_validation(error: RequestValidationError) -> tuple[ErrorKind, str]:
    """(kind, message) for a body that is not JSON, or JSON that does not fit the schema."""
    problems = error.errors()
    if problems and problems[0].get("type") == "json_invalid":  # then it is the only problem
        detail = problems[0].get("ctx", {}).get("error")
        return ErrorKind.INVALID_JSON, "the request body is not valid JSON" + (
            f": {detail}" if detail else ""
        )
    return ErrorKind.VALIDATION_ERROR, describe_invalid(problems, hidden=FORMAT_TAGS)


def install_handlers(app: FastAPI, retry_after_s: int) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        retry_after = error.retry_after or retry_after_s
        return error_response(error.kind, error.message, path=request.url.path, retry_after=retry_after)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        kind, message = describe_validation(error)
        return error_response(kind, message, path=request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = allowed_methods(headers.get("Allow"))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": headers["Allow"]})
        kind = HTTP_KINDS.get(error.status_code, ErrorKind.HTTP_ERROR)
        return error_response(
            kind, str(error.detail), path=request.url.path, headers=headers, status=error.status_code
        )


METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(route_methods: str | None) -> str:
    """The `Allow` value of a 405 (RFC 9110): the route's methods, HEAD wherever GET is (the server
    answers it), and OPTIONS, which every route answers. Only the static-file mount raises a 405 that
    names no methods: it serves GET and HEAD."""
    methods = {m.strip().upper() for m in (route_methods or "GET").split(",") if m.strip()}
    if "GET" in methods:
        methods.add("HEAD")
    methods.add("OPTIONS")
    return ", ".join(sorted(methods, key=lambda m: (*METHOD_ORDER, m).index(m)))
