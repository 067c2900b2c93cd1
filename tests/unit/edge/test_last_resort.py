"""An unexpected exception past the route is a counted 500 with a request id, on the real app."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.api.auth import key_matches
from app.edge.middleware import accepted_request_id
from app.main import create_app
from app.settings import Settings


async def test_an_unexpected_error_is_answered_counted_and_carries_the_request_id(tmp_path: Path) -> None:
    app = create_app(Settings(model_dir=tmp_path, warmup=False))

    @app.get("/explode")
    async def explode() -> None:
        raise ZeroDivisionError("post-processing bug")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/explode", headers={"x-request-id": "abc-123"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {"type": "internal_error", "message": "internal error (ZeroDivisionError)"}
    }
    assert response.headers["x-request-id"] == "abc-123"
    assert app.state.service.metrics.internal_errors._value.get() == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer k3y", True),
        ("bearer k3y", True),
        ("Bearer k3y ", True),
        ("Bearer k3", False),
        ("Bearer ké y", False),
        ("Bearer \udcff", False),
        ("Basic k3y", False),
        (None, False),
        ("", False),
    ],
)
def test_key_matches_any_header_text(header: str | None, expected: bool) -> None:
    assert key_matches(header, "k3y") is expected


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("", False), ("a b", False), ("é", False)],
)
def test_request_ids_are_kept_only_when_short_and_safe(sent: str, kept: bool) -> None:
    assert (accepted_request_id(sent, 128) == sent) is kept
