"""Every option that scales a request's work is bounded, in both body formats and on v2, and a
request's windows are counted from its tokens and refused (413) before any window is built."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError
from tokenizers import Encoding

from app.api.huggingface import hf_request_model, parameters_model
from app.contract.items import ItemOutputs
from app.errors import InvalidInput, TooManyItems
from app.runtime.tokenizer import TextEncoder, TruncationStrategy
from app.service import INLINE_POSTPROCESS_WORK
from app.settings import Settings
from app.tasks import TASKS
from app.tasks.base import ModelContext, Prepared
from app.tasks.common import windows_needed
from app.tasks.ner import NERRequest, NERTask
from app.tasks.qa import QARequest, QATask, Question, answer_question
from app.tasks.qa_spans import get_indices, select_starts_ends
from tests.torch_runner import minilm_context
from tools.bench.model import minilm_dir

LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
LONG_TEXT = ("Ada Lovelace met Charles Babbage in London. " * 400)[:16_000]  # the 16,000 characters
PUNCTUATION = "!" * 16_000  # one token a character
QA_INPUT = {"question": "Who met Babbage?", "context": LONG_TEXT}


class CountingEncoder(TextEncoder):
    """The real tokenizer, recording the truncating calls: each one builds windows."""

    def __init__(self, tokenizer_json: str, special_tokens: Any = None) -> None:
        super().__init__(tokenizer_json, special_tokens)
        self.window_calls = 0

    def encode(
        self,
        text: str,
        pair: str | None = None,
        *,
        max_length: int | None,
        stride: int = 0,
        strategy: TruncationStrategy = "longest_first",
    ) -> Encoding:
        if max_length is not None:
            self.window_calls += 1
        return super().encode(text, pair, max_length=max_length, stride=stride, strategy=strategy)


def counting_context(task: str, max_length: int = 512) -> tuple[ModelContext, CountingEncoder]:
    plain = minilm_context(task, id2label=LABELS if task == "ner" else None, max_length=max_length)
    encoder = CountingEncoder.from_file(minilm_dir() / "tokenizer.json")
    assert isinstance(encoder, CountingEncoder)
    return ModelContext(plain.name, plain.manifest, encoder), encoder


def rejected_everywhere(task_name: str, inputs: Any, options: dict[str, Any]) -> None:
    """The options are refused by the bertserve body, the Hugging Face body and v2's parameters."""
    task = TASKS[task_name]
    models: list[tuple[type[BaseModel], dict[str, Any]]] = [
        (task.request_model, {"inputs": inputs, **options}),
        (hf_request_model(task), {"inputs": inputs, "parameters": options}),
        (parameters_model(task), options),
    ]
    for model, body in models:
        with pytest.raises(ValidationError):
            model.model_validate(body)


# -- option bounds, declared in the request models -----------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 100_000},
        {"top_k": 101},
        {"max_answer_len": 10**30},
        {"max_answer_len": 513},
        {"doc_stride": 10**30},
        {"doc_stride": 257},
        {"max_seq_len": 10**30},
        {"max_seq_len": 513},
        {"max_question_len": 10**30},
    ],
)
def test_qa_options_that_scale_work_are_bounded(options: dict[str, Any]) -> None:
    rejected_everywhere("qa", QA_INPUT, options)


def test_qa_options_at_their_bounds_are_accepted() -> None:
    body = {
        "top_k": 100,
        "max_answer_len": 512,
        "max_seq_len": 512,
        "doc_stride": 256,
        "max_question_len": 512,
    }
    QARequest.model_validate({"inputs": QA_INPUT, **body})
    parameters_model(TASKS["qa"]).model_validate(body)


@pytest.mark.parametrize(
    "options",
    [
        {"stride": 509},  # the window less one: consecutive windows one token apart
        {"stride": 10**30},
        {"ignore_labels": ["O"] * 400_000},
        {"ignore_labels": [str(i) for i in range(257)]},
        {"ignore_labels": ["X" * 129]},
    ],
)
def test_ner_options_that_scale_work_are_bounded(options: dict[str, Any]) -> None:
    rejected_everywhere("ner", LONG_TEXT, options)


def test_ner_options_at_their_bounds_are_accepted() -> None:
    labels = [f"{i:03d}" + "X" * 125 for i in range(256)]
    request = NERRequest.model_validate({"inputs": "a", "stride": 255, "ignore_labels": labels})
    assert len(request.ignore_labels) == 256
    rejected_everywhere("ner", "a", {"stride": 256})  # over half of a 512-token model's window


@pytest.mark.parametrize("task_name", ["classify", "pair"])
def test_classification_top_k_is_bounded(task_name: str) -> None:
    inputs = "a" if task_name == "classify" else {"text": "a", "text_pair": "b"}
    rejected_everywhere(task_name, inputs, {"top_k": 100_000})
    TASKS[task_name].request_model.model_validate({"inputs": inputs, "top_k": 1000})
    TASKS[task_name].request_model.model_validate({"inputs": inputs, "top_k": None})  # every label


