"""Unit tests of tools/training/: SQuAD metric, batching, span choice, label alignment."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from export.evaluation.metrics import (
    accuracy,
    binary_f1,
    normalize_answer,
    squad_evaluate,
    squad_exact_match,
    squad_f1,
)
from tools.training.batching import PAD_LABEL, batch_order, collate


def test_normalize_answer_follows_the_official_script() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words


def test_squad_scores() -> None:
    assert squad_exact_match("the Cat.", "cat") == 1.0
    assert squad_f1("red big cat", "big cat") == pytest.approx(0.8)
    assert squad_f1("dog", "cat") == 0.0
    refs = {"q1": ["Denver Broncos", "the Broncos"], "q2": ["1990"], "q3": ["x"]}
    preds = {"q1": "Broncos", "q2": "in 1990"}  # q3 unanswered: counts as 0
    scores = squad_evaluate(refs, preds)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1.0 + 2 / 3) / 3)


def test_accuracy_and_binary_f1() -> None:
    assert accuracy([1, 0, 1, 1], [1, 0, 0, 1]) == 0.75
    assert binary_f1([1, 0, 1, 1], [1, 0, 0, 1]) == pytest.approx(0.8)
    assert binary_f1([0, 0], [1, 0]) == 0.0


def test_batch_order_is_a_seeded_partition_of_similar_lengths() -> None:
    lengths = [(i * 7) % 50 + 1 for i in range(103)]
    batches = batch_order(lengths, 8, seed=1, epoch=0, bucket_factor=4)
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert batches == batch_order(lengths, 8, seed=1, epoch=0, bucket_factor=4)
    assert batches != batch_order(lengths, 8, seed=1, epoch=1, bucket_factor=4)
    assert all(len(b) <= 8 for b in batches)


def test_collate_pads_to_the_longest_item() -> None:
    batch = collate(
        [
            {"input_ids": [101, 5, 102], "token_type_ids": [0, 0, 0], "labels": [PAD_LABEL, 3, PAD_LABEL]},
            {"input_ids": [101, 102], "token_type_ids": [0, 0], "labels": [PAD_LABEL, PAD_LABEL]},
        ]
    )
    assert batch["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[PAD_LABEL, 3, PAD_LABEL], [PAD_LABEL, PAD_LABEL, PAD_LABEL]]
    scalar = collate([{"input_ids": [1], "token_type_ids": [0], "start_positions": 0, "end_positions": 0}])
    assert scalar["start_positions"].tolist() == [0]


def test_ner_labels_only_the_first_sub_token() -> None:
    from export.evaluation.datasets import TaggedSentence
    from tools.training.checkpoint import load_tokenizer
    from tools.training.config import default_base_model
    from tools.training.heads.ner import encode_words

    tokenizer = load_tokenizer(default_base_model())
    sentence = TaggedSentence(words=["Blackburn", "visited", "Xyzzyplugh"], tags=["B-PER", "O", "B-LOC"])
    [feature] = encode_words(tokenizer, [sentence], {"O": 0, "B-PER": 1, "B-LOC": 5}, max_length=32)
    tokens = tokenizer.convert_ids_to_tokens(feature["input_ids"])
    labelled = [(t, y) for t, y in zip(tokens, feature["labels"], strict=True) if y != PAD_LABEL]
    assert [y for _, y in labelled] == [1, 0, 5]
    assert [t for t, _ in labelled] == [tokens[p] for p in feature["first_token"]]
    assert len(tokens) > 5  # the rare word split into several sub-tokens, only one labelled


def test_qa_windows_mark_the_answer_or_cls() -> None:
    from export.evaluation.datasets import QAExample
    from tools.training.checkpoint import load_tokenizer
    from tools.training.config import default_base_model
    from tools.training.heads.qa import encode_windows, predict

    tokenizer = load_tokenizer(default_base_model())
    context = " ".join(f"word{i}" for i in range(60)) + " The answer is Paris in France."
    start = context.index("Paris")
    example = QAExample(id="q", question="Where?", context=context, answers=["Paris"], answer_starts=[start])
    features = encode_windows(tokenizer, [example], max_length=48, stride=16)
    assert len(features) > 1
    marked = [f for f in features if f["start_positions"] > 0]
    assert marked, "the last window holds the answer"
    for f in marked:
        s, e = f["encoding"].offsets[f["start_positions"]], f["encoding"].offsets[f["end_positions"]]
        assert context[s[0] : e[1]] == "Paris"
    assert any(f["start_positions"] == 0 == f["end_positions"] for f in features)

    # The dev score decodes as the server does: best answer over every window; question tokens
    # (the highest logits here) never answer.
    outputs = []
    for f in features:
        start_logits = np.zeros(len(f["input_ids"]), dtype=np.float32)
        end_logits = np.zeros(len(f["input_ids"]), dtype=np.float32)
        start_logits[1] = end_logits[1] = 20.0  # "where", a question token
        if f["start_positions"]:
            start_logits[f["start_positions"]] = end_logits[f["end_positions"]] = 10.0
        outputs.append({"start_logits": start_logits, "end_logits": end_logits})
    assert predict([example], features, outputs, tokenizer.cls_token_id) == {"q": "Paris"}


def test_entity_f1_chunks_as_conlleval_does() -> None:
    from export.evaluation.metrics import entity_chunks, entity_f1

    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "O", "B-MISC"]
    # a stray I- opens an entity, B- closes the one before, a change of type closes it too
    assert entity_chunks(tags) == {("PER", 0, 2), ("LOC", 3, 5), ("LOC", 5, 6), ("ORG", 6, 7), ("MISC", 8, 9)}
    assert entity_f1([tags], [tags]) == 1.0
    assert entity_f1([["B-PER", "O"]], [["O", "O"]]) == 0.0


def test_entity_f1_equals_seqeval_on_random_tag_sequences() -> None:
    import random

    seqeval = pytest.importorskip("seqeval.metrics")
    from export.evaluation.metrics import entity_f1

    rng = random.Random(11)
    vocabulary = ["O", "O", "O", *(f"{p}-{t}" for p in "BI" for t in ("PER", "LOC", "ORG"))]
    for _ in range(200):
        lengths = [rng.randint(1, 12) for _ in range(rng.randint(1, 6))]
        gold = [[rng.choice(vocabulary) for _ in range(n)] for n in lengths]
        predicted = [[rng.choice(vocabulary) for _ in range(n)] for n in lengths]
        assert entity_f1(gold, predicted) == pytest.approx(float(seqeval.f1_score(gold, predicted)))
