"""The serving middleware, driven as the server drives it: hand-made `receive` and `send`.

A request's key is checked before its body is read; its body is read whole, within a deadline,
before it counts in flight; and its in-flight place is freed the moment its client leaves."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.edge.inflight import InflightLimit
from app.edge.middleware import RequestLedger, ServingMiddleware
from app.edge.upload import Message
from app.metrics import Metrics

KEY = "k3y"


class Client:
    """One connection: the messages `receive` hands out in turn (an Event waits for a signal), and
    what the middleware sent back."""

    def __init__(
        self, *messages: Message | asyncio.Event, path: str = "/classify", key: str | None = KEY
    ) -> None:
        self.pending = list(messages)
        self.gone = asyncio.Event()  # set: every later receive() is http.disconnect
        self.reads = 0
        self.sent: list[Message] = []
        headers = [(b"authorization", f"Bearer {key}".encode())] if key is not None else []
        self.scope: dict[str, Any] = {"type": "http", "method": "POST", "path": path, "headers": headers}

    async def receive(self) -> Message:
        self.reads += 1
        while self.pending and isinstance(self.pending[0], asyncio.Event):
            await self.pending.pop(0).wait()  # type: ignore[union-attr]
        if self.pending:
            message = self.pending.pop(0)
            assert not isinstance(message, asyncio.Event)
            return message
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return int(starts[0]["status"]) if starts else None

    def header(self, name: bytes) -> bytes | None:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return dict(start["headers"]).get(name)

    def error_type(self) -> str:
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return str(json.loads(body)["error"]["type"])


def chunk(body: bytes, *, more: bool) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


class EchoApp:
    """Reads the body, notes what the middleware had counted then, answers 200 after `hold` is set."""

    def __init__(self) -> None:
        self.hold = asyncio.Event()
        self.hold.set()
        self.bodies: list[bytes] = []
        self.received_at: list[float] = []
        self.inflight_seen: list[int] = []
        self.middleware: ServingMiddleware | None = None

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[[], Awaitable[Message]], send: Any
    ) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        self.received_at.append(scope["state"]["received"])
        assert self.middleware is not None
        self.inflight_seen.append(self.middleware.places.count)
        await self.hold.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def serving(
    app: EchoApp, *, cap: int = 8, timeout_s: float = 5.0, max_uploading: int = 4
) -> ServingMiddleware:
    middleware = ServingMiddleware(
        app,
        metrics=Metrics(),
        task_paths={"/classify": "classify"},
        max_body_bytes=100,
        inflight_limit=InflightLimit(cap, 0.0),
        retry_after_s=1,
        ledger=RequestLedger(),
        api_key=KEY,
        body_read_timeout_s=timeout_s,
        max_uploading_requests=max_uploading,
    )
    app.middleware = middleware
    return middleware


async def call(middleware: ServingMiddleware, client: Client) -> None:
    await middleware(client.scope, client.receive, client.send)


async def test_a_body_in_pieces_reaches_the_app_whole_and_counts_in_flight_only_once_in() -> None:
    app = EchoApp()
    middleware = serving(app)
    rest = asyncio.Event()
    client = Client(chunk(b'{"inputs"', more=True), rest, chunk(b': "hi"}', more=False))
    serving_task = asyncio.create_task(call(middleware, client))
    while client.reads < 2:
        await asyncio.sleep(0)
    assert (middleware.places.count, middleware.bodies.uploading) == (0, 1)  # arriving, not in flight
    last_piece_sent = time.perf_counter()
    rest.set()
    await serving_task
    assert client.status == 200
    assert app.bodies == [b'{"inputs": "hi"}']
    assert app.inflight_seen == [1]
    assert app.received_at[0] >= last_piece_sent  # "waited inside the server" counts from the body
    assert (middleware.places.count, middleware.bodies.uploading) == (0, 0)


async def test_a_stalled_body_gets_408_and_the_connection_is_closed() -> None:
    app = EchoApp()
    middleware = serving(app, timeout_s=0.05)
    client = Client(chunk(b"{", more=True), asyncio.Event())  # then nothing, ever
    await call(middleware, client)
    assert client.status == 408 and client.error_type() == "request_timeout"
    assert client.header(b"connection") == b"close"
    assert app.bodies == [] and middleware.bodies.uploading == 0
    assert middleware.metrics.rejected.labels("", "request_timeout")._value.get() == 1


async def test_a_missing_or_wrong_key_gets_401_before_a_byte_of_the_body_is_read() -> None:
    app = EchoApp()
    middleware = serving(app)
    for key in (None, "wrong"):
        client = Client(chunk(b"{", more=True), asyncio.Event(), key=key)
        await call(middleware, client)
        assert client.status == 401 and client.error_type() == "unauthorized"
        assert client.header(b"www-authenticate") == b"Bearer"
        assert client.reads == 0
    assert app.bodies == []


async def test_the_v2_infer_path_is_checked_too_and_answered_in_its_protocol_shape() -> None:
    app = EchoApp()
    middleware = serving(app)
    middleware.is_inference_path = lambda path: path.endswith("/infer")
    client = Client(chunk(b"{", more=True), asyncio.Event(), path="/v2/models/m/infer", key=None)
    await call(middleware, client)
    assert client.status == 401 and client.reads == 0
    body = b"".join(m.get("body", b"") for m in client.sent if m["type"] == "http.response.body")
    assert set(json.loads(body)) == {"error"}


async def test_a_body_over_the_limit_gets_413_while_it_arrives() -> None:
    app = EchoApp()
    middleware = serving(app)
    client = Client(*(chunk(b"x" * 60, more=True) for _ in range(3)))
    await call(middleware, client)
    assert client.status == 413 and client.error_type() == "payload_too_large"
    assert client.reads == 2 and app.bodies == []


async def test_bodies_still_arriving_have_a_cap_of_their_own_that_a_whole_body_never_meets() -> None:
    app = EchoApp()
    middleware = serving(app, max_uploading=1)
    stalled = Client(chunk(b"{", more=True), asyncio.Event())
    stalling = asyncio.create_task(call(middleware, stalled))
    while middleware.bodies.uploading < 1:
        await asyncio.sleep(0)
    slow = Client(chunk(b"{", more=True), chunk(b"}", more=False))
    await call(middleware, slow)
    assert slow.status == 503 and slow.error_type() == "overloaded"
    assert slow.header(b"retry-after") == b"1"
    whole = Client(chunk(b"{}", more=False))
    await call(middleware, whole)
    assert whole.status == 200
    stalling.cancel()


async def test_a_client_that_leaves_during_its_upload_is_neither_answered_nor_in_the_ledger() -> None:
    app = EchoApp()
    middleware = serving(app)
    client = Client(chunk(b"{", more=True))  # then http.disconnect once `gone` is set
    client.gone.set()
    await call(middleware, client)
    assert client.sent == [] and app.bodies == []
    assert (middleware.ledger.received, middleware.bodies.uploading) == (0, 0)
    assert middleware.metrics.requests.labels("", "classify", "499")._value.get() == 1


async def test_a_client_that_leaves_frees_its_place_while_its_request_still_runs() -> None:
    app = EchoApp()
    app.hold.clear()  # the request runs until told otherwise
    middleware = serving(app)
    client = Client(chunk(b"{}", more=False))
    running = asyncio.create_task(call(middleware, client))
    while middleware.places.count < 1:
        await asyncio.sleep(0)
    client.gone.set()
    while middleware.places.count:
        await asyncio.sleep(0)
    assert not running.done()  # freed at once, not when the request ends
    app.hold.set()
    await running
    assert middleware.places.count == 0 and middleware.metrics.inflight._value.get() == 0


async def test_at_the_limit_a_request_read_with_a_close_is_not_refused_for_the_departed_place() -> None:
    app = EchoApp()
    app.hold.clear()
    middleware = serving(app, cap=1)
    departing = Client(chunk(b"{}", more=False))
    held = asyncio.create_task(call(middleware, departing))
    while middleware.places.count < 1:
        await asyncio.sleep(0)
    # the next request runs first, then the server learns of the close: as when one loop turn reads both
    arriving = Client(chunk(b"{}", more=False))
    next_request = asyncio.create_task(call(middleware, arriving))
    asyncio.get_running_loop().call_soon(departing.gone.set)
    while not middleware.places.count or len(app.bodies) < 2:
        await asyncio.sleep(0)
        assert arriving.status is None, "refused although the only place was a departed client's"
    app.hold.set()
    await asyncio.gather(held, next_request)
    assert arriving.status == 200
