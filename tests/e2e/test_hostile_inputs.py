"""Inputs that passed validation and failed later with a 500, and bodies whose validation cost grew
with their size: each gets its 4xx, on every route and format."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.tasks.common import MAX_INPUTS_CEILING

LONE = "\ud800"


def post(url: str, body: Any) -> httpx.Response:
    content = json.dumps(body, ensure_ascii=True).encode()  # a lone surrogate goes as its \u escape
    return httpx.post(url, content=content, headers={"content-type": "application/json"}, timeout=60)


def task_error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind, error
    return str(error["message"])


def v2_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert isinstance(message, str) and message
    return message


def tensor(name: str, data: Any, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": "BYTES", "shape": shape, "data": data}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/classify", {"inputs": f"a{LONE}b"}),
        ("/classify", {"inputs": ["fine", LONE]}),
        ("/classify", {"inputs": "x", "parameters": {}, "model": LONE}),
        ("/pair", {"inputs": {"text": "a", "text_pair": LONE}}),
        ("/qa", {"inputs": {"question": LONE, "context": "b"}}),
        ("/qa", {"inputs": {"question": "a", "context": "b"}, "parameters": {"top_k": 1}, LONE: 1}),
        ("/ner", {"inputs": "x", "ignore_labels": [LONE]}),
        ("/ner", {"inputs": [LONE], "parameters": {"ignore_labels": ["O"]}}),
    ],
)
def test_a_lone_surrogate_is_invalid_json(live_url: str, path: str, body: dict[str, Any]) -> None:
    message = task_error(post(f"{live_url}{path}", body), 400, "invalid_json")
    assert "surrogate" in message


@pytest.mark.parametrize(
    "body",
    [
        {"id": LONE, "inputs": [tensor("text", ["a"], [1])]},
        {"inputs": [tensor("text", [f"a{LONE}"], [1])]},
        {"inputs": [tensor(LONE, ["a"], [1])]},
        {"inputs": [{**tensor("text", ["a"], [1]), "datatype": LONE}]},
        {"inputs": [tensor("text", ["a"], [1])], "parameters": {"top_k": LONE}},
        {"inputs": [tensor("text", ["a"], [1])], "outputs": [{"name": LONE}]},
    ],
)
def test_a_lone_surrogate_in_a_v2_request(live_url: str, body: dict[str, Any]) -> None:
    message = v2_error(post(f"{live_url}/v2/models/tiny-classify/infer", body), 400)
    assert "surrogate" in message


def nested(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


def test_deep_nesting(live_url: str) -> None:
    deep_body = f'{{"inputs": {"[" * 100_000}"x"{"]" * 100_000}}}'.encode()
    for path in ("/classify", "/ner"):
        response = httpx.post(
            f"{live_url}{path}", content=deep_body, headers={"content-type": "application/json"}
        )
        assert "nest at most" in task_error(response, 400, "invalid_json")
    infer = f"{live_url}/v2/models/tiny-classify/infer"
    assert "nest at most" in v2_error(post(infer, {"inputs": [tensor("text", nested("a", 900), [1])]}), 400)
    message = v2_error(post(infer, {"inputs": [tensor("text", nested("a", 3), [1, 1])]}), 400)
    assert "nested deeper than its shape" in message


def test_huge_integers(live_url: str) -> None:
    infer = f"{live_url}/v2/models/tiny-classify/infer"
    message = v2_error(post(infer, {"inputs": [tensor("text", ["a"], [10**30, 10**30, 0])]}), 400)
    assert "shape.0" in message
    v2_error(post(infer, {"inputs": [tensor("text", ["a"], [10**4000] * 50)]}), 400)
    v2_error(post(infer, {"inputs": [tensor("text", ["a"], [1])], "parameters": {"top_k": 10**30}}), 400)
    many = v2_error(post(infer, {"inputs": [tensor("text", ["a"], [4096, 4096])]}), 413)
    assert f"at most {MAX_INPUTS_CEILING}" in many
    for body in ({"inputs": "x", "top_k": 10**30}, {"inputs": "x", "parameters": {"top_k": 10**30}}):
        task_error(post(f"{live_url}/classify", body), 422, "validation_error")
    qa = {"inputs": {"question": "q", "context": "c"}, "max_answer_len": 10**30}
    task_error(post(f"{live_url}/qa", qa), 422, "validation_error")
    longer_than_python_reads = b'{"inputs": "x", "top_k": ' + b"9" * 5000 + b"}"
    response = httpx.post(
        f"{live_url}/classify", content=longer_than_python_reads, headers={"content-type": "application/json"}
    )
    task_error(response, 400, "invalid_json")


def test_an_oversized_list_is_one_error(live_url: str) -> None:
    message = task_error(post(f"{live_url}/classify", {"inputs": [""] * 400_000}), 422, "validation_error")
    assert "(and" not in message  # one problem described, not one per element
    message = task_error(post(f"{live_url}/classify", {"inputs": ["x"] * 5000}), 422, "validation_error")
    assert f"at most {MAX_INPUTS_CEILING} items" in message
    pairs = task_error(post(f"{live_url}/pair", {"inputs": [{}] * 200_000}), 422, "validation_error")
    assert "(and" not in pairs
    infer = f"{live_url}/v2/models/tiny-classify/infer"
    assert "at most 16 items" in v2_error(post(infer, {"inputs": [{}] * 200_000}), 400)
    assert "more data than its shape" in v2_error(
        post(infer, {"inputs": [tensor("text", [[]] * 200_000, [1, 1])]}), 400
    )


def test_many_unknown_fields_are_one_error(live_url: str) -> None:
    unknown = {f"field{i}": 0 for i in range(100_000)}
    for path, body in [
        ("/classify", {"inputs": "x", **unknown}),
        ("/classify", {"inputs": "x", "parameters": unknown}),
        ("/pair", {"inputs": {"text": "a", "text_pair": "b", **unknown}}),
    ]:
        message = task_error(post(f"{live_url}{path}", body), 422, "validation_error")
        assert "unknown fields 'field0'" in message and "(and 99995 more)" in message
    infer = f"{live_url}/v2/models/tiny-classify/infer"
    assert "at most 64 items" in v2_error(post(infer, {"inputs": [], "parameters": unknown}), 400)
    answer = post(infer, {"inputs": [tensor("text", ["a"], [1])], **unknown})  # unknown top-level: ignored
    assert answer.status_code == 200, answer.text
