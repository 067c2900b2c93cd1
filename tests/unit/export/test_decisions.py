"""Decisions and agreement per task, on hand-made outputs."""

from __future__ import annotations

import numpy as np

from export.decisions import NON_FINITE, agreement, best_spans, labels, max_abs, max_abs_diff


def test_labels_are_the_argmax() -> None:
    assert labels(np.array([[0.1, 0.9], [2.0, -1.0]])).tolist() == [1, 0]


def test_best_span_respects_order_context_and_length() -> None:
    start = np.array([[9.0, -10.0, 1.0, 0.0, 0.0]])
    end = np.array([[0.0, 5.0, 0.0, 0.0, 2.0]])
    context = np.array([[False, True, True, True, True]])  # position 0 ([CLS]) is not context
    # (0, 1) scores 14 but starts outside the context; (2, 1) scores 6 but ends before it starts.
    assert best_spans(start, end, context).tolist() == [[2, 4]]
    long = np.zeros((1, 40))
    long_end = np.zeros((1, 40))
    long[0, 0], long_end[0, 30] = 5.0, 5.0
    assert best_spans(long, long_end, np.ones((1, 40), dtype=bool)).tolist() != [[0, 30]]  # 31 tokens > 15
    assert best_spans(start, end, np.zeros((1, 5), dtype=bool)).tolist() == [[-1, -1]]


def test_agreement_per_task() -> None:
    ref = {"logits": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])}
    got = {"logits": np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])}
    none = np.zeros((3, 1), dtype=bool)
    assert agreement("classify", ref, got, none, none) == (2, 3)

    tags_ref = {"logits": np.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])}
    tags_got = {"logits": np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]])}
    words = np.array([[False, True, True, False]])  # [CLS] and padding do not count
    assert agreement("ner", tags_ref, tags_got, words, words) == (1, 2)

    span = {"start_logits": np.array([[0.0, 3.0, 0.0]]), "end_logits": np.array([[0.0, 0.0, 3.0]])}
    moved = {"start_logits": np.array([[0.0, 0.0, 3.0]]), "end_logits": np.array([[0.0, 0.0, 3.0]])}
    context = np.array([[False, True, True]])
    assert agreement("qa", span, span, context, context) == (1, 1)
    assert agreement("qa", span, moved, context, context) == (0, 1)


def test_diffs_ignore_padding_and_flag_non_finite() -> None:
    ref = np.zeros((1, 3, 2))
    got = np.array([[[0.1, 0.0], [0.0, -0.2], [9.0, 9.0]]])
    real = np.array([[True, True, False]])
    assert np.isclose(max_abs_diff(ref, got, real), 0.2)
    assert max_abs_diff(ref, got, None) == 9.0
    assert max_abs_diff(ref, np.full((1, 3, 2), np.nan), real) == NON_FINITE
    assert max_abs(got, real) == 0.2
