"""CLI option parsing, task specs and checkpoint helpers that need no model."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from export.__main__ import parser, tolerances
from export.checkpoint import describe_path, locate, repository_root
from export.errors import CheckpointNotFoundError
from export.options import precision_list
from export.repository import DemoSpec
from export.tasks import KNOWN_HEADS, TASKS
from export.tolerances import DEFAULT_TOLERANCES


def test_precision_list() -> None:
    assert precision_list("int8,fp32") == ["fp32", "int8"]
    with pytest.raises(argparse.ArgumentTypeError):
        precision_list("fp32,bf16")
    with pytest.raises(argparse.ArgumentTypeError):
        precision_list("")


def test_tolerance_overrides_touch_only_what_was_given() -> None:
    args = parser().parse_args(
        ["--model", "m", "--task", "ner", "--out", "o", "--atol-int8", "0.2", "--agreement-int8", "0.7"]
    )
    table = tolerances(args)
    assert (table["int8"].atol, table["int8"].rtol, table["int8"].min_agreement) == (
        0.2, DEFAULT_TOLERANCES["int8"].rtol, 0.7,
    )  # fmt: skip
    assert table["fp32"] == DEFAULT_TOLERANCES["fp32"] and table["fp16"] == DEFAULT_TOLERANCES["fp16"]


def test_task_specs() -> None:
    assert KNOWN_HEADS["BertForSequenceClassification"] == ("classify", "pair")
    assert KNOWN_HEADS["XLMRobertaForQuestionAnswering"] == ("qa",)
    assert TASKS["ner"].head_for("deberta-v2") == "DebertaV2ForTokenClassification"
    assert TASKS["pair"].head_for("distilbert") == "DistilBertForSequenceClassification"
    assert (TASKS["qa"].optimum_task, TASKS["qa"].outputs) == (
        "question-answering",
        ("start_logits", "end_logits"),
    )


def test_paths_inside_the_repository_are_recorded_relative() -> None:
    root = repository_root()
    assert (root / "pyproject.toml").is_file()
    assert describe_path(root / "demo" / "sentiment") == "demo/sentiment"
    assert describe_path(Path("/opt/checkpoints/x")) == "/opt/checkpoints/x"


def test_path_like_names_are_not_sent_to_the_hub(tmp_path: Path) -> None:
    for name in (str(tmp_path / "missing"), "./missing", "~/missing", "a/b/c"):
        with pytest.raises(CheckpointNotFoundError, match="no checkpoint folder"):
            locate(name)


def test_demo_spec_is_strict() -> None:
    assert DemoSpec.model_validate({"task": "pair", "precisions": ["fp32"]}).precisions == ["fp32"]
    with pytest.raises(ValueError, match="task"):
        DemoSpec.model_validate({"task": "summarize"})
    with pytest.raises(ValueError, match="extra"):
        DemoSpec.model_validate({"task": "qa", "tsk": "qa"})
