"""Open Inference Protocol tensors on hand-made requests and answers; the v2 error shape in process."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.v2 import is_infer_path
from app.api.v2_tensors import (
    BadTensorRequest,
    RequestedOutput,
    flatten,
    input_texts,
    parse_body,
    select_outputs,
)
from app.errors import TooManyInputs
from app.main import create_app
from app.settings import Settings
from app.tasks import TASKS
from app.tasks.classify import ClassifyRequest
from app.tasks.ner import NERRequest
from app.tasks.qa import QARequest


def binary_bytes(*texts: str) -> bytes:
    """BYTES in the binary extension, as Triton's client writes them."""
    return b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)


def request_with_binary(tensors: dict[str, list[str]]) -> tuple[bytes, str]:
    raw = {name: binary_bytes(*texts) for name, texts in tensors.items()}
    header = {
        "inputs": [
            {
                "name": n,
                "shape": [len(t)],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(raw[n])},
            }
            for n, t in tensors.items()
        ]
    }
    document = json.dumps(header).encode()
    return document + b"".join(raw.values()), str(len(document))


def test_binary_and_json_inputs_give_the_same_texts() -> None:
    body, length = request_with_binary({"question": ["Who?", "Où est-il ?"], "context": ["Ada.", "À Paris."]})
    request, binary = parse_body(body, length)
    texts = input_texts(request, binary, ("question", "context"))
    assert texts == {"question": ["Who?", "Où est-il ?"], "context": ["Ada.", "À Paris."]}
    assert TASKS["qa"].tensors.request_inputs(texts)[1] == {"question": "Où est-il ?", "context": "À Paris."}

    nested = json.dumps(
        {"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["b"]]}]}
    )
    request, binary = parse_body(nested.encode(), None)
    assert input_texts(request, binary, ("text",)) == {"text": ["a", "b"]}


def test_broken_binary_data() -> None:
    body, length = request_with_binary({"text": ["hello", "world"]})
    request, binary = parse_body(body[:-2], length)  # the body ends before the declared size
    with pytest.raises(BadTensorRequest, match="past the body's end"):
        input_texts(request, binary, ("text",))
    lying = (
        body[: int(length)] + struct.pack("<I", 99) + body[int(length) + 4 :]
    )  # an element "99 bytes long"
    request, binary = parse_body(lying, length)
    with pytest.raises(BadTensorRequest, match="truncated binary BYTES element"):
        input_texts(request, binary, ("text",))
    with pytest.raises(BadTensorRequest, match="does not fit"):
        parse_body(body, str(len(body) + 1))


def test_answers_become_typed_tensors_with_counts() -> None:
    labels = [
        [{"label": "POS", "score": 0.9}, {"label": "NEG", "score": 0.1}],
        [{"label": "NEG", "score": 0.7}, {"label": "POS", "score": 0.3}],
    ]
    label, score = TASKS["classify"].tensors.output_tensors(labels, ClassifyRequest(inputs="x"))
    assert label == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [2, 2],
        "data": ["POS", "NEG", "NEG", "POS"],
    }
    assert score["datatype"] == "FP32" and score["data"] == [0.9, 0.1, 0.7, 0.3]

    answers = [
        {"answer": "Ada", "score": 0.5, "start": 0, "end": 3},
        [{"answer": "x", "score": 0.2, "start": 1, "end": 2}] * 2,
    ]
    qa_request = QARequest(inputs={"question": "who?", "context": "Ada."})
    qa = {t["name"]: t for t in TASKS["qa"].tensors.output_tensors(answers, qa_request)}
    assert qa["answer"]["data"] == ["Ada", "x", "x"] and qa["start"]["datatype"] == "INT64"
    assert qa["answer_count"]["data"] == [1, 2]

    tokens = [[], [{"entity": "B-PER", "score": 0.9, "index": 1, "word": "ada", "start": 0, "end": 3}]]
    token_level = NERRequest(inputs="ada", aggregation_strategy="none")
    ner = {t["name"]: t for t in TASKS["ner"].tensors.output_tensors(tokens, token_level)}
    assert set(ner) == {"entity", "word", "score", "start", "end", "index", "entity_count"}
    assert ner["entity_count"]["data"] == [0, 1] and ner["entity"]["shape"] == [1]
    assert select_outputs(list(ner.values()), [RequestedOutput(name="word")]) == [ner["word"]]


