"""Methods as HTTP says (RFC 9110): a 405 names the allowed methods in `Allow`, OPTIONS answers 204
with them, and every GET route answers HEAD, on every route of the OpenAPI document, v2 included."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

DECLARED = ("get", "post")


@pytest.fixture(scope="module")
def routes(live_url: str) -> dict[str, set[str]]:
    """Each documented path, with a served model in it, and its documented methods."""
    spec: dict[str, Any] = httpx.get(f"{live_url}/openapi.json").json()
    models = httpx.get(f"{live_url}/v1/models").json()["models"]
    name = models[0]["name"]
    return {
        path.replace("{name}", name).replace("{version}", "1"): {m.upper() for m in item if m in DECLARED}
        for path, item in spec["paths"].items()
    }


def allow_for(methods: set[str]) -> str:
    order = ["GET", "HEAD", "POST", "OPTIONS"]
    allowed = methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
    return ", ".join(method for method in order if method in allowed)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE"])
def test_an_undeclared_method_gets_405_with_allow(
    live_url: str, routes: dict[str, set[str]], method: str
) -> None:
    for path, methods in routes.items():
        response = httpx.request(method, f"{live_url}{path}", content=b"{}")
        assert response.status_code == 405, (method, path, response.text)
        assert response.headers["allow"] == allow_for(methods), (method, path)
        assert "x-request-id" in response.headers
    v2 = httpx.request(method, f"{live_url}/v2/health/live")
    assert v2.json() == {"error": "Method Not Allowed"}  # the protocol's error shape under /v2


def test_get_on_a_post_route_gets_405_with_allow(live_url: str) -> None:
    for path in ("/classify", "/qa", "/v2/models/tiny-classify/infer"):
        response = httpx.get(f"{live_url}{path}")
        assert (response.status_code, response.headers["allow"]) == (405, "POST, OPTIONS"), path


def test_options_answers_204_with_allow(live_url: str, routes: dict[str, set[str]]) -> None:
    for path, methods in routes.items():
        response = httpx.options(f"{live_url}{path}")
        assert response.status_code == 204, (path, response.text)
        assert response.headers["allow"] == allow_for(methods), path
        assert response.content == b""


def test_head_is_get_without_content(live_url: str, routes: dict[str, set[str]]) -> None:
    for path, methods in routes.items():
        if "GET" not in methods:
            continue
        get, head = httpx.get(f"{live_url}{path}"), httpx.head(f"{live_url}{path}")
        assert head.status_code == get.status_code, path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert head.headers["content-length"] == str(len(get.content)), path
        assert head.content == b"", path


def test_a_get_on_an_inference_path_is_no_inference_request(live_url: str) -> None:
    """Only POST reads a body and counts as an inference request (in flight, in the metrics)."""
    before = inference_requests_answered_405(live_url)
    assert httpx.get(f"{live_url}/classify").status_code == 405
    assert inference_requests_answered_405(live_url) == before


def inference_requests_answered_405(live_url: str) -> float:
    lines = httpx.get(f"{live_url}/metrics").text.splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("bertserve_requests_total{") and 'code="405"' in line
    )
