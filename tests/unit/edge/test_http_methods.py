"""The pieces behind RFC 9110 methods: the `Allow` of a 405, and HEAD answered as GET without content."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.api.handlers import allowed_methods
from app.edge.http_methods import HeadAsGet


@pytest.mark.parametrize(
    ("route", "allow"),
    [
        ("POST", "POST, OPTIONS"),
        ("GET", "GET, HEAD, OPTIONS"),
        ("HEAD, GET", "GET, HEAD, OPTIONS"),
        (None, "GET, HEAD, OPTIONS"),  # the static-file mount names none: it serves GET and HEAD
    ],
)
def test_allow_names_the_routes_methods_head_with_get_and_options(route: str | None, allow: str) -> None:
    assert allowed_methods(route) == allow


def test_head_runs_get_and_sends_its_headers_without_content() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["method"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "HEAD", "path": "/"}
    asyncio.run(HeadAsGet(app)(scope, receive, send))
    assert seen == ["GET"] and scope["method"] == "HEAD"  # the server still sees HEAD
    assert sent[0]["headers"] == [(b"content-length", b"5")]
    assert sent[1]["body"] == b""
