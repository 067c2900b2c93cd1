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


def test_openapi_states_what_the_server_enforces(live_url: str) -> None:
    """Texts are non-blank and no longer than max_text_chars, lists of inputs no longer than
    max_items_per_request (the values /v1/models reports), options bounded, `model` a served one."""
    spec = httpx.get(f"{live_url}/openapi.json").json()
    limits = httpx.get(f"{live_url}/v1/models").json()["limits"]
    schemas = spec["components"]["schemas"]
    for component, field in [("QAInput", "question"), ("QAInput", "context"), ("TextPair", "text_pair")]:
        text = schemas[component]["properties"][field]
        assert text["minLength"] == 1 and text["pattern"].startswith("[^\\t\\n")
        assert text["maxLength"] == limits["max_text_chars"]
    for component in ("ClassifyRequest", "HFClassifyRequest", "NERRequest"):
        single, many = schemas[component]["properties"]["inputs"]["anyOf"]
        assert single["maxLength"] == limits["max_text_chars"]
        assert (many["minItems"], many["maxItems"]) == (1, limits["max_items_per_request"])
    qa = schemas["QAParameters"]["properties"]
    assert qa["max_seq_len"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 512}
    assert "the model's maximum length" in qa["max_seq_len"]["description"]
    assert schemas["NERParameters"]["not"]["properties"]["aggregation_strategy"] == {"const": "none"}
    assert schemas["ClassifyRequest"]["properties"]["model"]["anyOf"] == [
        {"type": "string", "enum": ["tiny-classify"]},
        {"type": "null"},
    ]
    assert limits == {
        "max_items_per_request": 256,
        "max_text_chars": 50_000,
        "max_windows_per_request": 512,
        "max_body_bytes": 2_000_000,
    }


def test_model_routes_have_an_example_and_a_link_from_v1_models(live_url: str) -> None:
    spec = httpx.get(f"{live_url}/openapi.json").json()
    links = spec["paths"]["/v1/models"]["get"]["responses"]["200"]["links"]
    operations = {
        operation["operationId"]: (path, operation)
        for path, item in spec["paths"].items()
        for operation in item.values()
        if "{name}" in path
    }
    assert {link["operationId"] for link in links.values()} == set(operations)
    for link in links.values():
        path, operation = operations[link["operationId"]]
        assert link["parameters"]["name"] == "$response.body#/models/0/name"
        names = {p["name"]: p for p in operation["parameters"] if p["in"] == "path"}
        assert names["name"]["examples"]["sst2-minilm"]["value"] == "sst2-minilm", path
        assert set(link["parameters"]) == set(names), path
        if "version" in names:
            assert names["version"]["schema"]["enum"] == ["1"] and link["parameters"]["version"] == "1"
    models = httpx.get(f"{live_url}/v1/models").json()["models"]
    assert models[0]["name"]  # what the links read
