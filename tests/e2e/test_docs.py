"""/docs and /redoc work without internet: every asset they load is served by the server itself,
and the OpenAPI document describes both body formats and the Open Inference Protocol routes."""

from __future__ import annotations

import re

import httpx
import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_load_only_local_assets(live_url: str, page: str) -> None:
    html = httpx.get(f"{live_url}{page}").text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assets += re.findall(r"""url:\s*["']([^"']+)["']""", html)  # Swagger UI's openapi.json
    assert assets, html
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), f"{page} loads {asset} from elsewhere"
        response = httpx.get(f"{live_url}{asset}")
        assert response.status_code == 200, asset
        assert len(response.content) > 1000, asset
    assert any(asset.endswith(".js") for asset in assets)


def test_openapi_describes_both_formats_and_v2(live_url: str) -> None:
    spec = httpx.get(f"{live_url}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for route, name in [("/classify", "Classify"), ("/pair", "Pair"), ("/qa", "QA"), ("/ner", "NER")]:
        body = spec["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"]
        refs = {option["$ref"].rsplit("/", 1)[-1] for option in body["oneOf"]}
        assert refs == {f"{name}Request", f"HF{name}Request"}, refs
        assert "parameters" in schemas[f"HF{name}Request"]["properties"]
        answer = spec["paths"][route]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer["$ref"].endswith(f"{name}Output")
    assert "top_k" in schemas["QAParameters"]["properties"]
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ):
        assert path in spec["paths"], path
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]
    body = infer["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["inputs"]["items"]["required"] == ["name", "shape", "datatype"]
    assert infer["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "InferResponse"
    )
