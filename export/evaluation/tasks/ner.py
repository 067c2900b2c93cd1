"""/ner on CoNLL-2003: entity-level F1 (conlleval's chunking, as the training head scores it).

Each sentence is its tokens joined with single spaces, tagged with aggregation_strategy "first"
(a word takes its first sub-token's label, as the head was trained); the entity spans become
word tags again as `export.evaluation.tasks.conll` describes. Agreement: the same set of
(group, start, end) per sentence.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from export.evaluation.datasets import TaggedSentence, read_conll
from export.evaluation.metrics import entity_f1
from export.evaluation.tasks.base import EvalTask, ModelInfo
from export.evaluation.tasks.conll import Span, join_words, spans_to_tags

STRIDE = 128  # the server's default overlap for a text longer than the window, given to both sides


def spans(result: Any) -> list[Span]:
    """(group, start, end) of each grouped entity of one result."""
    return [(str(e["entity_group"]), int(e["start"]), int(e["end"])) for e in result]


class NerTask(EvalTask):
    endpoint: ClassVar[str] = "/ner"
    pipeline_task: ClassVar[str] = "token-classification"
    metric_names: ClassVar[tuple[str, ...]] = ("f1",)

    layout: ClassVar[str] = "of CoNLL-2003 (TOKEN POS CHUNK NER lines)"
    record_shape: ClassVar[str] = '{"tokens": ["EU", "rejects", ...], "tags": ["B-ORG", "O", ...]}'

    def read(self, path: Path) -> list[Any]:
        return list(read_conll(path))

    def from_record(self, record: dict[str, Any], model: ModelInfo) -> TaggedSentence:
        words = record["tokens"]
        tags = record.get("tags", record.get("ner_tags", []))
        if not words or not all(isinstance(w, str) and w for w in words):
            raise TypeError("tokens must be a non-empty list of non-empty strings")
        if tags and (len(tags) != len(words) or not all(isinstance(t, str) for t in tags)):
            raise ValueError("tags must be one IOB2 tag string per token")
        return TaggedSentence(words=list(words), tags=list(tags))

    def labelled(self, example: TaggedSentence) -> bool:
        return bool(example.tags)

    def options(self, model: ModelInfo) -> dict[str, Any]:
        window = model.max_length - 2  # [CLS] and [SEP]
        return {
            "aggregation_strategy": "first",
            "ignore_labels": ["O"],
            "stride": min(STRIDE, window // 2),
        }

    def inputs(self, examples: Sequence[TaggedSentence]) -> list[Any]:
        return [join_words(s.words)[0] for s in examples]

    def decision(self, result: Any) -> Hashable:
        return frozenset(spans(result))

    def tags(self, examples: Sequence[TaggedSentence], results: Sequence[Any]) -> list[list[str]]:
        """Predicted IOB2 tags per sentence."""
        return [
            spans_to_tags(join_words(s.words)[1], spans(r)) for s, r in zip(examples, results, strict=True)
        ]

    def score(
        self, examples: Sequence[TaggedSentence], results: Sequence[Any], model: ModelInfo
    ) -> dict[str, float]:
        gold = [s.tags for s in examples]
        return {"f1": 100.0 * entity_f1(gold, self.tags(examples, results))}
