"""/qa: span decoding on hand-made arrays, window limits, p_mask, schemas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from app.errors import InvalidInput
from app.tasks.qa import QARequest, QATask, p_mask_of, window_limits
from app.tasks.qa_spans import decode_spans, get_indices, select_starts_ends
from tests.torch_runner import minilm_context

START = np.array([0.0, 0.1, 0.5, 0.2, 0.2], dtype=np.float32)
END = np.array([0.0, 0.1, 0.1, 0.6, 0.2], dtype=np.float32)
ALLOWED = np.array([[1, 0, 1, 1, 1]])  # token 1 is question: never in an answer


def spans(starts: np.ndarray, ends: np.ndarray, scores: np.ndarray) -> list[tuple[int, int, float]]:
    return [(int(s), int(e), round(float(p), 6)) for s, e, p in zip(starts, ends, scores, strict=True)]


def test_decode_spans_best_first() -> None:
    assert spans(*decode_spans(START, END, 1, 15, ALLOWED)) == [(2, 3, 0.3)]
    assert spans(*decode_spans(START, END, 3, 15, ALLOWED)) == [(2, 3, 0.3), (3, 3, 0.12), (2, 4, 0.1)]


def test_decode_spans_drops_masked_tokens_after_ranking() -> None:
    # (1, 3) scores 0.06 and ranks fourth, but token 1 may not be in an answer
    assert spans(*decode_spans(START, END, 4, 15, ALLOWED)) == [(2, 3, 0.3), (3, 3, 0.12), (2, 4, 0.1)]


def test_decode_spans_max_answer_len() -> None:
    assert spans(*decode_spans(START, END, 3, 1, ALLOWED)) == [(3, 3, 0.12), (2, 2, 0.05), (4, 4, 0.04)]
    two = spans(*decode_spans(START, END, 20, 2, ALLOWED))
    assert all(0 <= e - s < 2 for s, e, p in two if p > 0)
    assert all(e >= s for s, e, p in spans(*decode_spans(START, END, 20, 15, ALLOWED)) if p > 0)


def test_decode_spans_pads_a_large_top_k_with_zero_score_spans() -> None:
    """The pipeline's quirk, kept: past the valid spans come zeroed ones (even end < start)."""
    found = spans(*decode_spans(START, END, 100, 1, ALLOWED))
    assert found[:3] == [(3, 3, 0.12), (2, 2, 0.05), (4, 4, 0.04)]
    assert {p for _, _, p in found[4:]} == {0.0}
    assert any(e < s for s, e, _ in found)


def test_select_starts_ends_normalises_masks_and_keeps_null_score() -> None:
    start = np.array([[5.0, 9.0, 0.0, 1.0]], dtype=np.float32)
    end = np.array([[5.0, 9.0, 1.0, 0.0]], dtype=np.float32)
    p_mask = np.array([[0, 1, 0, 0]])  # CLS answerable, token 1 is question
    attention = np.ones_like(p_mask)
    starts, ends, scores, null = select_starts_ends(
        start, end, p_mask, attention, top_k=3, handle_impossible_answer=True, max_answer_len=15
    )
    # token 1 is masked to -10000 before the softmax: its 9.0 counts for nothing
    p_start = np.exp([5.0, 0.0, 1.0]) / np.exp([5.0, 0.0, 1.0]).sum()
    p_end = np.exp([5.0, 1.0, 0.0]) / np.exp([5.0, 1.0, 0.0]).sum()
    assert null == pytest.approx(p_start[0] * p_end[0], rel=1e-5)
    assert 1 not in starts and 1 not in ends
    found = dict(zip(zip(starts.tolist(), ends.tolist(), strict=True), scores.tolist(), strict=True))
    assert found[(2, 3)] == pytest.approx(p_start[1] * p_end[2], rel=1e-5)
    _, _, _, untouched = select_starts_ends(start, end, p_mask, attention, min_null_score=0.5)
    assert untouched == 0.5  # only with handle_impossible_answer


def test_get_indices_aligns_to_words() -> None:
    encoder = minilm_context("qa").encoder
    encoding = encoder.encode("who?", "Healthineers work", max_length=None)
    assert encoding.tokens[4:7] == ["health", "##ine", "##ers"]
    assert get_indices(encoding, 5, 5, 1, align_to_words=True) == (0, 12)
    assert get_indices(encoding, 5, 5, 1, align_to_words=False) == (6, 9)
    assert get_indices(encoding, 5, 7, 1, align_to_words=True) == (0, 17)
    assert get_indices(encoding, 0, 0, 1, align_to_words=True) == (0, 0)  # CLS has no word


