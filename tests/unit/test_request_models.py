"""The request models refuse an oversized body with one error, whatever its size, and the strict
JSON parser refuses what no handler can use."""

from __future__ import annotations

import gc

import pytest
from pydantic import ValidationError

from app.api.huggingface import hf_request_model, parameters_model
from app.api.json_body import InvalidJSON, parse_json
from app.tasks import TASKS
from app.tasks.classify import ClassifyRequest
from app.tasks.common import MAX_INPUTS_CEILING
from app.tasks.pair import PairRequest


def problems(model: type, body: object) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(body)  # type: ignore[attr-defined]
    return raised.value


def test_a_list_of_inputs_is_checked_for_length_first_and_stops_at_the_first_bad_one() -> None:
    assert problems(ClassifyRequest, {"inputs": [""] * 400_000}).error_count() <= 2
    assert problems(PairRequest, {"inputs": [{}] * 400_000}).error_count() <= 3
    too_many = problems(ClassifyRequest, {"inputs": ["x"] * (MAX_INPUTS_CEILING + 1)})
    assert f"at most {MAX_INPUTS_CEILING} items" in str(too_many)


UNKNOWN = {f"field{i}": 0 for i in range(100_000)}


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (ClassifyRequest, {"inputs": "x", **UNKNOWN}),
        (PairRequest, {"inputs": {"text": "a", "text_pair": "b", **UNKNOWN}}),
        (hf_request_model(TASKS["classify"]), {"inputs": "x", "parameters": UNKNOWN}),
    ],
)
def test_any_number_of_unknown_fields_is_one_error(model: type, body: dict[str, object]) -> None:
    error = problems(model, body)
    assert error.error_count() <= 2  # the pair's input is a union: its list branch fails too
    assert "unknown fields 'field0', 'field1', 'field2', 'field3', 'field4' (and 99995 more)" in str(error)


def test_a_few_unknown_fields_are_each_named_where_they_are() -> None:
    error = problems(parameters_model(TASKS["classify"]), {"topk": 1, "top_j": 2})
    assert [(problem["loc"], problem["type"]) for problem in error.errors()] == [
        (("topk",), "extra_forbidden"),
        (("top_j",), "extra_forbidden"),
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'"\\ud800"', "surrogate pair"),
        (b'{"\\udfff": 1}', "surrogate pair"),
        (b'"\xed\xa0\x80"', "invalid unicode code point"),
        (b"[" * 300 + b"]" * 300, "nest at most about 200 deep"),
        (b"9" * 5000, "number out of range"),
    ],
)
def test_strict_json_refuses_what_python_would_parse(body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidJSON, match=fragment):
        parse_json(body)
    assert gc.isenabled()


def test_strict_json_reads_what_clients_send() -> None:
    assert parse_json(b'{"inputs": ["\\ud83d\\ude00", "\\u0000\\t"], "top_k": 3}') == {
        "inputs": ["\U0001f600", "\x00\t"],
        "top_k": 3,
    }
    assert gc.isenabled()
