"""Pure ASGI middleware: request ids, API key, whole bodies, in-flight cap, request metrics, last resort,
and each inference request's server span (app.tracing) and log context (app.logs).

Pure ASGI (not BaseHTTPMiddleware) so that it reads the server's own `receive`: an inference
request's key is checked before its body is read, its body is read whole within a deadline before
it counts in flight (app.edge.upload), and its in-flight place is freed the moment its client leaves.
It is also the one place where an unexpected exception becomes a 500 `internal_error`: counted,
logged with the request id, and answered with `x-request-id`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from app.api.auth import key_matches
from app.api.error_response import error_response
from app.edge.inflight import InflightLimit, InflightPlaces
from app.edge.upload import BodyReader, ClientLeft, Refusal, replay, watch_departure
from app.errors import STATUS_TABLE, ErrorKind
from app.logs import model_var, request_id_var, trace_ids_var
from app.metrics import Metrics
from app.tracing import TRACEPARENT, Tracing, traceparent_ids

log = logging.getLogger("bertserve.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID = "x-request-id"
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]+")


def accepted_request_id(value: str | None, max_chars: int) -> str:
    """The client's request id when it is short and made of safe characters, else a new one."""
    if value and len(value) <= max_chars and SAFE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


@dataclass
class RequestLedger:
    """Inference requests that reached the application, and how many of them got an answer.

    At shutdown the difference is what the drain left unanswered. A request a client sent on a
    connection the server was closing, or whose client left before its body was in, was never read
    whole and is in neither count."""

    received: int = 0
    answered: int = 0  # a response was started (any status)

    @property
    def unanswered(self) -> int:
        return self.received - self.answered

    def summary(self) -> str:
        return (
            f"inference requests: {self.received} received, {self.answered} answered, "
            f"{self.unanswered} unanswered"
        )

    @classmethod
    def last_in(cls, log_text: str) -> RequestLedger | None:
        """The ledger of the last `summary()` in a log, or None if there is none."""
        found = LEDGER_SUMMARY.findall(log_text)
        return cls(int(found[-1][0]), int(found[-1][1])) if found else None


LEDGER_SUMMARY = re.compile(r"inference requests: (\d+) received, (\d+) answered, \d+ unanswered")


