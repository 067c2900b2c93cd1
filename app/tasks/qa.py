"""POST /qa: extractive answers (`pipeline("question-answering")` with a fast tokenizer).

A context longer than the window becomes several windows (one item each): the question, then
a slice of the context, consecutive slices overlapping by `doc_stride` tokens. The answers of
all windows are merged as in the pipeline (same text adds up its scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, Strict
from tokenizers import Encoding

from app.contract.items import ItemOutputs
from app.errors import InvalidInput
from app.tasks.base import ModelContext, Prepared, Task
from app.tasks.common import (
    LONGEST_WINDOW,
    WHOLE,
    ClosedModel,
    NonEmptyList,
    TaskRequest,
    TaskResponse,
    Text,
    as_list,
    check_window_budget,
    mirror,
    outputs_per_input,
    prepare_windows,
    windows_needed,
)
from app.tasks.qa_spans import get_indices, select_starts_ends
from app.tasks.tensors import Rows, TensorMapping

DEFAULT_MAX_SEQ_LEN = 384
DEFAULT_DOC_STRIDE = 128
DEFAULT_MAX_ANSWER_LEN = 15  # tokens, the pipeline's default
MAX_TOP_K = 100
"""Most answers per question: the spans decoded and de-duplicated per window grow with it."""
MAX_DOC_STRIDE = LONGEST_WINDOW // 2
"""doc_stride is at most half of max_seq_len: consecutive windows advance by half a window or more."""
CONTEXT = 1  # sequence index of the context: question first (right-padding tokenizers, as BERT's)


class QAInput(ClosedModel):
    question: Text = Field(description="the question")
    context: Text = Field(description="the text to find the answer in; answers' start/end index it")


class QARequest(TaskRequest):
    """`QuestionAnsweringPipeline`'s options, with its defaults."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "inputs": {
                        "question": "Where do I live?",
                        "context": "My name is Wolfgang and I live in Berlin",
                    }
                },
                {
                    "inputs": [{"question": "Who wrote it?", "context": "It was written by Ada in 1843."}],
                    "top_k": 3,
                    "handle_impossible_answer": True,
                },
            ]
        }
    )

    inputs: QAInput | Annotated[list[QAInput], NonEmptyList] = Field(
        description='a {"question", "context"} object, or a list of them (the results mirror it)'
    )
    top_k: Annotated[int, Strict(), Field(ge=1, le=MAX_TOP_K), WHOLE] = Field(
        1,
        description=f"answers per question, best first (at most {MAX_TOP_K}); above 1 the answer is a list",
    )
    doc_stride: Annotated[int, Strict(), Field(ge=0, le=MAX_DOC_STRIDE), WHOLE] | None = Field(
        None,
        description="tokens of overlap between consecutive windows of a long context, at most half of "
        "max_seq_len and less than the room the question leaves in a window (else 422); null: "
        "min(max_seq_len // 2, 128), the pipeline's default",
    )
    max_answer_len: Annotated[int, Strict(), Field(ge=1, le=LONGEST_WINDOW), WHOLE] = Field(
        DEFAULT_MAX_ANSWER_LEN,
        description=f"longest answer, in tokens (at most {LONGEST_WINDOW})",
    )
    max_seq_len: Annotated[int, Strict(), Field(ge=1, le=LONGEST_WINDOW), WHOLE] | None = Field(
        None,
        description="tokens per window (question + context + special tokens), at most the model's maximum "
        "length (max_length in GET /v1/models; else 422), with room for the question's tokens and one of "
        "the context (else 422); null: min(384, the model's maximum length), the pipeline's default",
    )
    max_question_len: Annotated[int, Strict(), Field(ge=1, le=LONGEST_WINDOW), WHOLE] = Field(
        64,
        description="accepted for compatibility; like the pipeline with a fast tokenizer it has no "
        "effect (a question that leaves no room for the context is rejected)",
    )
    handle_impossible_answer: bool = Field(
        False,
        strict=True,
        description='allow the empty answer ("", start 0, end 0) when the model prefers it',
    )
    align_to_words: bool = Field(
        True, strict=True, description="widen answers to whole words (false keeps token boundaries)"
    )


class QAAnswer(BaseModel):
    score: float = Field(description="probability of the span (summed over windows giving the same text)")
    start: int = Field(description="character index of the answer's start in the context")
    end: int = Field(description="character index just past the answer's end in the context")
    answer: str = Field(description="context[start:end]")