def test_the_schema_shows_the_bounds() -> None:
    qa = QARequest.model_json_schema()["properties"]
    assert qa["top_k"]["maximum"] == 100
    assert qa["max_answer_len"]["maximum"] == 512
    ner = NERRequest.model_json_schema()["properties"]
    assert ner["ignore_labels"]["maxItems"] == 256
    assert ner["ignore_labels"]["items"]["maxLength"] == 128


# -- strides checked against the model, before tokenizing ---------------------------------------------------


def test_ner_stride_over_half_the_models_window_is_422_before_any_window() -> None:
    context, encoder = counting_context("ner", max_length=128)  # a window of 126 tokens
    request = NERRequest.model_validate({"inputs": LONG_TEXT, "stride": 125})
    with pytest.raises(InvalidInput, match="at most half the model's window of 126 tokens"):
        NERTask().preprocess(request, context, max_windows=512)
    assert encoder.window_calls == 0


def test_qa_doc_stride_over_half_max_seq_len_is_422_before_any_window() -> None:
    context, encoder = counting_context("qa")
    request = QARequest.model_validate({"inputs": QA_INPUT, "max_seq_len": 64, "doc_stride": 63})
    with pytest.raises(InvalidInput, match="doc_stride"):
        QATask().preprocess(request, context, max_windows=512)
    assert encoder.window_calls == 0


@pytest.mark.parametrize("max_length", [64, 128, 384, 512])
def test_qa_default_doc_stride_stays_valid(max_length: int) -> None:
    context = minilm_context("qa", max_length=max_length)
    request = QARequest.model_validate({"inputs": QA_INPUT})
    prepared = QATask().preprocess(request, context, max_windows=512)
    assert len(prepared.items) > 1


# -- windows counted before they are built -------------------------------------------------------------------


def test_ner_windows_over_the_budget_are_413_before_any_window() -> None:
    context, encoder = counting_context("ner", max_length=64)  # half-window stride: steps of 31 tokens
    request = NERRequest.model_validate({"inputs": PUNCTUATION, "stride": 31})
    with pytest.raises(TooManyItems, match=r"needs 516 windows after tokenization; at most 512 are allowed"):
        NERTask().preprocess(request, context, max_windows=512)
    assert encoder.window_calls == 0


def test_qa_windows_over_the_budget_are_413_before_any_window() -> None:
    context, encoder = counting_context("qa")
    body = {"inputs": [{"question": "Who?", "context": PUNCTUATION}], "max_seq_len": 64, "doc_stride": 32}
    with pytest.raises(TooManyItems, match=r"needs \d+ windows after tokenization; at most 512") as error:
        QATask().preprocess(QARequest.model_validate(body), context, max_windows=512)
    assert encoder.window_calls == 0
    needed = int(error.value.message.split("needs ")[1].split(" ")[0])
    assert needed == windows_needed(16_000, 64 - 3 - 2, 32)


def test_the_budget_is_per_request_across_inputs() -> None:
    context = minilm_context("qa")
    body = {"inputs": [QA_INPUT] * 3, "max_seq_len": 64, "doc_stride": 32}
    request = QARequest.model_validate(body)
    one = len(QATask().preprocess(QARequest.model_validate({**body, "inputs": [QA_INPUT]}), context).items)
    assert len(QATask().preprocess(request, context, max_windows=3 * one).items) == 3 * one
    with pytest.raises(TooManyItems, match=f"needs {3 * one} windows"):
        QATask().preprocess(request, context, max_windows=3 * one - 1)


def test_the_default_budget_fits_a_long_document() -> None:
    budget = Settings().max_windows_per_request
    document = ("Ada Lovelace met Charles Babbage in London. " * 2000)[: Settings().max_text_chars]
    qa = QARequest.model_validate({"inputs": {"question": "Who met Babbage?", "context": document}})
    assert len(QATask().preprocess(qa, minilm_context("qa"), max_windows=budget).items) <= budget
    ner = NERRequest.model_validate({"inputs": document})
    ner_context = minilm_context("ner", id2label=LABELS)
    assert len(NERTask().preprocess(ner, ner_context, max_windows=budget).items) <= budget


@pytest.mark.parametrize("max_length", [16, 64, 512])
@pytest.mark.parametrize("stride_share", [0, 4, 2])
@pytest.mark.parametrize("words", [1, 7, 60, 333])
def test_ner_counted_windows_are_the_windows_built(max_length: int, stride_share: int, words: int) -> None:
    context = minilm_context("ner", id2label=LABELS, max_length=max_length)
    window = max_length - 2
    stride = window // stride_share if stride_share else 0
    text = " ".join(f"w{i}" for i in range(words))
    prepared = NERTask().preprocess(NERRequest.model_validate({"inputs": text, "stride": stride}), context)
    tokens = len(context.encoder.encode(text, max_length=None).ids) - 2
    assert len(prepared.items) == windows_needed(tokens, window, stride)


