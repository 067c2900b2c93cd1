"""Answer spans from start/end logits: `transformers.pipelines.question_answering`, ported.

`decode_spans` and `select_starts_ends` are the pipeline's functions with its array shapes
([1, length] with a batch axis) kept on purpose, so that ties and the masking quirks resolve
exactly as there (e.g. `np.isin` against the 2-D `nonzero()` tuple also admits index 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tokenizers import Encoding


def decode_spans(
    start: np.ndarray, end: np.ndarray, topk: int, max_answer_len: int, undesired_tokens: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `topk` best (start, end) spans by start x end probability, at most `max_answer_len` long.

    Spans outside `undesired_tokens` (1 = may be in the answer, despite its name) are dropped.
    """
    if start.ndim == 1:
        start = start[None]
    if end.ndim == 1:
        end = end[None]

    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    # Remove candidates with end < start and end - start > max_answer_len
    candidates = np.tril(np.triu(outer), max_answer_len - 1)

    scores_flat = candidates.flatten()
    idx_sort: Any
    if topk == 1:
        idx_sort = [np.argmax(scores_flat)]
    elif len(scores_flat) < topk:
        idx_sort = np.argsort(-scores_flat)
    else:
        idx = np.argpartition(-scores_flat, topk)[0:topk]
        idx_sort = idx[np.argsort(-scores_flat[idx])]

    starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
    allowed = undesired_tokens.nonzero()
    desired_spans = np.isin(starts, allowed) & np.isin(ends, allowed)
    starts = starts[desired_spans]
    ends = ends[desired_spans]
    scores = candidates[0, starts, ends]
    return starts, ends, scores


def select_starts_ends(
    start: np.ndarray,
    end: np.ndarray,
    p_mask: np.ndarray,
    attention_mask: np.ndarray | None,
    *,
    min_null_score: float = 1000000,
    top_k: int = 1,
    handle_impossible_answer: bool = False,
    max_answer_len: int = 15,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Normalise one window's logits ([1, length]) into probabilities and decode its best spans.

    `p_mask` is 1 where a token cannot be in the answer. Returns starts, ends, scores and the
    smallest null (CLS x CLS) score seen so far.
    """
    undesired_tokens = np.abs(np.array(p_mask) - 1)
    if attention_mask is not None:
        undesired_tokens = undesired_tokens & attention_mask
    undesired_tokens_mask = undesired_tokens == 0.0

    # Make sure non-context indexes in the tensor cannot contribute to the softmax
    start = np.where(undesired_tokens_mask, -10000.0, start)
    end = np.where(undesired_tokens_mask, -10000.0, end)

    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()

    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())

    # Mask CLS
    start[0, 0] = end[0, 0] = 0.0

    starts, ends, scores = decode_spans(start, end, top_k, max_answer_len, undesired_tokens)
    return starts, ends, scores, min_null_score


def get_indices(enc: Encoding, s: int, e: int, sequence_index: int, align_to_words: bool) -> tuple[int, int]:
    """Character span of tokens s..e in the context, widened to whole words when asked."""
    if align_to_words:
        try:
            start_word = enc.token_to_word(s)
            end_word = enc.token_to_word(e)
            start_index = enc.word_to_chars(start_word, sequence_index=sequence_index)[0]
            end_index = enc.word_to_chars(end_word, sequence_index=sequence_index)[1]
        except Exception:
            # Special tokens have no word: keep to the offsets then (the pipeline does the same).
            start_index = enc.offsets[s][0]
            end_index = enc.offsets[e][1]
    else:
        start_index = enc.offsets[s][0]
        end_index = enc.offsets[e][1]
    return start_index, end_index
