"""/qa on SQuAD v1.1: exact match and F1 with the official normalisation (training.metrics)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tools.evaluation.tasks.base import EvalTask, ModelInfo
from tools.training.data import QAExample, read_squad
from tools.training.metrics import squad_evaluate

# QuestionAnsweringPipeline's defaults, spelled out so both sides get them explicitly.
MAX_SEQ_LEN = 384
DOC_STRIDE = 128
MAX_ANSWER_LEN = 15
MAX_QUESTION_LEN = 64


def best_answer(result: Any) -> dict[str, Any]:
    """The first answer of a result (an object for top_k 1, else a list)."""
    answer = result[0] if isinstance(result, list) else result
    return dict(answer)


class QATask(EvalTask):
    endpoint: ClassVar[str] = "/qa"
    pipeline_task: ClassVar[str] = "question-answering"
    metric_names: ClassVar[tuple[str, ...]] = ("exact_match", "f1")

    def read(self, path: Path) -> list[Any]:
        return list(read_squad(path))

    def options(self, model: ModelInfo) -> dict[str, Any]:
        max_seq_len = min(MAX_SEQ_LEN, model.max_length)
        return {
            "top_k": 1,
            "max_seq_len": max_seq_len,
            "doc_stride": min(DOC_STRIDE, max_seq_len // 2),
            "max_answer_len": MAX_ANSWER_LEN,
            "max_question_len": MAX_QUESTION_LEN,
            "handle_impossible_answer": False,
            "align_to_words": True,
        }

    def inputs(self, examples: Sequence[QAExample]) -> list[Any]:
        return [{"question": e.question, "context": e.context} for e in examples]

    def run_pipeline(
        self, pipe: Any, inputs: list[Any], options: dict[str, Any], batch_size: int
    ) -> list[Any]:
        questions = [i["question"] for i in inputs]
        contexts = [i["context"] for i in inputs]
        results = pipe(question=questions, context=contexts, batch_size=batch_size, **options)
        return list(results) if isinstance(results, list) else [results]

    def decision(self, result: Any) -> Hashable:
        answer = best_answer(result)
        return int(answer["start"]), int(answer["end"])

    def score(
        self, examples: Sequence[QAExample], results: Sequence[Any], model: ModelInfo
    ) -> dict[str, float]:
        predictions = {e.id: str(best_answer(r)["answer"]) for e, r in zip(examples, results, strict=True)}
        scores = squad_evaluate({e.id: e.answers for e in examples}, predictions)
        return {name: scores[name] for name in self.metric_names}
