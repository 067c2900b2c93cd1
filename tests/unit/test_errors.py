"""The error table's kinds and the one description of a value that does not fit its schema."""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError

from app.batching import Component, DropReason, Part
from app.errors import STATUS_TABLE, ErrorKind, describe_invalid
from app.lifecycle.registry import ModelState


class Point(BaseModel):
    x: int
    y: int


def problems_of(document: object) -> list[dict[str, object]]:
    try:
        Point.model_validate(document)
    except ValidationError as error:
        return [dict(problem) for problem in error.errors()]
    raise AssertionError("valid")


def test_each_problem_is_named_by_where_it_is_and_the_value_itself_by_its_name() -> None:
    assert describe_invalid(problems_of({"x": "a", "y": 1})) == (
        "x: Input should be a valid integer, unable to parse string as an integer"
    )
    assert describe_invalid(problems_of([]), whole="document").startswith("document: ")


def test_only_five_problems_are_described_and_the_rest_counted() -> None:
    problems = [{"loc": ("body", f"field{i}"), "msg": "bad"} for i in range(8)]
    assert describe_invalid(problems) == "; ".join(f"field{i}: bad" for i in range(5)) + " (and 3 more)"


def test_union_branches_and_hidden_tags_are_no_part_of_a_location() -> None:
    problem = {"loc": ("body", "bertserve", "inputs", "list[str]", 2), "msg": "bad"}
    assert describe_invalid([problem], hidden={"bertserve"}) == "inputs.2: bad"


def test_states_and_kinds_read_as_their_plain_strings_in_json_and_labels() -> None:
    assert json.dumps({"state": ModelState.READY, "type": ErrorKind.QUEUE_FULL}) == (
        '{"state": "ready", "type": "queue_full"}'
    )
    assert f"{DropReason.CLIENT_GONE}" == "client_gone"
    assert str(Part(Component.RUNNER, 2)) == "runner-2" and str(Part(Component.LOOP)) == "loop"
    assert set(STATUS_TABLE) <= set(ErrorKind) and ErrorKind.HTTP_ERROR not in STATUS_TABLE
