"""/qa on SQuAD v1.1: exact match and F1 with the official normalisation (export.evaluation.metrics)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from export.evaluation.datasets import QAExample, read_squad
from export.evaluation.metrics import squad_evaluate
from export.evaluation.tasks.base import EvalTask, ModelInfo

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

    layout: ClassVar[str] = "of SQuAD v1.1 (JSON: data[].paragraphs[].qas[])"
    record_shape: ClassVar[str] = '{"question": "...", "context": "...", "answers": ["...", ...]}'

    def read(self, path: Path) -> list[Any]:
        return list(read_squad(path))

    def from_record(self, record: dict[str, Any], model: ModelInfo) -> QAExample:
        question, context = record["question"], record["context"]
        if not isinstance(question, str) or not isinstance(context, str):
            raise TypeError("question and context must be strings")
        answers = record.get("answers") or []
        if isinstance(answers, dict):  # Hugging Face datasets: {"text": [...], "answer_start": [...]}
            answers = list(answers.get("text", []))
        texts = [a["text"] if isinstance(a, dict) else a for a in answers]
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("answers must be strings or objects with a text")
        return QAExample(
            id=str(record.get("id", "")), question=question, context=context, answers=texts, answer_starts=[]
        )

    def labelled(self, example: QAExample) -> bool:
        return bool(example.answers)

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
        # keyed by position: ids are optional in JSONL and need not be unique
        predictions = {str(i): str(best_answer(r)["answer"]) for i, r in enumerate(results)}
        scores = squad_evaluate({str(i): e.answers for i, e in enumerate(examples)}, predictions)
        return {name: scores[name] for name in self.metric_names}
