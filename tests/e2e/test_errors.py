"""Bad input gets a clear JSON error with the right status, never a 500."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest


def error_of(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["type"] == kind, body
    assert body["error"]["message"]
    return str(body["error"]["message"])


@pytest.mark.parametrize(
    ("path", "body", "status", "kind"),
    [
        ("/classify", {"inputs": ""}, 422, "validation_error"),
        ("/classify", {"inputs": "   "}, 422, "validation_error"),
        ("/classify", {"inputs": []}, 422, "validation_error"),
        ("/classify", {"inputs": 42}, 422, "validation_error"),
        ("/classify", {"inputs": ["ok", None]}, 422, "validation_error"),
        ("/classify", {"text": "misspelt field"}, 422, "validation_error"),
        ("/classify", {"inputs": "x", "top_k": 0}, 422, "validation_error"),
        ("/classify", {"inputs": "x", "model": "nope"}, 404, "model_not_found"),
        ("/classify", {"inputs": "x", "model": "tiny-ner"}, 422, "wrong_task"),
        ("/pair", {"inputs": {"text": "only one side"}}, 422, "validation_error"),
        ("/qa", {"inputs": {"question": "why?", "context": ""}}, 422, "validation_error"),
        (
            "/qa",
            {"inputs": {"question": "why?", "context": "because"}, "max_answer_len": 0},
            422,
            "validation_error",
        ),
        ("/ner", {"inputs": "x", "aggregation_strategy": "median"}, 422, "validation_error"),
        ("/ner", {"inputs": ["x"] * 300}, 413, "too_many_inputs"),
        ("/ner", {"inputs": "word " * 12_000}, 413, "text_too_long"),
    ],
)
def test_bad_requests(live_url: str, path: str, body: dict[str, Any], status: int, kind: str) -> None:
    error_of(httpx.post(f"{live_url}{path}", json=body), status, kind)


def test_invalid_json(live_url: str) -> None:
    response = httpx.post(
        f"{live_url}/classify",
        content=b'{"inputs": "unterminated',
        headers={"content-type": "application/json"},
    )
    error_of(response, 400, "invalid_json")


def test_a_body_over_the_limit(live_url: str) -> None:
    huge = b'{"inputs": "' + b"a" * 2_100_000 + b'"}'
    response = httpx.post(f"{live_url}/classify", content=huge, headers={"content-type": "application/json"})
    error_of(response, 413, "payload_too_large")


def test_a_chunked_body_over_the_limit(live_url: str) -> None:
    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"inputs": "'
        for _ in range(30):
            yield b"a" * 100_000
        yield b'"}'

    response = httpx.post(
        f"{live_url}/classify", content=chunks(), headers={"content-type": "application/json"}
    )
    error_of(response, 413, "payload_too_large")


def test_unknown_route_and_method(live_url: str) -> None:
    error_of(httpx.get(f"{live_url}/nope"), 404, "not_found")
    error_of(httpx.get(f"{live_url}/classify"), 405, "method_not_allowed")


def test_errors_are_counted_by_status(live_url: str) -> None:
    httpx.post(f"{live_url}/classify", json={"inputs": "x", "model": "nope"})
    metrics = httpx.get(f"{live_url}/metrics").text
    assert 'bertserve_requests_total{code="404",model="",task="classify"}' in metrics


def test_openapi_documents_every_endpoint(live_url: str) -> None:
    spec = httpx.get(f"{live_url}/openapi.json").json()
    for path in ("/classify", "/pair", "/qa", "/ner", "/v1/models", "/health/live", "/health/ready"):
        assert path in spec["paths"], path
    assert httpx.get(f"{live_url}/docs").status_code == 200


def test_the_middleware_and_the_routes_write_an_error_the_same_way(live_url: str) -> None:
    too_large = httpx.post(f"{live_url}/classify", content=b"x" * 2_100_000)  # refused by the middleware
    invalid = httpx.post(f"{live_url}/classify", json={"inputs": ""})  # refused by a route's handler
    for response in (too_large, invalid):
        compact = json.dumps(response.json(), separators=(",", ":"), ensure_ascii=False).encode()
        assert response.content == compact, response.content
        assert response.headers["content-type"] == "application/json"