def test_only_infer_paths_count_as_inference() -> None:
    assert is_infer_path("/v2/models/a/infer") and is_infer_path("/v2/models/a/versions/1/infer")
    assert not is_infer_path("/v2/models/a/ready") and not is_infer_path("/v2/models/infer")


def test_errors_and_the_api_key_on_v2_routes(tmp_path: Path) -> None:
    app = create_app(Settings(model_dir=tmp_path, api_key="s3cret"))
    with TestClient(app) as client:
        refused = client.post("/v2/models/any/infer", json={"inputs": []})
        assert refused.status_code == 401 and refused.json() == {"error": refused.json()["error"]}
        assert refused.headers["www-authenticate"] == "Bearer"
        unknown = client.get("/v2/models/any")
        assert unknown.status_code == 404 and "unknown model 'any'" in unknown.json()["error"]
        assert client.get("/v2/health/ready").status_code == 503  # no models: never ready
        classic = client.post("/classify", json={"inputs": "x"})
        assert classic.status_code == 401 and classic.json()["error"]["type"] == "unauthorized"


def text_request(data: object, shape: list[int]) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "text", "shape": shape, "datatype": "BYTES", "data": data}]}
    ).encode()


def test_data_nested_deeper_than_its_shape_is_refused_without_recursion() -> None:
    data: object = "a"
    for _ in range(100_000):  # deeper than the stack: flattening must not recurse
        data = [data]
    with pytest.raises(BadTensorRequest, match="nested deeper than its shape"):
        flatten(data, "text", [1, 1], 1)
    assert flatten([["a", "b"], ["c", "d"]], "text", [2, 2], 4) == ["a", "b", "c", "d"]


def test_data_past_its_shape_stops_at_the_first_extra_element() -> None:
    with pytest.raises(BadTensorRequest, match="more data than its shape"):
        flatten(["x"] * 1_000_000, "text", [2], 2)
    with pytest.raises(BadTensorRequest, match="more data than its shape"):
        flatten([[]] * 1_000_000, "text", [1, 1], 1)  # lists without elements count too


@pytest.mark.parametrize(
    ("shape", "error", "fragment"),
    [
        ([10**30, 10**30, 0], BadTensorRequest, "less than or equal to 4096"),
        ([10**4000] * 50, BadTensorRequest, "at most 8 items"),
        ([-1], BadTensorRequest, "greater than or equal to 0"),
        ([4096, 4096, 4096], TooManyInputs, "68719476736 elements"),
    ],
)
def test_shapes_are_bounded_before_any_arithmetic(
    shape: list[int], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        request, binary = parse_body(text_request(["a"], shape), None)
        input_texts(request, binary, ("text",))


def test_binary_elements_past_the_shape_are_not_decoded() -> None:
    body, length = request_with_binary({"text": [""] * 100_000})
    document = json.loads(body[: int(length)])
    document["inputs"][0]["shape"] = [3]
    header = json.dumps(document).encode()
    request, binary = parse_body(header + body[int(length) :], str(len(header)))
    with pytest.raises(BadTensorRequest, match="more than the 3 elements"):
        input_texts(request, binary, ("text",))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"id": "\\ud800", "inputs": []}', "surrogate"),
        (b'{"inputs": [{"name": "\\udc00\\ud800"}]}', "surrogate"),
        (b'{"inputs": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nest at most"),
        (b'{"inputs": [], "id": ' + b"9" * 5000 + b"}", "number out of range"),
    ],
)
def test_bodies_python_would_parse_but_no_handler_can_use(body: bytes, fragment: str) -> None:
    with pytest.raises(BadTensorRequest, match=fragment):
        parse_body(body, None)


def test_grouped_entities_have_their_own_columns_and_every_column_is_in_the_metadata() -> None:
    groups = [[{"entity_group": "PER", "score": 0.9, "word": "ada", "start": 0, "end": 3}]]
    grouped = TASKS["ner"].tensors.output_tensors(groups, NERRequest(inputs="ada"))
    assert [t["name"] for t in grouped] == ["entity_group", "word", "score", "start", "end", "entity_count"]
    for task in TASKS.values():
        assert len({spec.name for spec in task.tensors.outputs}) == len(task.tensors.outputs)
        assert task.tensors.inputs  # every task takes at least one input tensor
