"""What each task exports, as data: the head class suffix, optimum's task name, output names and axes."""

from __future__ import annotations

from dataclasses import dataclass

from app.contract.manifest import TaskName
from export.architectures import ARCHITECTURES, all_bare_encoders

# Pretrained checkpoints without a fine-tuned head: any task accepts them, with a randomly
# initialised head (useful to check fusion on a real encoder; the answers mean nothing).
BARE_ENCODERS: frozenset[str] = all_bare_encoders()


@dataclass(frozen=True)
class TaskSpec:
    """How one task maps onto a transformers head and an ONNX signature."""

    name: TaskName
    head_suffix: str  # the transformers head class is the architecture's prefix + this
    optimum_task: str  # the task name optimum's exporter knows the head by
    outputs: tuple[str, ...]
    token_level: bool  # outputs carry a "sequence" axis
    pairs: bool  # inputs are (text, text) pairs
    labelled: bool  # outputs score config.id2label (qa's start/end logits do not)

    @property
    def head(self) -> str:
        """The BERT head class, the name messages use when the architecture is not known yet."""
        return f"Bert{self.head_suffix}"

    def head_for(self, model_type: str) -> str:
        return ARCHITECTURES[model_type].head(self.head_suffix)


_CLASSIFY = ("ForSequenceClassification", "text-classification")
TASKS: dict[TaskName, TaskSpec] = {
    "classify": TaskSpec("classify", *_CLASSIFY, ("logits",), False, False, True),
    "pair": TaskSpec("pair", *_CLASSIFY, ("logits",), False, True, True),
    "qa": TaskSpec(
        "qa", "ForQuestionAnswering", "question-answering", ("start_logits", "end_logits"), True, True, False
    ),
    "ner": TaskSpec("ner", "ForTokenClassification", "token-classification", ("logits",), True, False, True),
}

KNOWN_HEADS: dict[str, tuple[TaskName, ...]] = {}
for _arch in ARCHITECTURES.values():
    for _spec in TASKS.values():
        _head = _arch.head(_spec.head_suffix)
        KNOWN_HEADS[_head] = (*KNOWN_HEADS.get(_head, ()), _spec.name)
