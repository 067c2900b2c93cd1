"""The task registry, the shared schema pieces and score functions."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from app.tasks import TASKS
from app.tasks.base import Task
from app.tasks.common import Text, as_list, mirror, regroup, sigmoid, softmax


def test_registry_holds_the_four_tasks_by_name() -> None:
    assert list(TASKS) == ["classify", "pair", "qa", "ner"]
    for name, task in TASKS.items():
        assert isinstance(task, Task)
        assert task.name == name
        assert task.summary
        assert task.output_names


@pytest.mark.parametrize("name", ["classify", "pair", "qa", "ner"])
def test_schema_examples_are_valid_requests(name: str) -> None:
    task = TASKS[name]
    examples = task.request_model.model_json_schema()["examples"]
    assert examples
    for example in examples:
        request = task.request_model.model_validate(example)
        assert task.input_count(request) >= 1
        assert all(isinstance(text, str) and text for text in task.texts(request))


def test_softmax_and_sigmoid_by_hand() -> None:
    logits = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(softmax(logits), expected, rtol=1e-6)
    assert softmax(logits).dtype == np.float32
    np.testing.assert_allclose(
        softmax(np.array([1000.0, 1000.0], dtype=np.float32)), [0.5, 0.5]
    )  # no overflow
    rows = softmax(np.array([[0.0, 0.0], [0.0, np.log(3.0)]], dtype=np.float32))
    np.testing.assert_allclose(rows, [[0.5, 0.5], [0.25, 0.75]], rtol=1e-6)
    np.testing.assert_allclose(sigmoid(np.array([0.0, np.log(3.0)])), [0.5, 0.75])


def test_as_list_regroup_mirror() -> None:
    one: str | list[str] = "a"
    many: str | list[str] = ["a", "b"]
    assert as_list(one) == ["a"]
    assert as_list(many) == ["a", "b"]
    assert regroup([1, 2, 3, 4, 5], [2, 1, 2]) == [[1, 2], [3], [4, 5]]
    with pytest.raises(ValueError, match="outputs"):
        regroup([1, 2], [3])
    assert mirror([7], single=True) == 7
    assert mirror([7], single=False) == [7]


class _Doc(BaseModel):
    text: Text


@pytest.mark.parametrize("text", ["", " ", "\n\t "])
def test_blank_text_is_rejected(text: str) -> None:
    with pytest.raises(ValidationError, match="empty or only whitespace"):
        _Doc(text=text)


def test_text_is_kept_as_sent() -> None:
    assert _Doc(text="  padded ").text == "  padded "


def test_a_model_without_the_outputs_its_task_reads_fails_to_load() -> None:
    from app.errors import ModelLoadError
    from app.lifecycle.loading import check_outputs

    check_outputs("m", TASKS["qa"], ["end_logits", "start_logits", "extra"])
    with pytest.raises(ModelLoadError, match=r"m: the qa task reads outputs \['end_logits'\]"):
        check_outputs("m", TASKS["qa"], ["start_logits"])
