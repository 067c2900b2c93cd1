"""The request models refuse an oversized body with one error, whatever its size, and the strict
JSON parser refuses what no handler can use."""

from __future__ import annotations

import gc
import re
import sys

import pytest
from pydantic import TypeAdapter, ValidationError

from app.api.huggingface import hf_request_model, parameters_model
from app.api.json_body import InvalidJSON, parse_json
from app.tasks import TASKS
from app.tasks.classify import ClassifyRequest
from app.tasks.common import MAX_INPUTS_CEILING, Text
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


# -- the schema states what the models enforce ------------------------------------------------------


def test_the_non_blank_pattern_is_the_validators_rule_for_every_character() -> None:
    """The schema's pattern and the validator agree on every code point (Python's isspace)."""
    validate = TypeAdapter(Text).validate_python
    pattern = re.compile(TypeAdapter(Text).json_schema()["pattern"])
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue  # no JSON string holds a lone surrogate (the parser refuses it)
        char = chr(code)
        assert (pattern.search(char) is None) == char.isspace(), hex(code)
    for blank in ("", " ", "\t\n", "\u3000\x1c"):
        with pytest.raises(ValidationError, match="empty or only whitespace"):
            validate(blank)
    assert validate(" a ") == " a "


@pytest.mark.parametrize(
    ("task_name", "options"),
    [
        ("classify", {"top_k": 2.0}),
        ("qa", {"top_k": 3.0, "max_seq_len": 211.0, "doc_stride": 64.0}),
        ("ner", {"stride": 227.0}),
    ],
)
def test_a_whole_number_written_with_a_fraction_is_the_integer_json_schema_says(
    task_name: str, options: dict[str, object]
) -> None:
    task = TASKS[task_name]
    inputs = {"question": "q", "context": "c"} if task_name == "qa" else "x"
    request = task.request_model.model_validate({"inputs": inputs, **options})
    for name, value in options.items():
        assert getattr(request, name) == value
        assert type(getattr(request, name)) is int
    parameters_model(task).model_validate(options)


@pytest.mark.parametrize("value", [2.5, "2", True, float("inf")])
def test_an_integer_option_is_a_json_integer(value: object) -> None:
    for model, body in [
        (TASKS["qa"].request_model, {"inputs": {"question": "q", "context": "c"}, "top_k": value}),
        (parameters_model(TASKS["ner"]), {"stride": value}),
    ]:
        with pytest.raises(ValidationError):
            model.model_validate(body)


def test_stride_with_aggregation_none_is_refused_by_the_schema_as_by_the_task() -> None:
    for model in (TASKS["ner"].request_model, parameters_model(TASKS["ner"])):
        rule = model.model_json_schema()["not"]
        assert rule["required"] == ["aggregation_strategy", "stride"]
        assert rule["properties"]["aggregation_strategy"] == {"const": "none"}
