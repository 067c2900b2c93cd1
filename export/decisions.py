"""The decision each task takes from its outputs, and how often two sets of outputs agree on it.

Pure numpy, so the rules are tested on hand-made arrays. Agreement is a fraction of decisions:
one per input for classify/pair (argmax label) and qa (best span), one per real token for ner.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.tasks.qa import DEFAULT_MAX_ANSWER_LEN
from app.tasks.qa_spans import select_starts_ends

FloatArray = npt.NDArray[np.floating]
BoolArray = npt.NDArray[np.bool_]
NON_FINITE = float(np.finfo(np.float32).max)


def labels(logits: FloatArray) -> npt.NDArray[np.int64]:
    """Argmax label per input: logits [batch, labels] -> [batch]."""
    return np.asarray(np.argmax(logits, axis=-1), dtype=np.int64)


def best_spans(start: FloatArray, end: FloatArray, context: BoolArray) -> npt.NDArray[np.int64]:
    """Best (start, end) per input among context tokens, as the server's /qa decodes it
    (app.tasks.qa_spans at the request's default `max_answer_len`).

    start, end: [batch, sequence]; context: [batch, sequence] marks the tokens an answer may use.
    Returns [batch, 2]; (-1, -1) where the input has no context token.
    """
    spans = np.full((start.shape[0], 2), -1, dtype=np.int64)
    for row in range(start.shape[0]):
        if not context[row].any():
            continue
        p_mask = (~context[row][None, :]).astype(np.int64)  # 1 where a token cannot be in the answer
        starts, ends, _, _ = select_starts_ends(
            start[row][None, :], end[row][None, :], p_mask, None, max_answer_len=DEFAULT_MAX_ANSWER_LEN
        )
        if len(starts):
            spans[row] = (int(starts[0]), int(ends[0]))
    return spans


def agreement(
    task: str,
    reference: dict[str, FloatArray],
    candidate: dict[str, FloatArray],
    words: BoolArray,
    context: BoolArray,
) -> tuple[int, int]:
    """(matching decisions, decisions) of `candidate` against `reference` for one batch.

    words: [batch, sequence] real, non-special tokens (ner); context: answer tokens (qa).
    """
    if task in ("classify", "pair"):
        same = labels(reference["logits"]) == labels(candidate["logits"])
        return int(same.sum()), int(same.size)
    if task == "qa":
        ref = best_spans(reference["start_logits"], reference["end_logits"], context)
        got = best_spans(candidate["start_logits"], candidate["end_logits"], context)
        same = (ref == got).all(axis=1)
        return int(same.sum()), int(same.size)
    if task == "ner":
        same = labels(reference["logits"]) == labels(candidate["logits"])
        return int(same[words].sum()), int(words.sum())
    raise ValueError(f"unknown task {task!r}")


def max_abs_diff(reference: FloatArray, candidate: FloatArray, real: BoolArray | None) -> float:
    """max |candidate - reference|, over real (non-padding) positions for token-level outputs."""
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    if real is not None:
        diff = diff[real]
    if not np.isfinite(diff).all():
        return NON_FINITE  # NaN or inf in an output: fails any tolerance, and stays valid JSON
    return float(diff.max()) if diff.size else 0.0


def max_abs(values: FloatArray, real: BoolArray | None) -> float:
    """Largest |value|, over real positions for token-level outputs (the scale of an output)."""
    picked = values[real] if real is not None else values
    return float(np.abs(picked).max()) if picked.size else 0.0
