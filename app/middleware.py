"""Pure ASGI middleware: request ids, body size limit, in-flight cap, request metrics, last resort.

Pure ASGI (not BaseHTTPMiddleware) so that `receive` stays the server's own and a route can
notice a client that went away. It is also the one place where an unexpected exception becomes a
500 `internal_error`: counted, logged with the request id, and answered with `x-request-id`.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

from app.errors import STATUS_TABLE, error_body
from app.inflight import InflightLimit
from app.logs import request_id_var
from app.metrics import Metrics

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

    At shutdown the difference is what the drain left unanswered; a request a client sent on a
    connection the server was closing never reached the application and is in neither count."""

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
    """Wraps every HTTP request; counts and limits the inference ones (`task_paths`)."""

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
        error_body_for: Callable[[str, str, str], Any] | None = None,
    ) -> None:
        self.app = app
        # Inference paths that name no task (e.g. /v2/models/{name}/infer): limited and counted
        # like the task paths; the route records the task in the scope state.
        self.is_inference_path = is_inference_path
        # (path, kind, message) -> the error body, where a path's protocol has its own error shape.
        self.error_body_for = error_body_for
        self.metrics = metrics
        self.task_paths = task_paths
        self.max_body_bytes = max_body_bytes
        self.inflight_limit = inflight_limit
        self.retry_after_s = retry_after_s
        self.max_request_id_chars = max_request_id_chars
        self.ledger = ledger or RequestLedger()
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = accepted_request_id(headers.get(REQUEST_ID), self.max_request_id_chars)
        state = scope.setdefault("state", {})
        state["request_id"], state["received"] = request_id, time.perf_counter()
        token = request_id_var.set(request_id)
        try:
            await self._serve(scope, receive, send, headers, request_id)
        finally:
            request_id_var.reset(token)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], request_id: str
    ) -> None:
        task = self._inference_task(scope.get("path", ""))
        status = {"code": 500, "started": 0}
        counted = int(task is not None)  # the ledger counts inference requests only
        self.ledger.received += counted

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
                log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
                if status["started"]:
                    raise  # too late for an error body: the server closes the connection
                message = f"internal error ({type(error).__name__})"
                await self._reject(send_wrapper, "internal_error", message, path=scope.get("path", ""))

        if task is None:
            await guarded(receive)
            return

        started = time.perf_counter()
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        if declared > self.max_body_bytes:
            await self._reject(
                send_wrapper,
                "payload_too_large",
                f"request body of {declared} bytes; the limit is {self.max_body_bytes}",
                path=scope.get("path", ""),
            )
        elif self.inflight >= (limit := self.inflight_limit.limit()):
            self.metrics.rejected.labels("", "overloaded").inc()
            await self._reject(
                send_wrapper,
                "overloaded",
                f"{self.inflight} requests in progress; the limit is {limit} now",
                path=scope.get("path", ""),
            )
        else:
            self.inflight += 1
            self.metrics.inflight.inc()
            try:
                await guarded(self._limited(receive))
            finally:
                self.inflight -= 1
                self.metrics.inflight.dec()
            if status["code"] not in (429, 503):
                self.inflight_limit.answered()
        model = str(scope["state"].get("model", ""))
        task = str(scope["state"].get("task") or task)
        self.metrics.requests.labels(model, task, str(status["code"])).inc()
        self.metrics.request_duration.labels(model, task).observe(time.perf_counter() - started)

    def _inference_task(self, path: str) -> str | None:
        """The task an inference path serves ("" when the route names it later), None elsewhere."""
        task = self.task_paths.get(path)
        if task is None and self.is_inference_path is not None and self.is_inference_path(path):
            return ""
        return task

    def _limited(self, receive: Receive) -> Receive:
        """A receive that refuses bodies over the limit even without a Content-Length."""
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, f"request body over {self.max_body_bytes} bytes")
            return message

        return limited

    async def _reject(self, send: Send, kind: str, message: str, *, path: str = "") -> None:
        spec = STATUS_TABLE[kind]
        shaped = (
            self.error_body_for(path, kind, message) if self.error_body_for else error_body(kind, message)
        )
        body = json.dumps(shaped).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if spec.retry:
            headers.append((b"retry-after", str(self.retry_after_s).encode()))
        await send({"type": "http.response.start", "status": spec.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
