"""Exception handlers: every error leaves as `{"error": {"type", "message"}}` with its status.

Unexpected exceptions are not handled here but in `app.middleware`, inside the metrics and the
request id, so that a 500 is counted and carries `x-request-id` like any other answer.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from app.api.huggingface import FORMAT_TAGS
from app.api.v2_errors import is_v2_path, v2_error_response
from app.errors import STATUS_TABLE, ServiceError, error_body

HTTP_KINDS = {
    400: "invalid_json",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    kind: str,
    message: str,
    *,
    retry_after: int | None = None,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error answer (with `headers` besides its own); on the Open Inference Protocol routes, in
    that protocol's shape."""
    message = encodable(message)
    if request is not None and is_v2_path(request.url.path):
        return v2_error_response(kind, message, retry_after=retry_after, headers=headers)
    spec = STATUS_TABLE[kind]
    headers = dict(headers or {})
    if spec.retry:
        headers["Retry-After"] = str(retry_after or 1)
    if kind == "unauthorized":
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(kind, message), status_code=spec.status, headers=headers)


def encodable(message: str) -> str:
    """The message as UTF-8 can carry it: a lone surrogate (from an OS name or an exception's text)
    is written as its escape instead of failing the response."""
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        return message.encode("utf-8", "backslashreplace").decode("utf-8")
    return message


def describe_validation(error: RequestValidationError) -> tuple[str, str]:
    """(kind, message) for a body that is not JSON, or JSON that does not fit the schema.

    Looks at the first five problems only: the cost does not grow with their number."""
    problems = error.errors()
    if problems and problems[0].get("type") == "json_invalid":  # then it is the only problem
        detail = problems[0].get("ctx", {}).get("error")
        return "invalid_json", "the request body is not valid JSON" + (f": {detail}" if detail else "")
    parts = []
    for problem in problems[:5]:
        # union branches ("list[...]", "function-after[...]") are no part of where the problem is
        loc = [str(p) for p in problem.get("loc", ()) if p != "body" and "[" not in str(p)]
        if loc and loc[0] in FORMAT_TAGS:  # which of the two body formats: not part of the path
            loc = loc[1:]
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return "validation_error", "; ".join(parts) + more


def install_handlers(app: FastAPI, retry_after_s: int) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        return error_response(
            error.kind, error.message, retry_after=error.retry_after or retry_after_s, request=request
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        kind, message = describe_validation(error)
        return error_response(kind, message, request=request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = allowed_methods(headers.get("Allow"))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": headers["Allow"]})
        kind = HTTP_KINDS.get(error.status_code)
        if kind is None:
            if is_v2_path(request.url.path):
                body = {"error": str(error.detail)}
                return JSONResponse(body, status_code=error.status_code, headers=headers)
            return JSONResponse(
                error_body("http_error", str(error.detail)), status_code=error.status_code, headers=headers
            )
        return error_response(kind, str(error.detail), request=request, headers=headers)


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
