"""What each task exports, as data: accepted head classes, auto class, output names and their axes."""

from __future__ import annotations

from dataclasses import dataclass

from app.runtime.manifest import TaskName

INPUT_NAMES: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
BATCH_AXIS = "batch"
SEQUENCE_AXIS = "sequence"

# Pretrained checkpoints without a fine-tuned head: any task accepts them, with a randomly
# initialised head (useful to check fusion on a real encoder; the answers mean nothing).
BARE_ENCODERS: frozenset[str] = frozenset({"BertModel", "BertForMaskedLM", "BertForPreTraining"})


@dataclass(frozen=True)
class TaskSpec:
    """How one task maps onto a transformers head and an ONNX signature."""

    name: TaskName
    head: str  # the transformers class name of the head
    outputs: tuple[str, ...]
    token_level: bool  # outputs carry a "sequence" axis
    pairs: bool  # inputs are (text, text) pairs
    labelled: bool  # outputs score config.id2label (qa's start/end logits do not)

    def output_axes(self) -> dict[str, dict[int, str]]:
        axes = {0: BATCH_AXIS, 1: SEQUENCE_AXIS} if self.token_level else {0: BATCH_AXIS}
        return {name: dict(axes) for name in self.outputs}


TASKS: dict[TaskName, TaskSpec] = {
    "classify": TaskSpec("classify", "BertForSequenceClassification", ("logits",), False, False, True),
    "pair": TaskSpec("pair", "BertForSequenceClassification", ("logits",), False, True, True),
    "qa": TaskSpec("qa", "BertForQuestionAnswering", ("start_logits", "end_logits"), True, True, False),
    "ner": TaskSpec("ner", "BertForTokenClassification", ("logits",), True, False, True),
}

KNOWN_HEADS: dict[str, tuple[TaskName, ...]] = {}
for _spec in TASKS.values():
    KNOWN_HEADS.setdefault(_spec.head, ())
    KNOWN_HEADS[_spec.head] += (_spec.name,)


def input_axes() -> dict[str, dict[int, str]]:
    return {name: {0: BATCH_AXIS, 1: SEQUENCE_AXIS} for name in INPUT_NAMES}
