"""HTTP/1.1 by hand over asyncio sockets: the requests a client library will not send (a lone
surrogate escape in the raw body, a body shorter than declared, a stalled or dribbled upload, a
header flood), each answered with its status and how long the server took after the last byte."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

CLOSED = 0
"""Status of an exchange the server ended by closing (or resetting) the connection without an answer."""
NO_ANSWER = -1
"""Status of an exchange the client gave up on: nothing came back within its wait."""
CHUNK_BYTES = 64 * 1024
DETAIL_BYTES = 4096  # enough of an error body to name its type


@dataclass(frozen=True)
class Raw:
    """One request as bytes on the wire: the head this builds, then `body`."""

    path: str
    body: bytes = b""
    method: str = "POST"
    content_type: str | None = "application/json"
    key: str | None = None
    declared: int | None = None  # Content-Length when it is not the body's length
    chunked: bool = False  # Transfer-Encoding: chunked instead of a Content-Length
    extra_headers: tuple[tuple[str, str], ...] = ()

    def head(self) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        if self.content_type is not None:
            lines.append(f"Content-Type: {self.content_type}")
        if self.key is not None:
            lines.append(f"Authorization: Bearer {self.key}")
        if self.chunked:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {len(self.body) if self.declared is None else self.declared}")
        lines.extend(f"{name}: {value}" for name, value in self.extra_headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def with_key(self, key: str | None) -> Raw:
        return dataclasses.replace(self, key=key)

    def wire_body(self) -> bytes:
        """The body as sent: chunk-framed when chunked."""
        if not self.chunked:
            return self.body
        framed = bytearray()
        for start in range(0, len(self.body), CHUNK_BYTES):
            piece = self.body[start : start + CHUNK_BYTES]
            framed += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        return bytes(framed + b"0\r\n\r\n")


LITERAL = "\x00literal\x00"
"""A string value `json_body` replaces with its `literal` bytes (what json.dumps cannot write)."""


def json_body(document: object, literal: bytes = b"") -> bytes:
    """Compact JSON with every non-ASCII character escaped (a lone surrogate goes out as the text
    `\\ud800`); the value LITERAL, if any, becomes `literal` as it is (a 5,000-digit number)."""
    body = json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode()
    return body.replace(json.dumps(LITERAL).encode(), literal) if literal else body


@dataclass(frozen=True)
class Sending:
    """How the body goes out: at once, dribbled over `dribble_s`, or cut after `send_bytes`; then
    the client waits for the answer, or half-closes first (`then="half_close"`: no more is coming)."""

    send_bytes: int | None = None
    dribble_s: float = 0.0
    pieces: int = 10
    then: Literal["wait", "half_close"] = "wait"


@dataclass(frozen=True)
class Answer:
    """What came back: an HTTP status (or CLOSED / NO_ANSWER), and when."""

    status: int
    seconds: float  # from the last byte sent to the end of the answer, the close, or giving up
    detail: str = ""  # the error's type, or the start of its message

    def describe(self) -> str:
        what = {CLOSED: "closed without an answer", NO_ANSWER: "no answer"}.get(self.status, str(self.status))
        detail = f" ({self.detail})" if self.detail else ""
        verb = "gave up after" if self.status == NO_ANSWER else "after"
        return f"{what}{detail} {verb} {self.seconds * 1000:.0f} ms"


def error_detail(body: bytes) -> str:
    """The error type of a bertserve error body, or the start of a v2 (or any other) error message."""
    try:
        document = json.loads(body)
    except ValueError:
        return body[:60].decode("latin-1").strip()
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        return str(error.get("type", ""))
    return str(error)[:60] if error is not None else ""


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, str]:
    """(status, error detail) of one HTTP/1.1 response; CLOSED when the connection ends first."""
    try:
        line = await reader.readline()
    except ConnectionError:
        return CLOSED, "reset"
    parts = line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return CLOSED, line[:40].decode("latin-1").strip()
    status, length = int(parts[1]), None
    try:
        while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = await (reader.readexactly(length) if length is not None else reader.read())
    except (ConnectionError, asyncio.IncompleteReadError):
        return status, "body cut short"
    return status, error_detail(body[:DETAIL_BYTES]) if status != 200 else ""


async def _send(writer: asyncio.StreamWriter, raw: Raw, sending: Sending) -> None:
    writer.write(raw.head())
    body = raw.wire_body()
    if sending.send_bytes is not None:
        body = body[: sending.send_bytes]
    if sending.dribble_s > 0 and body:
        step = max(1, -(-len(body) // sending.pieces))
        for start in range(0, len(body), step):
            writer.write(body[start : start + step])
            await writer.drain()
            await asyncio.sleep(sending.dribble_s / sending.pieces)
    else:
        writer.write(body)
    await writer.drain()
    if sending.then == "half_close":
        writer.write_eof()


async def _send_unless_answered(
    writer: asyncio.StreamWriter, raw: Raw, sending: Sending, answer: asyncio.Future[Any], limit_s: float
) -> float | None:
    """Send `raw` until it is all out or the answer has come (a write the server cut short by
    answering and closing ends the sending too); when that was, or None if not within `limit_s`."""
    sender = asyncio.ensure_future(_send(writer, raw, sending))
    try:
        done, _ = await asyncio.wait({sender, answer}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sender.cancel()
    if sender.done() and not sender.cancelled():
        sender.exception()  # an OSError here is the server's close: its answer is read next
    return time.perf_counter() if done else None


async def exchange(
    host: str, port: int, raw: Raw, *, wait_s: float, sending: Sending | None = None
) -> Answer:
    """Send `raw` on a connection of its own and wait up to `wait_s` after the last byte for the answer.

    The answer is read while the body goes out, as HTTP clients do: a server that answers early
    (a refusal before the body is read) and closes is heard before its close resets the
    connection. A server that stops taking the body (or connections) for `wait_s` is NO_ANSWER,
    with the reason."""
    sending = sending or Sending()
    began = time.perf_counter()
    try:
        async with asyncio.timeout(wait_s):
            reader, writer = await asyncio.open_connection(host, port)
    except (TimeoutError, OSError) as error:
        return Answer(NO_ANSWER, time.perf_counter() - began, f"connect: {type(error).__name__}")
    answer = asyncio.ensure_future(read_answer(reader))
    try:
        sent = await _send_unless_answered(writer, raw, sending, answer, wait_s + sending.dribble_s)
        if sent is None:
            return Answer(NO_ANSWER, time.perf_counter() - began, "the server stopped taking the body")
        try:
            async with asyncio.timeout(wait_s):
                status, detail = await answer
        except TimeoutError:
            return Answer(NO_ANSWER, time.perf_counter() - sent)
        return Answer(status, time.perf_counter() - sent, detail)
    finally:
        answer.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
