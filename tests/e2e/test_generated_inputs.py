"""Generated requests on every inference route and format: whatever the body, the answer is never a
500, and an error has the route's error shape.

The bodies come from the request models' JSON schemas: each option over its range and past both
ends (huge integers included), texts from every code point (lone surrogates and control
characters included), and now and then a value of any JSON type where the schema wants another.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api.huggingface import hf_request_model, parameters_model
from app.tasks import TASKS

EXAMPLES = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # the same bodies on every run: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LONE_SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
VALID_TEXTS = st.text(st.characters(codec="utf-8"), max_size=40)  # control characters included
BROKEN_TEXTS = st.text(st.characters(codec=None) | LONE_SURROGATES, min_size=1, max_size=40)
# one text in four has lone surrogates: most bodies get past the parser to the rest of the server
TEXTS = st.integers(0, 3).flatmap(lambda draw: BROKEN_TEXTS if draw == 0 else VALID_TEXTS)
HUGE_INTS = st.sampled_from([10**30, -(10**30), 2**63, 2**64 + 1, 10**300, -1])
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | HUGE_INTS | st.floats() | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=8,
)


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of a JSON schema (as pydantic writes them), past its bounds too, sometimes of another type."""
    return st.one_of(*[typed(schema, defs)] * 6, ANY_JSON)  # about one value in seven of any type


def typed(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the schema's own type: integers from two below its minimum to two above its maximum."""
    if "$ref" in schema:
        return typed(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return st.one_of([typed(option, defs) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | TEXTS
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum", -10), schema.get("maximum", 10_000)
        return st.integers(low - 2, high + 2) | HUGE_INTS
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return TEXTS
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), defs), max_size=4)
    if kind == "object" and "properties" in schema:
        properties = {name: from_schema(sub, defs) for name, sub in schema["properties"].items()}
        required = set(schema.get("required", ()))
        known = st.fixed_dictionaries(
            {name: value for name, value in properties.items() if name in required},
            optional={name: value for name, value in properties.items() if name not in required},
        )
        unknown = st.dictionaries(TEXTS, ANY_JSON, min_size=1)
        return known | st.builds(lambda body, extra: {**extra, **body}, known, unknown)
    return ANY_JSON


def body_strategy(model: type[Any], task: str) -> st.SearchStrategy[dict[str, Any]]:
    """Request bodies for one model: its schema's, with `model` mostly absent or the task's tiny model."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    properties = dict(schema["properties"])
    properties.pop("model", None)
    bodies = typed({**schema, "properties": properties}, defs)
    names = st.none() | st.just(f"tiny-{task}") | TEXTS
    return st.builds(
        lambda body, name, named: {**body, "model": name} if named and isinstance(body, dict) else body,
        bodies,
        names,
        st.booleans(),
    )


def post(url: str, body: Any) -> httpx.Response:
    # ensure_ascii writes a lone surrogate as its \\u escape: the bytes sent are valid UTF-8
    content = json.dumps(body, ensure_ascii=True).encode()
    return httpx.post(url, content=content, headers={"content-type": "application/json"}, timeout=60)


def assert_task_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    answer = response.json()
    if response.status_code >= 400:
        assert set(answer) == {"error"}, answer
        assert isinstance(answer["error"]["type"], str) and isinstance(answer["error"]["message"], str)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_route_bertserve_format(live_url: str, task: str) -> None:
    @EXAMPLES
    @given(body_strategy(TASKS[task].request_model, task))
    def check(body: dict[str, Any]) -> None:
        body.pop("parameters", None)  # that key makes it the Hugging Face format
        assert_task_answer(post(f"{live_url}/{task}", body))

    check()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_route_huggingface_format(live_url: str, task: str) -> None:
    @EXAMPLES
    @given(body_strategy(hf_request_model(TASKS[task]), task))
    def check(body: dict[str, Any]) -> None:
        assert_task_answer(post(f"{live_url}/{task}", body))

    check()


def valid_tensors(task: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    """The task's input tensors, each of n texts from the whole alphabet."""

    def of_length(n: int) -> st.SearchStrategy[list[dict[str, Any]]]:
        columns = st.tuples(*[st.lists(TEXTS, min_size=n, max_size=n) for _ in TASKS[task].tensors.inputs])
        return columns.map(
            lambda texts: [
                {"name": name, "datatype": "BYTES", "shape": [n], "data": data}
                for name, data in zip(TASKS[task].tensors.inputs, texts, strict=True)
            ]
        )

    return st.integers(1, 4).flatmap(of_length)


def v2_bodies(task: str) -> st.SearchStrategy[dict[str, Any]]:
    """v2 requests for a task: its tensors (names, shapes, datatypes and data now and then wrong),
    its options as parameters, any id, outputs by name."""
    parameters_schema = parameters_model(TASKS[task]).model_json_schema()
    defs = parameters_schema.pop("$defs", {})
    names = st.sampled_from(TASKS[task].tensors.inputs) | TEXTS
    shapes = st.lists(st.integers(-2, 6) | HUGE_INTS, max_size=3)
    data = st.lists(TEXTS | ANY_JSON, max_size=5).flatmap(
        lambda values: st.sampled_from([values, [values], {"values": values}])
    )
    tensor = st.fixed_dictionaries(
        {"name": names, "datatype": st.just("BYTES") | TEXTS, "data": data},
        optional={"shape": shapes},
    ).map(lambda t: {"shape": [len(t["data"])] if isinstance(t["data"], list) else [1], **t})
    inputs = valid_tensors(task) | valid_tensors(task) | st.lists(tensor, min_size=1, max_size=3)
    output_names = [spec.name for spec in TASKS[task].tensors.outputs]
    outputs = st.lists(st.fixed_dictionaries({"name": st.sampled_from(output_names)}))
    return st.fixed_dictionaries(
        {"inputs": inputs},
        optional={
            "id": TEXTS | ANY_JSON,
            "parameters": typed(parameters_schema, defs),
            "outputs": outputs | ANY_JSON,
        },
    )


@pytest.mark.parametrize("task", sorted(TASKS))
def test_v2_infer(live_url: str, task: str) -> None:
    @EXAMPLES
    @given(v2_bodies(task))
    def check(body: dict[str, Any]) -> None:
        response = post(f"{live_url}/v2/models/tiny-{task}/infer", body)
        assert response.status_code < 500, response.text
        answer = response.json()
        if response.status_code >= 400:
            assert set(answer) == {"error"} and isinstance(answer["error"], str), answer

    check()
