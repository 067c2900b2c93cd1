"""Reading an inference request's body before the application sees it: within a deadline, under the
size limit, with a cap of its own on how many bodies may be arriving at once.

The serving middleware counts a request in flight only once its body is in. A client that sends
its body slowly, or never finishes it, holds an upload place for at most the deadline (then 408),
and never a place meant for work; a body that arrives with its headers needs no upload place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from app.errors import ErrorKind

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class Refusal(Exception):
    """A request the middleware answers itself, with a kind of the error table.

    `close` closes the connection after the answer: the server gives up on the rest of the body."""

    def __init__(self, kind: ErrorKind, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.close = close


class ClientLeft(Exception):
    """The client closed the connection before its body was in: there is nobody to answer."""


class BodyReader:
    """Reads whole bodies: 413 over `max_body_bytes`, 408 past `timeout_s` from the first read,
    503 for a body still arriving while `max_uploading` others are."""

    def __init__(self, *, max_body_bytes: int, timeout_s: float, max_uploading: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        self.max_uploading = max_uploading
        self.uploading = 0  # bodies begun and not finished

    async def read(self, receive: Receive) -> bytes:
        """The whole body; raises Refusal or ClientLeft instead."""
        uploading = False
        try:
            async with asyncio.timeout(self.timeout_s):
                chunks: list[bytes] = []
                size = 0
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientLeft
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise Refusal(
                            ErrorKind.PAYLOAD_TOO_LARGE, f"request body over {self.max_body_bytes} bytes"
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
                    if not uploading:
                        self._take_upload_place()
                        uploading = True
        except TimeoutError:
            raise Refusal(
                ErrorKind.REQUEST_TIMEOUT,
                f"the request body did not arrive within {self.timeout_s:g} s",
                close=True,
            ) from None
        finally:
            if uploading:
                self.uploading -= 1

    def _take_upload_place(self) -> None:
        if self.uploading >= self.max_uploading:
            raise Refusal(
                ErrorKind.OVERLOADED,
                f"{self.uploading} request bodies are arriving; the limit is {self.max_uploading}",
            )
        self.uploading += 1


def replay(body: bytes, gone: asyncio.Event) -> Receive:
    """A receive for the application: the body already read, then `http.disconnect` once `gone` is set."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    return receive


async def watch_departure(receive: Receive, gone: asyncio.Event, on_gone: Callable[[], None]) -> None:
    """After the body: wait for the server's `http.disconnect`, call `on_gone` at once, set `gone`.

    The server also sends it once the answer is complete; `on_gone` must allow for that."""
    while (await receive())["type"] != "http.disconnect":
        pass
    on_gone()
    gone.set()