class QAResponse(TaskResponse):
    results: QAAnswer | list[QAAnswer] | list[list[QAAnswer]] = Field(
        description="per input, the best answer (top_k 1) or a list of up to top_k answers; "
        "a list of those for a list of inputs",
        examples=[{"score": 0.9191, "start": 34, "end": 40, "answer": "Berlin"}],
    )


@dataclass(frozen=True, slots=True)
class Window:
    encoding: Encoding
    p_mask: np.ndarray  # int64 [1, length]: 1 where a token cannot be in the answer


@dataclass(frozen=True, slots=True)
class Question:
    context: str
    windows: list[Window]

    @property
    def encodings(self) -> list[Encoding]:
        return [window.encoding for window in self.windows]


@dataclass(slots=True)
class _Answer:
    score: float
    start: int
    end: int
    answer: str


def window_limits(request: QARequest, model_max_length: int) -> tuple[int, int]:
    """max_seq_len and doc_stride as the pipeline resolves them, checked against the model."""
    max_seq_len = request.max_seq_len
    if max_seq_len is None:
        max_seq_len = min(model_max_length, DEFAULT_MAX_SEQ_LEN)
    elif max_seq_len > model_max_length:
        raise InvalidInput(
            f"max_seq_len ({max_seq_len}) exceeds the model's maximum length ({model_max_length})"
        )
    doc_stride = request.doc_stride
    if doc_stride is None:
        doc_stride = min(max_seq_len // 2, DEFAULT_DOC_STRIDE)
    elif doc_stride > max_seq_len // 2:
        raise InvalidInput(
            f"doc_stride ({doc_stride}) must be at most half of max_seq_len ({max_seq_len}): "
            f"{max_seq_len // 2}"
        )
    return max_seq_len, doc_stride


def p_mask_of(encoding: Encoding, cls_token_id: int | None) -> np.ndarray:
    """1 for question and special tokens, 0 for the context; the CLS token stays answerable."""
    mask = np.array([[int(seq != CONTEXT) for seq in encoding.sequence_ids]], dtype=np.int64)
    if cls_token_id is not None:
        mask[0, np.asarray(encoding.ids) == cls_token_id] = 0
    return mask


@dataclass(frozen=True, slots=True)
class Tokenized:
    """One question and its context encoded whole, and how many windows they need."""

    qa: QAInput
    whole: Encoding
    windows: int


def count_windows(model: ModelContext, whole: Encoding, max_seq_len: int, doc_stride: int) -> int:
    """The windows the pipeline's fast-tokenizer path makes of one encoded question and context."""
    if len(whole.ids) <= max_seq_len:
        return 1
    question_tokens = whole.sequence_ids.count(0)
    room = max_seq_len - model.encoder.special_tokens_pair - question_tokens
    if room <= 0:
        raise InvalidInput(
            f"the question is {question_tokens} tokens long and leaves no room for the context "
            f"in max_seq_len={max_seq_len}"
        )
    if doc_stride >= room:
        raise InvalidInput(
            f"doc_stride ({doc_stride}) must be smaller than the room the question leaves for the context "
            f"in each window ({room} tokens of max_seq_len={max_seq_len})"
        )
    context_tokens = len(whole.ids) - model.encoder.special_tokens_pair - question_tokens
    return windows_needed(context_tokens, room, doc_stride)


def split_windows(model: ModelContext, one: Tokenized, max_seq_len: int, doc_stride: int) -> list[Encoding]:
    """The windows of one question, as the pipeline's fast-tokenizer path makes them."""
    if len(one.whole.ids) <= max_seq_len:
        return [one.whole]  # what the truncating call returns when nothing needs cutting
    first = model.encoder.encode(
        one.qa.question, one.qa.context, max_length=max_seq_len, stride=doc_stride, strategy="only_second"
    )
    return [first, *first.overflowing]


class QATask(Task[QARequest, QAResponse]):
    name = "qa"
    summary = "Answer questions from a context, like transformers' question-answering pipeline"
    request_model: ClassVar[type[BaseModel]] = QARequest
    response_model: ClassVar[type[BaseModel]] = QAResponse
    output_names: ClassVar[tuple[str, ...]] = ("start_logits", "end_logits")
    tensors: ClassVar[TensorMapping] = Rows(
        ("question", "context"),
        (("answer", "BYTES"), ("score", "FP32"), ("start", "INT64"), ("end", "INT64")),
        count_name="answer_count",
    )

    def input_count(self, request: QARequest) -> int:
        return len(as_list(request.inputs))

    def texts(self, request: QARequest) -> list[str]:
        return [text for qa in as_list(request.inputs) for text in (qa.question, qa.context)]

    def preprocess(self, request: QARequest, model: ModelContext, max_windows: int | None = None) -> Prepared:
        max_seq_len, doc_stride = window_limits(request, model.manifest.max_length)
        tokenized = []
        for qa in as_list(request.inputs):
            whole = model.encoder.encode(qa.question, qa.context, max_length=None)
            tokenized.append(Tokenized(qa, whole, count_windows(model, whole, max_seq_len, doc_stride)))
        check_window_budget(model.name, sum(one.windows for one in tokenized), max_windows)
        questions: list[Question] = []
        for one in tokenized:
            encodings = split_windows(model, one, max_seq_len, doc_stride)
            windows = [Window(e, p_mask_of(e, model.encoder.cls_token_id)) for e in encodings]
            questions.append(Question(one.qa.context, windows))
        return prepare_windows(questions)

    def postprocess_work(self, request: QARequest, prepared: Prepared) -> int:
        """The windows' tokens plus the spans decoded in each (top_k grows them)."""
        return super().postprocess_work(request, prepared) + len(prepared.items) * spans_per_window(request)

    def postprocess(
        self,
        request: QARequest,
        prepared: Prepared,
        outputs: Sequence[ItemOutputs],
        model: ModelContext,
    ) -> QAResponse:
        questions: list[Question] = prepared.plan
        results: list[QAAnswer | list[QAAnswer]] = []
        for question, window_outputs in outputs_per_input(questions, outputs):
            answers = answer_question(request, question, window_outputs)
            if request.top_k > 1:
                results.append(answers)
            else:  # no answer at all cannot happen with a context: CLS always survives decode_spans
                results.append(answers[0] if answers else QAAnswer(score=0.0, start=0, end=0, answer=""))
        return QAResponse(model=model.name, results=mirror(results, isinstance(request.inputs, QAInput)))


def spans_per_window(request: QARequest) -> int:
    """How many spans each window decodes: more than top_k when aligning to words, as in the pipeline."""
    return request.top_k * 2 + 10 if request.align_to_words else request.top_k


def answer_question(request: QARequest, question: Question, outputs: Sequence[ItemOutputs]) -> list[QAAnswer]:
    """`QuestionAnsweringPipeline.postprocess` over one question's windows (fast-tokenizer path).

    Spans of the same text (case-insensitive) add up their scores on the first one seen, as in the
    pipeline; a dict keyed by that text keeps this linear in the spans and keeps first-seen order."""
    min_null_score = 1000000.0  # large and positive
    answers: dict[str, _Answer] = {}
    context = question.context
    pre_topk = spans_per_window(request)
    for window, out in zip(question.windows, outputs, strict=True):
        start_logits = out["start_logits"][None, :]
        end_logits = out["end_logits"][None, :]
        attention_mask = np.ones_like(window.p_mask)
        starts, ends, scores, min_null_score = select_starts_ends(
            start_logits,
            end_logits,
            window.p_mask,
            attention_mask,
            min_null_score=min_null_score,
            top_k=pre_topk,
            handle_impossible_answer=request.handle_impossible_answer,
            max_answer_len=request.max_answer_len,
        )
        for s, e, score in zip(starts, ends, scores, strict=True):
            start_index, end_index = get_indices(
                window.encoding, int(s), int(e), CONTEXT, request.align_to_words
            )
            target = context[start_index:end_index]
            key = target.lower()
            same = answers.get(key)
            if same is not None:
                same.score += score.item()
            else:
                answers[key] = _Answer(score.item(), start_index, end_index, target)
    ranked = list(answers.values())
    if request.handle_impossible_answer:
        ranked.append(_Answer(min_null_score, 0, 0, ""))  # never merged, as in the pipeline
    ranked = sorted(ranked, key=lambda a: a.score, reverse=True)[: request.top_k]
    return [QAAnswer(score=a.score, start=a.start, end=a.end, answer=a.answer) for a in ranked]
