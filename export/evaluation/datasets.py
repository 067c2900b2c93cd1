"""Readers for labelled data: the public data sets' own layouts, and JSONL in the request shape."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
UNLABELLED = -1  # TextExample.label of an example without a gold class


@dataclass(frozen=True)
class TextExample:
    """One sentence (or sentence pair) with a class id."""

    text: str
    label: int
    text_pair: str | None = None


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence split into words, with one IOB2 tag per word."""

    words: list[str]
    tags: list[str]


@dataclass(frozen=True)
class QAExample:
    """One SQuAD question over its context, with every reference answer."""

    id: str
    question: str
    context: str
    answers: list[str]
    answer_starts: list[int]


def sample(items: list[T], limit: int | None, seed: int) -> list[T]:
    """A seeded random subset of `limit` items (all of them, in order, when `limit` is None)."""
    if limit is None or limit >= len(items):
        return items
    return random.Random(seed).sample(items, limit)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per non-blank line; ValueError names the first bad line."""
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{path}:{number}: not JSON: {error}") from error
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected an object, got {type(record).__name__}")
            records.append(record)
    if not records:
        raise ValueError(f"{path}: no examples")
    return records


def _tsv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def read_sst2(path: Path) -> list[TextExample]:
    """SST-2 TSV with header `label<TAB>text_a`; label 1 = positive."""
    return [TextExample(text=row["text_a"].strip(), label=int(row["label"])) for row in _tsv_rows(path)]


def read_mrpc(path: Path) -> list[TextExample]:
    """MRPC TSV (UTF-8 BOM): `Quality #1 ID #2 ID #1 String #2 String`; Quality 1 = paraphrase."""
    return [
        TextExample(text=row["#1 String"], text_pair=row["#2 String"], label=int(row["Quality"]))
        for row in _tsv_rows(path)
    ]


def read_conll(path: Path) -> list[TaggedSentence]:
    """CoNLL-2003: `TOKEN POS CHUNK NER` lines, blank lines between sentences, -DOCSTART- skipped."""
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        parts = line.split()
        if parts and parts[0] != "-DOCSTART-":
            words.append(parts[0])
            tags.append(parts[-1])
        elif words:
            sentences.append(TaggedSentence(words=words, tags=tags))
            words, tags = [], []
    return sentences


def read_squad(path: Path) -> list[QAExample]:
    """SQuAD v1.1 JSON: `data[].paragraphs[].qas[]`, every answer kept (the first is trained on)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [
        QAExample(
            id=qa["id"],
            question=qa["question"],
            context=paragraph["context"],
            answers=[a["text"] for a in qa["answers"]],
            answer_starts=[a["answer_start"] for a in qa["answers"]],
        )
        for article in data
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]