class ServingMiddleware:
    """Wraps every HTTP request; checks, counts and limits the inference ones (`task_paths`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        task_paths: dict[str, str],
        max_body_bytes: int,
        inflight_limit: InflightLimit,
        retry_after_s: int,
        ledger: RequestLedger | None = None,
        max_request_id_chars: int = 128,
        is_inference_path: Callable[[str], bool] | None = None,
        api_key: str | None = None,
        body_read_timeout_s: float = 10.0,
        max_uploading_requests: int = 256,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        # Inference paths that name no task (e.g. /v2/models/{name}/infer): limited and counted
        # like the task paths; the route records the task in the scope state.
        self.is_inference_path = is_inference_path
        self.metrics = metrics
        self.task_paths = task_paths
        self.inflight_limit = inflight_limit
        self.places = InflightPlaces(inflight_limit, metrics.inflight)
        self.retry_after_s = retry_after_s
        self.max_request_id_chars = max_request_id_chars
        self.ledger = ledger or RequestLedger()
        self.api_key = api_key
        self.bodies = BodyReader(
            max_body_bytes=max_body_bytes, timeout_s=body_read_timeout_s, max_uploading=max_uploading_requests
        )
        self.tracing = tracing or Tracing(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = accepted_request_id(headers.get(REQUEST_ID), self.max_request_id_chars)
        state = scope.setdefault("state", {})
        state["request_id"], state["received"] = request_id, time.perf_counter()
        # other methods on an inference path are no inference: the router answers them (405, OPTIONS)
        task = self._inference_task(scope.get("path", "")) if scope.get("method") == "POST" else None
        with RequestContext(self.tracing, scope, headers, request_id, task is not None) as context:
            await self._serve(scope, receive, send, context, task)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, context: RequestContext, task: str | None
    ) -> None:
        path = scope.get("path", "")
        headers, request_id, status = context.headers, context.request_id, context.status
        counted = int(task is not None)  # the ledger counts inference requests only

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], 1
                self.ledger.answered += counted
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID.encode(), request_id.encode())]
            await send(message)

        async def guarded(app_receive: Receive) -> None:
            """The app, with any unexpected exception answered as a 500 that carries the request id."""
            try:
                await self.app(scope, app_receive, send_wrapper)
            except Exception as error:
                self.metrics.internal_errors.inc()
                log.exception("unexpected error on %s %s", scope.get("method"), path)
                if status["started"]:
                    raise  # too late for an error body: the server closes the connection
                message = f"internal error ({type(error).__name__})"
                await self._reject(send_wrapper, Refusal(ErrorKind.INTERNAL_ERROR, message), path)

        if task is None:
            await guarded(receive)
            return
        state = scope["state"]
        try:
            body = await self._read_admissible_body(headers, receive)
        except ClientLeft:
            status["code"] = STATUS_TABLE[ErrorKind.CLIENT_CLOSED].status
        except Refusal as refusal:
            self.ledger.received += 1
            await self._reject(send_wrapper, refusal, path)
        else:
            state["received"] = time.perf_counter()  # waits inside the server count from here
            self.ledger.received += 1
            await self._run(body, receive, guarded, send_wrapper, path)
            if status["code"] not in (429, 499, 503):
                self.inflight_limit.answered()
        model = str(state.get("model", ""))
        task = str(state.get("task") or task)
        self.metrics.requests.labels(model, task, str(status["code"])).inc()
        self.metrics.request_duration.labels(model, task).observe(time.perf_counter() - state["received"])

    def _inference_task(self, path: str) -> str | None:
        """The task an inference path serves ("" when the route names it later), None elsewhere."""
        task = self.task_paths.get(path)
        if task is None and self.is_inference_path is not None and self.is_inference_path(path):
            return ""
        return task

    async def _read_admissible_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        """The body of a request that may be served; the cheap refusals come before a byte is read."""
        check_headers(headers, self.api_key, self.bodies.max_body_bytes)
        if (full := await self.places.refusal()) is not None:
            raise Refusal(ErrorKind.OVERLOADED, full)
        return await self.bodies.read(receive)

    async def _run(
        self,
        body: bytes,
        receive: Receive,
        guarded: Callable[[Receive], Awaitable[None]],
        send: Send,
        path: str,
    ) -> None:
        """The app on a request whose body is in: in flight until it ends or its client leaves."""
        if (full := await self.places.refusal()) is not None:  # others came in while this body arrived
            await self._reject(send, Refusal(ErrorKind.OVERLOADED, full), path)
            return
        release = self.places.take()
        gone = asyncio.Event()
        watcher = asyncio.create_task(watch_departure(receive, gone, release))
        try:
            await guarded(replay(body, gone))
        finally:
            watcher.cancel()
            release()

    async def _reject(self, send: Send, refusal: Refusal, path: str) -> None:
        if refusal.kind in COUNTED_REFUSALS:
            self.metrics.rejected.labels("", refusal.kind).inc()
        headers = {"Connection": "close"} if refusal.close else None
        response = error_response(
            refusal.kind, refusal.message, path=path, retry_after=self.retry_after_s, headers=headers
        )
        start = {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
        await send(start)
        await send({"type": "http.response.body", "body": response.body})


class RequestContext:
    """While a request is served: its log context (request id, trace ids, model: app.logs) and, for an
    inference request, its server span (app.tracing), ended with the status the request was answered."""

    __slots__ = ("_tokens", "headers", "request_id", "scope", "status", "trace", "trace_ids")

    def __init__(
        self, tracing: Tracing, scope: Scope, headers: dict[str, str], request_id: str, inference: bool
    ) -> None:
        self.scope, self.headers, self.request_id = scope, headers, request_id
        self.status = {"code": 500, "started": 0}  # 499 if its client left before an answer
        if inference:
            method, path = scope.get("method", ""), scope.get("path", "")
            self.trace, self.trace_ids = tracing.start_request(method, path, headers, request_id)
        else:  # only inference requests are traced; the ids of a traceparent still reach the logs
            self.trace, self.trace_ids = None, traceparent_ids(headers.get(TRACEPARENT))
        scope["state"]["trace"] = self.trace

    def __enter__(self) -> RequestContext:
        self._tokens = (
            request_id_var.set(self.request_id),
            trace_ids_var.set(self.trace_ids),
            model_var.set(""),
        )
        return self

    def __exit__(self, *_: object) -> None:
        model_var.reset(self._tokens[2])
        trace_ids_var.reset(self._tokens[1])
        request_id_var.reset(self._tokens[0])
        if self.trace is not None:
            self.trace.finish(self.status["code"], route_template(self.scope))


def route_template(scope: Scope) -> str | None:
    """The path template of the route that served a request (e.g. /v2/models/{name}/infer)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


def check_headers(headers: dict[str, str], api_key: str | None, max_body_bytes: int) -> None:
    """401 without the API key, 413 for a declared body over the limit: both before any body is read."""
    if api_key is not None and not key_matches(headers.get("authorization"), api_key):
        raise Refusal(ErrorKind.UNAUTHORIZED, "missing or wrong API key (send Authorization: Bearer <key>)")
    try:
        declared = int(headers.get("content-length", "0") or 0)
    except ValueError:
        declared = 0
    if declared > max_body_bytes:
        raise Refusal(
            ErrorKind.PAYLOAD_TOO_LARGE, f"request body of {declared} bytes; the limit is {max_body_bytes}"
        )


COUNTED_REFUSALS = frozenset({ErrorKind.OVERLOADED, ErrorKind.REQUEST_TIMEOUT})
"""Refusals the middleware counts in bertserve_rejected_total (reason = the kind)."""