def test_p_mask_leaves_context_and_cls_answerable() -> None:
    encoding = minilm_context("qa").encoder.encode("what?", "context here", max_length=None)
    assert p_mask_of(encoding, cls_token_id=101).tolist() == [[0, 1, 1, 1, 0, 0, 1]]
    assert p_mask_of(encoding, cls_token_id=None).tolist() == [[1, 1, 1, 1, 0, 0, 1]]


@pytest.mark.parametrize(
    ("options", "model_max", "expected"),
    [
        ({}, 512, (384, 128)),
        ({}, 256, (256, 128)),
        ({}, 128, (128, 64)),
        ({"max_seq_len": 64}, 512, (64, 32)),
        ({"max_seq_len": 64, "doc_stride": 32}, 512, (64, 32)),
        ({"max_seq_len": 512}, 512, (512, 128)),
        ({"doc_stride": 0}, 512, (384, 0)),
    ],
)
def test_window_limits_like_the_pipeline(
    options: dict[str, int], model_max: int, expected: tuple[int, int]
) -> None:
    request = QARequest.model_validate({"inputs": {"question": "q", "context": "c"}, **options})
    assert window_limits(request, model_max) == expected


@pytest.mark.parametrize(
    ("options", "model_max", "message"),
    [
        ({"max_seq_len": 257}, 256, "maximum length"),
        ({"max_seq_len": 64, "doc_stride": 33}, 512, "at most half of max_seq_len"),
        ({"doc_stride": 193}, 512, r"at most half of max_seq_len \(384\): 192"),
    ],
)
def test_window_limits_reject(options: dict[str, int], model_max: int, message: str) -> None:
    request = QARequest.model_validate({"inputs": {"question": "q", "context": "c"}, **options})
    with pytest.raises(InvalidInput, match=message):
        window_limits(request, model_max)


def test_short_context_is_one_window_long_one_many() -> None:
    context = minilm_context("qa", max_length=512)
    task = QATask()
    short = task.preprocess(
        QARequest.model_validate({"inputs": {"question": "who?", "context": "Ada did."}}), context
    )
    assert [item.length for item in short.items] == [8]
    long_context = " ".join(f"word{i}" for i in range(100))
    body = {"inputs": [{"question": "who?", "context": long_context}] * 2, "max_seq_len": 32, "doc_stride": 8}
    prepared = task.preprocess(QARequest.model_validate(body), context)
    assert len(prepared.items) > 4 and len(prepared.items) % 2 == 0
    assert all(item.length <= 32 for item in prepared.items)
    assert [len(q.windows) for q in prepared.plan] == [len(prepared.items) // 2] * 2


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": {"question": "q"}},
        {"inputs": {"question": " ", "context": "c"}},
        {"inputs": {"question": "q", "context": ""}},
        {"inputs": []},
        {"inputs": "q"},
        {"inputs": {"question": "q", "context": "c"}, "top_k": 0},
        {"inputs": {"question": "q", "context": "c"}, "top_k": None},
        {"inputs": {"question": "q", "context": "c"}, "max_answer_len": 0},
        {"inputs": {"question": "q", "context": "c"}, "doc_stride": -1},
        {"inputs": {"question": "q", "context": "c"}, "max_seq_len": 0},
        {"inputs": {"question": "q", "context": "c"}, "handle_impossible_answer": "no"},
        {"inputs": {"question": "q", "context": "c"}, "topk": 2},
    ],
)
def test_qa_rejects(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        QARequest.model_validate(body)


def test_qa_defaults_and_counts() -> None:
    request = QARequest.model_validate(
        {"inputs": [{"question": "q", "context": "c"}, {"question": "r", "context": "d"}]}
    )
    assert (request.top_k, request.doc_stride, request.max_answer_len, request.max_seq_len) == (
        1,
        None,
        15,
        None,
    )
    assert (request.max_question_len, request.handle_impossible_answer, request.align_to_words) == (
        64,
        False,
        True,
    )
    task = QATask()
    assert task.input_count(request) == 2
    assert task.texts(request) == ["q", "c", "r", "d"]
