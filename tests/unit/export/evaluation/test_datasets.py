"""Evaluation data for export --eval-data: JSONL in the request shape, gold optional; the budget's
variant choice in the manifest and the server's loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.contract.manifest import Manifest, Parity, Variant
from app.errors import ModelLoadError
from app.runtime.repository import choose_variant
from export.evaluation.datasets import UNLABELLED, QAExample, TaggedSentence, TextExample
from export.evaluation.tasks import EVAL_TASKS, ModelInfo

SENTIMENT = ModelInfo(max_length=32, id2label={0: "NEGATIVE", 1: "POSITIVE"})
TAGS = ModelInfo(max_length=32, id2label={0: "O", 1: "B-PER"})


def jsonl(tmp_path: Path, *records: object) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n\n", encoding="utf-8")
    return path


def test_classify_records_take_a_label_id_a_label_name_or_none(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path, {"text": "good", "label": 1}, {"text": "bad", "label": "NEGATIVE"}, {"text": "meh"}
    )
    examples = EVAL_TASKS["classify"].read_file(path, SENTIMENT)
    assert examples == [
        TextExample("good", 1),
        TextExample("bad", 0),
        TextExample("meh", UNLABELLED),
    ]
    assert [EVAL_TASKS["classify"].labelled(e) for e in examples] == [True, True, False]


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"text": "x", "label": "MIXED"}, "MIXED"),
        ({"text": "x", "label": 7}, "ids"),
        ({"text": "x", "label": True}, "class id"),
        ({"text": 3}, "string"),
        ({"label": 1}, "text"),
    ],
)
def test_a_bad_record_is_named_with_its_number(tmp_path: Path, record: object, why: str) -> None:
    path = jsonl(tmp_path, {"text": "fine", "label": 1}, record)
    with pytest.raises(ValueError, match=f"record 2 .*{why}"):
        EVAL_TASKS["classify"].read_file(path, SENTIMENT)


def test_a_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"data.jsonl:2: not JSON"):
        EVAL_TASKS["classify"].read_file(path, SENTIMENT)


def test_pair_qa_and_ner_records(tmp_path: Path) -> None:
    pair = EVAL_TASKS["pair"].read_file(
        jsonl(tmp_path, {"text": "a", "text_pair": "b", "label": 0}), SENTIMENT
    )
    assert pair == [TextExample("a", 0, "b")]
    qa = EVAL_TASKS["qa"].read_file(
        jsonl(
            tmp_path,
            {"question": "Who?", "context": "Ann ran.", "answers": ["Ann", {"text": "Ann ran"}]},
            {"question": "Who?", "context": "Bo ran.", "answers": {"text": ["Bo"], "answer_start": [0]}},
            {"question": "Why?", "context": "No one knows."},
        ),
        SENTIMENT,
    )
    assert [q.answers for q in qa] == [["Ann", "Ann ran"], ["Bo"], []]
    assert [EVAL_TASKS["qa"].labelled(q) for q in qa] == [True, True, False]
    assert isinstance(qa[0], QAExample)
    ner = EVAL_TASKS["ner"].read_file(
        jsonl(tmp_path, {"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}, {"tokens": ["x"]}), TAGS
    )
    assert ner == [TaggedSentence(["Ann", "ran"], ["B-PER", "O"]), TaggedSentence(["x"], [])]
    with pytest.raises(ValueError, match="one IOB2 tag string per token"):
        EVAL_TASKS["ner"].read_file(jsonl(tmp_path, {"tokens": ["a", "b"], "tags": ["O"]}), TAGS)


def test_squad_scores_by_position_so_ids_may_repeat() -> None:
    task = EVAL_TASKS["qa"]
    examples = [QAExample("", "q", "Ann ran.", ["Ann"], []), QAExample("", "q", "Bo ran.", ["Bo"], [])]
    results = [{"answer": "Ann", "start": 0, "end": 3}, {"answer": "ran", "start": 3, "end": 6}]
    assert task.score(examples, results, SENTIMENT)["exact_match"] == pytest.approx(50.0)


def variant(precision: str, *, default: bool = True, passed: bool = True) -> Variant:
    parity = Parity(
        samples=1,
        max_abs_diff={"logits": 0.0},
        decision_agreement=1.0,
        atol=1.0,
        min_agreement=0.9,
        passed=passed,
    )
    return Variant.model_validate(
        {
            "precision": precision,
            "file": f"model.{precision}.onnx",
            "providers": ["CPUExecutionProvider"],
            "fused_ops": {},
            "node_count": 1,
            "size_bytes": 1,
            "sha256": "0",
            "parity": parity,
            "default": default,
        }
    )


def manifest(*variants: Variant) -> Manifest:
    return Manifest.model_validate(
        {
            "name": "m",
            "task": "classify",
            "architecture": "BertForSequenceClassification",
            "model_type": "bert",
            "num_layers": 1,
            "hidden_size": 8,
            "num_heads": 1,
            "id2label": {0: "NEGATIVE", 1: "POSITIVE"},
            "input_names": ["input_ids"],
            "output_names": ["logits"],
            "max_length": 32,
            "pad_token_id": 0,
            "opset": 17,
            "variants": variants,
            "source": {"checkpoint": "c", "architecture": "BertForSequenceClassification"},
            "versions": {},
            "created_at": "now",
        }
    )


def test_auto_serves_int8_only_where_the_exporter_allows_it() -> None:
    outside = manifest(variant("fp32"), variant("int8", default=False))
    assert choose_variant(outside, ["int8", "fp32"], Path("m"), auto=True).precision == "fp32"
    # asked for by name, any int8 that passed parity is served
    assert choose_variant(outside, ["int8"], Path("m")).precision == "int8"
    within = manifest(variant("fp32"), variant("int8"))
    assert choose_variant(within, ["int8", "fp32"], Path("m"), auto=True).precision == "int8"
    refused = manifest(variant("fp32", passed=False), variant("int8", default=False))
    with pytest.raises(ModelLoadError, match="no validated variant"):
        choose_variant(refused, ["int8", "fp32"], Path("m"), auto=True)
