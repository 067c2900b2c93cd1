"""/classify and /pair: schemas, the default score function, label ranking, preprocessing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from app.contract.manifest import Manifest
from app.errors import InvalidInput
from app.tasks.classify import ClassifyRequest, ClassifyTask
from app.tasks.pair import PairRequest, PairTask
from app.tasks.sequence import default_function, label_scores
from tests.torch_runner import minilm_context

LABELS = {0: "NEGATIVE", 1: "POSITIVE", 2: "NEUTRAL"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"inputs": ""},
        {"inputs": "   "},
        {"inputs": []},
        {"inputs": ["ok", " "]},
        {"inputs": 3},
        {"inputs": [3]},
        {"inputs": {"text": "a"}},
        {"inputs": "a", "top_k": 0},
        {"inputs": "a", "top_k": -2},
        {"inputs": "a", "top_k": True},
        {"inputs": "a", "top_k": "2"},
        {"inputs": "a", "function_to_apply": "relu"},
        {"inputs": "a", "truncation": "yes"},
        {"inputs": "a", "topk": 2},
    ],
)
def test_classify_rejects(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ClassifyRequest.model_validate(body)


def test_classify_defaults() -> None:
    request = ClassifyRequest.model_validate({"inputs": "a"})
    assert (request.top_k, request.function_to_apply, request.truncation, request.model) == (
        1,
        None,
        True,
        None,
    )
    assert ClassifyRequest.model_validate({"inputs": ["a", "b"], "top_k": None}).top_k is None
    task = ClassifyTask()
    request = ClassifyRequest.model_validate({"inputs": ["a", "b c"]})
    assert (task.input_count(request), task.texts(request)) == (2, ["a", "b c"])


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": "a"},
        {"inputs": {"text": "a"}},
        {"inputs": {"text": "a", "text_pair": ""}},
        {"inputs": {"text": "a", "text_pair": "b", "extra": "c"}},
        {"inputs": []},
        {"inputs": [{"text": "a", "text_pair": "b"}, "c"]},
    ],
)
def test_pair_rejects(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PairRequest.model_validate(body)


def test_pair_counts_pairs_and_texts() -> None:
    request = PairRequest.model_validate(
        {"inputs": [{"text": "a", "text_pair": "b"}, {"text": "c", "text_pair": "d"}]}
    )
    task = PairTask()
    assert task.input_count(request) == 2
    assert task.texts(request) == ["a", "b", "c", "d"]
    assert task.encoder_inputs(request) == [("a", "b"), ("c", "d")]


def _manifest(problem_type: str | None, labels: int) -> Manifest:
    id2label = {i: f"L{i}" for i in range(labels)}
    return minilm_context("classify", id2label=id2label, problem_type=problem_type).manifest


@pytest.mark.parametrize(
    ("problem_type", "labels", "expected"),
    [
        (None, 2, "softmax"),
        (None, 1, "sigmoid"),
        ("single_label_classification", 3, "softmax"),
        ("multi_label_classification", 3, "sigmoid"),
        ("regression", 1, "none"),
    ],
)
def test_default_function_like_the_pipeline(problem_type: str | None, labels: int, expected: str) -> None:
    assert default_function(_manifest(problem_type, labels)) == expected


def test_label_scores_rank_and_cut() -> None:
    logits = np.array([0.5, 2.0, -1.0], dtype=np.float32)
    ranked = label_scores(logits, "none", LABELS, top_k=None)
    assert [(s.label, s.score) for s in ranked] == [("POSITIVE", 2.0), ("NEGATIVE", 0.5), ("NEUTRAL", -1.0)]
    assert [s.label for s in label_scores(logits, "softmax", LABELS, top_k=2)] == ["POSITIVE", "NEGATIVE"]
    probabilities = [s.score for s in label_scores(logits, "softmax", LABELS, top_k=None)]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
    sigmoid = label_scores(logits, "sigmoid", LABELS, top_k=1)[0]
    assert sigmoid.score == pytest.approx(1 / (1 + np.exp(-2.0)), abs=1e-7)
    assert len(label_scores(logits, "none", LABELS, top_k=10)) == 3


def test_label_scores_ties_keep_label_order() -> None:
    logits = np.zeros(3, dtype=np.float32)
    assert [s.label for s in label_scores(logits, "softmax", LABELS, top_k=None)] == [
        "NEGATIVE",
        "POSITIVE",
        "NEUTRAL",
    ]


def test_preprocess_truncates_and_counts() -> None:
    context = minilm_context("classify", id2label=LABELS, max_length=8)
    task = ClassifyTask()
    prepared = task.preprocess(
        ClassifyRequest(inputs=["one two", "one two three four five six seven"]), context
    )
    assert [item.length for item in prepared.items] == [4, 8]
    assert prepared.truncated == 1
    assert prepared.items[0].input_ids.dtype == np.int64
    with pytest.raises(InvalidInput, match="at most 8"):
        task.preprocess(
            ClassifyRequest(inputs="one two three four five six seven", truncation=False), context
        )


def test_pair_preprocess_uses_segments() -> None:
    context = minilm_context("pair", id2label=LABELS)
    prepared = PairTask().preprocess(
        PairRequest.model_validate({"inputs": {"text": "a b", "text_pair": "c"}}), context
    )
    assert prepared.items[0].token_type_ids.tolist() == [0, 0, 0, 0, 1, 1]
