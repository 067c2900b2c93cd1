"""/ner: the aggregation strategies on a hand-made token sequence, chunk merging, schemas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from tokenizers import decoders

from app.errors import InvalidInput
from app.tasks.ner import NERRequest, NERTask, chunk_stride
from app.tasks.ner_entities import (
    Entity,
    PreEntity,
    aggregate,
    aggregate_overlapping_entities,
    drop_ignored,
    gather_pre_entities,
    get_tag,
    group_entities,
    shift_index,
)
from tests.torch_runner import minilm_context

LABELS = {0: "O", 1: "B-ORG", 2: "I-ORG", 3: "B-LOC", 4: "I-LOC"}
DECODE = decoders.WordPiece(prefix="##", cleanup=True).decode
SENTENCE = "hugging face is nyc"
#          word, start, end, subword, scores over O, B-ORG, I-ORG, B-LOC, I-LOC
TOKENS = [
    ("hu", 0, 2, False, [0.1, 0.7, 0.1, 0.05, 0.05]),
    ("##gging", 2, 7, True, [0.05, 0.0, 0.2, 0.0, 0.75]),
    ("face", 8, 12, False, [0.2, 0.0, 0.8, 0.0, 0.0]),
    ("is", 13, 15, False, [0.9, 0.0, 0.0, 0.1, 0.0]),
    ("ny", 16, 18, False, [0.4, 0.0, 0.0, 0.5, 0.1]),
    ("##c", 18, 19, True, [0.1, 0.0, 0.0, 0.0, 0.9]),
]
PRE_ENTITIES = [
    PreEntity(word, np.array(scores, dtype=np.float32), start, end, index, subword)
    for index, (word, start, end, subword, scores) in enumerate(TOKENS, start=1)
]


def found(strategy: str) -> list[tuple[str, float, str, int, int]]:
    entities = drop_ignored(aggregate(PRE_ENTITIES, strategy, LABELS, DECODE), {"O"})  # type: ignore[arg-type]
    return [(e.label, round(float(e.score), 5), e.word, e.start, e.end) for e in entities]


def test_none_keeps_tokens() -> None:
    entities = drop_ignored(aggregate(PRE_ENTITIES, "none", LABELS, DECODE), {"O"})
    assert [(e.label, e.index, e.word) for e in entities] == [
        ("B-ORG", 1, "hu"),
        ("I-LOC", 2, "##gging"),
        ("I-ORG", 3, "face"),
        ("B-LOC", 5, "ny"),
        ("I-LOC", 6, "##c"),
    ]
    assert not any(e.grouped for e in entities)


def test_simple_groups_tokens_ignoring_words() -> None:
    assert found("simple") == [
        ("ORG", 0.7, "hu", 0, 2),
        ("LOC", 0.75, "##gging", 2, 7),
        ("ORG", 0.8, "face", 8, 12),
        ("LOC", 0.7, "nyc", 16, 19),  # B-LOC then I-LOC: one group, mean score
    ]


def test_first_takes_the_first_token_of_each_word() -> None:
    assert found("first") == [("ORG", 0.75, "hugging face", 0, 12), ("LOC", 0.5, "nyc", 16, 19)]


def test_max_takes_the_most_confident_token() -> None:
    assert found("max") == [
        ("LOC", 0.75, "hugging", 0, 7),
        ("ORG", 0.8, "face", 8, 12),
        ("LOC", 0.9, "nyc", 16, 19),
    ]


def test_average_averages_the_word_scores() -> None:
    # hugging: mean of its two rows is I-LOC 0.4 > B-ORG 0.35; nyc: I-LOC 0.5
    assert found("average") == [
        ("LOC", 0.4, "hugging", 0, 7),
        ("ORG", 0.8, "face", 8, 12),
        ("LOC", 0.5, "nyc", 16, 19),
    ]


def test_ignore_labels_apply_to_groups_and_tokens() -> None:
    groups = aggregate(PRE_ENTITIES, "simple", LABELS, DECODE)
    assert [e.label for e in drop_ignored(groups, frozenset())] == ["ORG", "LOC", "ORG", "O", "LOC"]
    assert [e.label for e in drop_ignored(groups, {"O", "LOC"})] == ["ORG", "ORG"]


def test_tags_and_grouping() -> None:
    assert get_tag("B-PER") == ("B", "PER")
    assert get_tag("I-PER") == ("I", "PER")
    assert get_tag("PER") == ("I", "PER")
    score = np.float32(0.5)
    tokens = [
        Entity("B-PER", score, "a", 0, 1),
        Entity("B-PER", score, "b", 2, 3),
        Entity("PER", score, "c", 4, 5),
    ]
    groups = group_entities(tokens, DECODE)
    assert [(g.label, g.word, g.start, g.end) for g in groups] == [("PER", "a", 0, 1), ("PER", "b c", 2, 5)]
    assert all(g.grouped for g in groups)


def test_overlapping_entities_keep_the_longest_then_the_best() -> None:
    def entity(start: int, end: int, score: float) -> Entity:
        return Entity("X", np.float32(score), f"{start}-{end}", start, end, grouped=True)

    chunk_a = [entity(0, 5, 0.9), entity(10, 20, 0.5)]
    chunk_b = [entity(10, 20, 0.6), entity(15, 18, 0.99), entity(30, 35, 0.1)]
    merged = aggregate_overlapping_entities(chunk_a + chunk_b)
    assert [(e.start, e.end, round(float(e.score), 2)) for e in merged] == [
        (0, 5, 0.9),
        (10, 20, 0.6),
        (30, 35, 0.1),
    ]
    assert aggregate_overlapping_entities([]) == []


def test_shift_index_moves_tokens_only() -> None:
    token = Entity("B-PER", np.float32(0.5), "a", 0, 1, index=3)
    group = Entity("PER", np.float32(0.5), "a", 0, 1, grouped=True)
    assert [e.index for e in shift_index([token, group], 100)] == [103, None]


def test_gather_pre_entities_from_a_real_encoding() -> None:
    encoder = minilm_context("ner").encoder
    sentence = "Healthineers in Zürich 🚀!"
    encoding = encoder.encode(sentence, max_length=None)
    scores = np.zeros((len(encoding.ids), 3), dtype=np.float32)
    common = {
        "tokens": encoding.tokens,
        "input_ids": encoding.ids,
        "offsets": encoding.offsets,
        "special_tokens_mask": encoding.special_tokens_mask,
        "unk_token_id": encoder.unk_token_id,
    }
    aware = gather_pre_entities(sentence, scores, word_aware=True, **common)
    assert [(p.word, p.start, p.end, p.index, p.is_subword) for p in aware] == [
        ("health", 0, 6, 1, False),
        ("##ine", 6, 9, 2, True),
        ("##ers", 9, 12, 3, True),
        ("in", 13, 15, 4, False),
        ("zurich", 16, 22, 5, False),  # accents stripped, same length: a word
        ("🚀", 23, 24, 6, False),  # [UNK] shows the source text
        ("!", 24, 25, 7, False),
    ]
    heuristic = gather_pre_entities(sentence, scores, word_aware=False, **common)
    assert [p.is_subword for p in heuristic] == [False, True, True, False, False, False, True]


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": ""},
        {"inputs": [" "]},
        {"inputs": []},
        {"inputs": "a", "aggregation_strategy": "mean"},
        {"inputs": "a", "ignore_labels": "O"},
        {"inputs": "a", "stride": -1},
        {"inputs": "a", "stride": 1.5},
        {"inputs": "a", "grouped_entities": True},
    ],
)
def test_ner_rejects(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NERRequest.model_validate(body)


def test_ner_defaults() -> None:
    request = NERRequest.model_validate({"inputs": "a"})
    assert (request.aggregation_strategy, request.ignore_labels, request.stride) == ("simple", ["O"], None)


@pytest.mark.parametrize(
    ("body", "window", "expected"),
    [
        ({}, 510, 128),
        ({}, 62, 31),
        ({"stride": 0}, 510, 0),
        ({"stride": 255}, 510, 255),
        ({"stride": 31}, 63, 31),
    ],
)
def test_chunk_stride(body: dict[str, Any], window: int, expected: int) -> None:
    assert chunk_stride(NERRequest.model_validate({"inputs": "a", **body}), window) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"stride": 16, "aggregation_strategy": "none"}, "aggregation_strategy"),
        ({"stride": 201}, "at most half the model's window of 400 tokens"),
    ],
)
def test_chunk_stride_rejects(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        chunk_stride(NERRequest.model_validate({"inputs": "a", **body}), 400)


def test_long_text_becomes_overlapping_chunks() -> None:
    context = minilm_context("ner", id2label=LABELS, max_length=16)
    text = " ".join(f"w{i}" for i in range(40))  # w, ##N: two tokens a word
    prepared = NERTask().preprocess(
        NERRequest.model_validate({"inputs": [text, "short"], "stride": 4}), context
    )
    chunks = prepared.plan[0].chunks
    assert len(prepared.items) == len(chunks) + 1
    assert all(item.length <= 16 for item in prepared.items)
    assert prepared.plan[0].step == 10
    assert chunks[1].offsets[1] == chunks[0].offsets[1 + 10]  # the next chunk starts 10 tokens on
    assert chunks[-1].offsets[-2][1] == len(text)  # nothing cut
    assert prepared.truncated == 0
