"""/ner on CoNLL-2003: entity-level F1 (seqeval, conlleval mode, as the training head scores it).

Each sentence is its tokens joined with single spaces, tagged with aggregation_strategy "first"
(a word takes its first sub-token's label, as the head was trained); the entity spans become
word tags again as `evaluation.tasks.conll` describes. Agreement: the same set of
(group, start, end) per sentence.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tools.evaluation.tasks.base import EvalTask, ModelInfo
from tools.evaluation.tasks.conll import Span, join_words, spans_to_tags
from tools.training.data import TaggedSentence, read_conll

STRIDE = 128  # the server's default overlap for a text longer than the window, given to both sides


def spans(result: Any) -> list[Span]:
    """(group, start, end) of each grouped entity of one result."""
    return [(str(e["entity_group"]), int(e["start"]), int(e["end"])) for e in result]


class NerTask(EvalTask):
    endpoint: ClassVar[str] = "/ner"
    pipeline_task: ClassVar[str] = "token-classification"
    metric_names: ClassVar[tuple[str, ...]] = ("f1",)

    def read(self, path: Path) -> list[Any]:
        return list(read_conll(path))

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
        from seqeval.metrics import f1_score

        gold = [s.tags for s in examples]
        return {"f1": 100.0 * float(f1_score(gold, self.tags(examples, results)))}