@pytest.mark.parametrize("max_seq_len", [24, 64, 384])
@pytest.mark.parametrize("doc_stride", [0, 5, 12])
@pytest.mark.parametrize("words", [1, 9, 80, 400])
def test_qa_counted_windows_are_the_windows_built(max_seq_len: int, doc_stride: int, words: int) -> None:
    context = minilm_context("qa")
    qa = {"question": "who is it?", "context": " ".join(f"w{i}" for i in range(words))}
    body = {"inputs": qa, "max_seq_len": max_seq_len, "doc_stride": doc_stride}
    prepared = QATask().preprocess(QARequest.model_validate(body), context)
    whole = context.encoder.encode(qa["question"], qa["context"], max_length=None)
    room = max_seq_len - 3 - whole.sequence_ids.count(0)
    context_tokens = whole.sequence_ids.count(1)
    assert len(prepared.items) == windows_needed(context_tokens, room, doc_stride)


def test_windows_needed() -> None:
    assert windows_needed(10, 10, 0) == 1
    assert windows_needed(11, 10, 0) == 2
    assert windows_needed(11, 10, 9) == 2
    assert windows_needed(12, 10, 9) == 3
    assert windows_needed(16_000, 126, 63) == 253


# -- post-processing bounded ---------------------------------------------------------------------------


def pipeline_answers(request: QARequest, question: Question, outputs: list[ItemOutputs]) -> list[Any]:
    """The pipeline's own de-duplication (a scan of the answers so far per span), as the reference."""
    min_null_score = 1000000.0
    answers: list[dict[str, Any]] = []
    pre_topk = request.top_k * 2 + 10 if request.align_to_words else request.top_k
    for window, out in zip(question.windows, outputs, strict=True):
        starts, ends, scores, min_null_score = select_starts_ends(
            out["start_logits"][None, :],
            out["end_logits"][None, :],
            window.p_mask,
            np.ones_like(window.p_mask),
            min_null_score=min_null_score,
            top_k=pre_topk,
            handle_impossible_answer=request.handle_impossible_answer,
            max_answer_len=request.max_answer_len,
        )
        for s, e, score in zip(starts, ends, scores, strict=True):
            start, end = get_indices(window.encoding, int(s), int(e), 1, request.align_to_words)
            target = question.context[start:end]
            same = next((a for a in answers if a["answer"].lower() == target.lower()), None)
            if same is not None:
                same["score"] += score.item()
            else:
                answers.append({"score": score.item(), "start": start, "end": end, "answer": target})
    if request.handle_impossible_answer:
        answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
    return sorted(answers, key=lambda a: a["score"], reverse=True)[: request.top_k]


def random_outputs(prepared: Prepared, seed: int) -> list[ItemOutputs]:
    rng = np.random.default_rng(seed)
    return [
        {
            "start_logits": rng.normal(size=item.length).astype(np.float32),
            "end_logits": rng.normal(size=item.length).astype(np.float32),
        }
        for item in prepared.items
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 100},
        {"top_k": 100, "handle_impossible_answer": True},
        {"top_k": 37, "align_to_words": False, "max_answer_len": 3},
        {"top_k": 1},
    ],
)
def test_qa_deduplication_is_the_pipelines(options: dict[str, Any]) -> None:
    context = minilm_context("qa")
    text = "Ada met Babbage. ADA met babbage. The Engine, the engine; THE ENGINE! " * 12
    body = {
        "inputs": {"question": "who met?", "context": text},
        "max_seq_len": 64,
        "doc_stride": 16,
        **options,
    }
    request = QARequest.model_validate(body)
    prepared = QATask().preprocess(request, context)
    assert len(prepared.items) > 5
    for seed in range(3):
        outputs = random_outputs(prepared, seed)
        ours = [a.model_dump() for a in answer_question(request, prepared.plan[0], outputs)]
        assert ours == pipeline_answers(request, prepared.plan[0], outputs)  # same order, same sums


def test_large_post_processing_leaves_the_event_loop() -> None:
    qa_context = minilm_context("qa")
    task = QATask()
    small = QARequest.model_validate({"inputs": {"question": "who?", "context": "Ada did."}})
    assert task.postprocess_work(small, task.preprocess(small, qa_context)) <= INLINE_POSTPROCESS_WORK
    short_text = "Ada met Babbage in London. " * 20  # 540 characters: tokenized on the loop
    many = QARequest.model_validate(
        {
            "inputs": {"question": "who?", "context": short_text},
            "max_seq_len": 24,
            "doc_stride": 12,
            "top_k": 100,
        }
    )
    assert task.postprocess_work(many, task.preprocess(many, qa_context)) > INLINE_POSTPROCESS_WORK
    ner_context = minilm_context("ner", id2label=LABELS)
    punctuation = NERRequest.model_validate({"inputs": "!" * 1990})  # under 2000 characters, 1990 tokens
    ner = NERTask()
    assert (
        ner.postprocess_work(punctuation, ner.preprocess(punctuation, ner_context)) > INLINE_POSTPROCESS_WORK
    )
