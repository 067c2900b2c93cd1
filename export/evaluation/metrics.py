"""Dev-set metrics: accuracy, binary F1, and the official SQuAD v1.1 evaluation logic."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Fraction of exact matches."""
    return sum(p == y for p, y in zip(predictions, labels, strict=True)) / max(len(labels), 1)


def binary_f1(predictions: Sequence[int], labels: Sequence[int], positive: int = 1) -> float:
    """F1 of the positive class (the GLUE MRPC convention)."""
    tp = sum(p == positive and y == positive for p, y in zip(predictions, labels, strict=True))
    fp = sum(p == positive and y != positive for p, y in zip(predictions, labels, strict=True))
    fn = sum(p != positive and y == positive for p, y in zip(predictions, labels, strict=True))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


# --- SQuAD v1.1: same logic as the official evaluate-v1.1.py ---------------------------------------


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace."""
    s = s.lower()
    exclude = set(string.punctuation)
    s = "".join(ch for ch in s if ch not in exclude)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(prediction: str, ground_truth: str) -> float:
    """Token-overlap F1 between normalised prediction and reference."""
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def squad_exact_match(prediction: str, ground_truth: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def _max_over_ground_truths(
    metric: Callable[[str, str], float], prediction: str, ground_truths: Sequence[str]
) -> float:
    return max(metric(prediction, gt) for gt in ground_truths)


def squad_evaluate(references: dict[str, list[str]], predictions: dict[str, str]) -> dict[str, float]:
    """Exact match and F1 in percent over every question; a missing prediction scores 0."""
    exact_match = f1 = 0.0
    for qid, ground_truths in references.items():
        if qid not in predictions:
            continue
        exact_match += _max_over_ground_truths(squad_exact_match, predictions[qid], ground_truths)
        f1 += _max_over_ground_truths(squad_f1, predictions[qid], ground_truths)
    total = max(len(references), 1)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


# --- entity-level F1 over IOB tags, conlleval's chunking (what seqeval's default mode computes) -------

Chunk = tuple[str, int, int]  # (type, first tag, one past the last tag)


def _split(tag: str) -> tuple[str, str]:
    """("B", "PER") for "B-PER"; ("O", "_") for "O"."""
    return tag[:1], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _ends(prev: str, prev_type: str, tag: str, type_: str) -> bool:
    """A chunk ends before `tag` (conlleval's endOfChunk)."""
    return (
        prev in ("E", "S")
        or (prev == "B" and tag in ("B", "S", "O"))
        or (prev == "I" and tag in ("B", "S", "O"))
        or (prev != "O" and prev_type != type_)
    )


def _starts(prev: str, prev_type: str, tag: str, type_: str) -> bool:
    """A chunk starts at `tag` (conlleval's startOfChunk)."""
    return (
        tag in ("B", "S")
        or (prev in ("E", "S", "O") and tag in ("E", "I"))
        or (tag != "O" and prev_type != type_)
    )


def entity_chunks(tags: Sequence[str]) -> set[Chunk]:
    """The entities an IOB/IOBES tag sequence marks, chunked as conlleval does (a stray I- opens one)."""
    chunks: set[Chunk] = set()
    prev, prev_type, begin = "O", "_", 0
    for index, full in enumerate([*tags, "O"]):
        tag, type_ = _split(full)
        if _ends(prev, prev_type, tag, type_):
            chunks.add((prev_type, begin, index))
        if _starts(prev, prev_type, tag, type_):
            begin = index
        prev, prev_type = tag, type_
    return chunks


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Micro F1 of exact entity matches over sentences of tags."""
    found = correct = expected = 0
    for gold_tags, predicted_tags in zip(gold, predicted, strict=True):
        want, got = entity_chunks(gold_tags), entity_chunks(predicted_tags)
        found, expected, correct = found + len(got), expected + len(want), correct + len(want & got)
    return 0.0 if correct == 0 else 2 * correct / (found + expected)
