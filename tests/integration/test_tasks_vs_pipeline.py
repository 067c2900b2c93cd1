"""Our pre/post-processing, driven by the PyTorch head, against `transformers.pipeline`.

Same tiny checkpoint on both sides (random init, initializer_range 0.2 so predictions are
decisive); labels, spans, words and offsets must match exactly and scores within 1e-5.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.errors import InvalidInput
from app.tasks import TASKS
from app.tasks.base import ModelContext
from tests.tiny import build_tiny_checkpoint
from tests.torch_runner import context_for, load_head, serve

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-5
SMALL_WINDOW = 64  # NER chunks and QA windows stay cheap

TEXTS = [
    "Hugging Face Inc. is a company based in New York City.",
    "My name is Wolfgang and I live in Berlin; Sarah works at Siemens-Healthineers in München.",
    "Unbelievably, the microarchitecture's throughput doubled 🚀 overnight!!",
    "a",
]
LONG_TEXT = " ".join(
    f"In {1900 + i} Ada Lovelace met Charles Babbage at the Royal Society in London, "
    f"discussing the Analytical Engine number {i}."
    for i in range(20)
)  # about 450 tokens: many 64-token chunks, one 512-token window
HUGE_TEXT = f"{LONG_TEXT} {LONG_TEXT}"  # longer than 512 tokens
PAIRS = [
    {"text": "A man is eating pizza.", "text_pair": "Someone eats food."},
    {"text": "It rains in Paris.", "text_pair": "The streets of Paris are dry and sunny today."},
    {"text": "short", "text_pair": "pair"},
]
QUESTION = "Who discussed the Analytical Engine with Babbage?"
CONTEXT = (
    "Charles Babbage designed the Analytical Engine in 1837. Ada Lovelace, a mathematician, wrote the "
    "first published algorithm for it in 1843. Their correspondence, kept at the British Library in "
    "London, shows how the two discussed loops, conditional branching and the engine's store. Later, "
    "Alan Turing cited Lovelace's notes when he wrote about machine intelligence in 1950. The engine "
    "was never completed: funding ran out, and Babbage's son Henry built only a small part of the mill "
    "in 1910. A working Difference Engine No. 2 was finally assembled by the Science Museum in 1991, "
    "proving that the design, had it been built with the tolerances of the day, would have worked."
)


# -- fixtures ---------------------------------------------------------------------------------------


class Model:
    """A checkpoint with its ModelContext, its PyTorch head and its pipeline."""

    def __init__(self, task: str, path: Path, pipeline_task: str, **context: Any) -> None:
        self.task_name = task
        self.path = path
        self.context = context_for(path, task, **context)
        self.head = load_head(path)
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            path, model_max_length=self.context.manifest.max_length
        )
        self.pipe = transformers.pipeline(pipeline_task, model=self.head, tokenizer=tokenizer, device="cpu")

    def ours(self, batch_size: int = 1, **body: Any) -> Any:
        task = TASKS[self.task_name]
        request = task.request_model.model_validate(body)
        response, _ = serve(task, request, self.context, self.head, batch_size=batch_size)
        dumped = response.model_dump()
        assert dumped["model"] == self.context.name
        # what FastAPI does with a response_model: dump, validate again, serialise
        assert task.response_model.model_validate(dumped).model_dump() == dumped
        return dumped["results"]

    def prepared(self, **body: Any) -> Any:
        task = TASKS[self.task_name]
        return task.preprocess(task.request_model.model_validate(body), self.context)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {
        task: build_tiny_checkpoint(task, root / task, seed=i)
        for i, task in enumerate(["classify", "pair", "qa", "ner"])
    }


@pytest.fixture(scope="session")
def classify(checkpoints: dict[str, Path]) -> Model:
    return Model("classify", checkpoints["classify"], "text-classification")


@pytest.fixture(scope="session")
def pair(checkpoints: dict[str, Path]) -> Model:
    return Model("pair", checkpoints["pair"], "text-classification")


@pytest.fixture(scope="session")
def qa(checkpoints: dict[str, Path]) -> Model:
    return Model("qa", checkpoints["qa"], "question-answering")


@pytest.fixture(scope="session")
def ner(checkpoints: dict[str, Path]) -> Model:
    return Model("ner", checkpoints["ner"], "token-classification")


@pytest.fixture(scope="session")
def ner_small(checkpoints: dict[str, Path]) -> Model:
    """The NER head with a 64-token window: long texts become many chunks."""
    return Model("ner", checkpoints["ner"], "token-classification", max_length=SMALL_WINDOW)


# -- comparison ---------------------------------------------------------------------------------------


def assert_same(ours: Any, theirs: Any, path: str = "results") -> None:
    """Exact structure, labels, words and offsets; scores within TOLERANCE."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{path}: {ours!r} is not an object"
        assert set(ours) == set(theirs), f"{path}: keys {sorted(ours)} != {sorted(theirs)}"
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list), f"{path}: {ours!r} is not a list"
        assert len(ours) == len(theirs), f"{path}: {len(ours)} items != {len(theirs)}:\n{ours}\n{theirs}"
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(theirs, float) or type(theirs).__name__.startswith("float"):
        assert isinstance(ours, float), f"{path}: {ours!r} is not a number"
        assert math.isclose(ours, float(theirs), rel_tol=0, abs_tol=TOLERANCE), f"{path}: {ours} != {theirs}"
    else:
        assert type(ours) is type(theirs) or int(ours) == int(theirs), f"{path}: {ours!r} != {theirs!r}"
        assert ours == theirs, f"{path}: {ours!r} != {theirs!r}"


# -- classify and pair --------------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [1, 2, None])
@pytest.mark.parametrize("function_to_apply", [None, "softmax", "sigmoid", "none"])
def test_classify_matches_pipeline(classify: Model, top_k: int | None, function_to_apply: str | None) -> None:
    options: dict[str, Any] = {"top_k": top_k, "function_to_apply": function_to_apply}
    expected = classify.pipe(TEXTS, **options)
    assert_same(classify.ours(inputs=TEXTS, **options), expected)
    assert_same(classify.ours(inputs=TEXTS[0], **options), expected[0])  # a single text: a single result


@pytest.mark.parametrize("batch_size", [1, 3])
def test_classify_truncates_like_pipeline(classify: Model, batch_size: int) -> None:
    texts = [HUGE_TEXT, *TEXTS]
    expected = classify.pipe(texts, truncation=True, top_k=None)
    assert_same(classify.ours(inputs=texts, top_k=None, batch_size=batch_size), expected)


def test_classify_default_function_follows_problem_type(
    checkpoints: dict[str, Path], classify: Model
) -> None:
    multi_label = context_for(checkpoints["classify"], "classify", problem_type="multi_label_classification")
    task = TASKS["classify"]
    request = task.request_model.model_validate({"inputs": TEXTS, "top_k": None})
    response, _ = serve(task, request, multi_label, classify.head)
    expected = classify.pipe(TEXTS, top_k=None, function_to_apply="sigmoid")
    assert_same(response.model_dump()["results"], expected)


def test_classify_counts_truncated_inputs_and_refuses_them_without_truncation(classify: Model) -> None:
    assert classify.prepared(inputs=[*TEXTS, HUGE_TEXT, HUGE_TEXT]).truncated == 2
    assert max(item.length for item in classify.prepared(inputs=HUGE_TEXT).items) == 512
    with pytest.raises(InvalidInput, match="truncation=true"):
        classify.prepared(inputs=[TEXTS[0], HUGE_TEXT], truncation=False)
    assert classify.prepared(inputs=TEXTS, truncation=False).truncated == 0


@pytest.mark.parametrize("top_k", [1, 3, None])
@pytest.mark.parametrize("function_to_apply", [None, "sigmoid", "none"])
def test_pair_matches_pipeline(pair: Model, top_k: int | None, function_to_apply: str | None) -> None:
    options: dict[str, Any] = {"top_k": top_k, "function_to_apply": function_to_apply}
    expected = pair.pipe(PAIRS, truncation=True, **options)
    assert_same(pair.ours(inputs=PAIRS, **options), expected)
    assert_same(pair.ours(inputs=PAIRS[1], **options), pair.pipe(PAIRS[1], truncation=True, **options))


def test_pair_uses_two_segments(pair: Model) -> None:
    item = pair.prepared(inputs=PAIRS[0]).items[0]
    assert item.token_type_ids[0] == 0 and item.token_type_ids[-1] == 1


# -- question answering ---------------------------------------------------------------------------------


def pipeline_answers(qa: Model, top_k: int, **options: Any) -> Any:
    """The pipeline's answer, its one-answer dict made a list when top_k > 1 (our shape)."""
    result = qa.pipe(question=QUESTION, context=CONTEXT, top_k=top_k, **options)
    if top_k > 1 and isinstance(result, dict):
        return [result]
    return result


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"max_seq_len": SMALL_WINDOW, "doc_stride": 16},
        {"max_seq_len": SMALL_WINDOW},
        {"max_seq_len": SMALL_WINDOW, "doc_stride": 16, "handle_impossible_answer": True},
        {"max_seq_len": SMALL_WINDOW, "doc_stride": 8, "align_to_words": False, "max_answer_len": 4},
        {"max_seq_len": 40, "doc_stride": 5, "max_answer_len": 1},
        {"handle_impossible_answer": True, "align_to_words": False},
    ],
)
@pytest.mark.parametrize("top_k", [1, 3, 20])
def test_qa_matches_pipeline(qa: Model, options: dict[str, Any], top_k: int) -> None:
    expected = pipeline_answers(qa, top_k, **options)
    body = {"inputs": {"question": QUESTION, "context": CONTEXT}, "top_k": top_k, **options}
    assert_same(qa.ours(batch_size=1 if top_k == 1 else 4, **body), expected)  # padded batches too


@pytest.mark.parametrize("top_k", [1, 3])
def test_qa_impossible_answer_wins_when_cls_is_likely(qa: Model, top_k: int) -> None:
    def favour_cls(_module: Any, _inputs: Any, output: Any) -> Any:
        output = output.clone()
        output[:, 0, :] += 12.0  # both start and end logits of [CLS]
        return output

    hook = qa.head.qa_outputs.register_forward_hook(favour_cls)
    try:
        options = {"max_seq_len": SMALL_WINDOW, "doc_stride": 16, "handle_impossible_answer": True}
        expected = pipeline_answers(qa, top_k, **options)
        ours = qa.ours(
            inputs={"question": QUESTION, "context": CONTEXT}, top_k=top_k, batch_size=2, **options
        )
    finally:
        hook.remove()
    assert_same(ours, expected)
    best = ours if top_k == 1 else ours[0]
    assert (best["answer"], best["start"], best["end"]) == ("", 0, 0)


def test_qa_long_context_becomes_windows(qa: Model) -> None:
    prepared = qa.prepared(
        inputs={"question": QUESTION, "context": CONTEXT}, max_seq_len=SMALL_WINDOW, doc_stride=16
    )
    assert len(prepared.items) > 3
    assert all(item.length <= SMALL_WINDOW for item in prepared.items)
    assert prepared.truncated == 0


def test_qa_list_of_questions(qa: Model) -> None:
    questions = [QUESTION, "When was the Analytical Engine designed?", "Where is the British Library?"]
    contexts = [CONTEXT, CONTEXT, "The British Library is in London."]
    options = {"max_seq_len": SMALL_WINDOW, "doc_stride": 16, "top_k": 2}
    expected = qa.pipe(question=questions, context=contexts, **options)
    expected = [[answer] if isinstance(answer, dict) else answer for answer in expected]
    inputs = [{"question": q, "context": c} for q, c in zip(questions, contexts, strict=True)]
    assert_same(qa.ours(inputs=inputs, **options), expected)


def test_qa_rejects_windows_that_cannot_work(qa: Model) -> None:
    long_question = " ".join(["why"] * 70)
    with pytest.raises(InvalidInput, match="no room"):
        qa.prepared(inputs={"question": long_question, "context": CONTEXT}, max_seq_len=SMALL_WINDOW)
    with pytest.raises(InvalidInput, match="doc_stride"):
        qa.prepared(
            inputs={"question": QUESTION, "context": CONTEXT}, max_seq_len=SMALL_WINDOW, doc_stride=60
        )
    with pytest.raises(InvalidInput, match="doc_stride"):
        qa.prepared(
            inputs={"question": QUESTION, "context": CONTEXT}, max_seq_len=SMALL_WINDOW, doc_stride=80
        )
    with pytest.raises(ValidationError, match="less than or equal to 512"):
        qa.prepared(inputs={"question": QUESTION, "context": CONTEXT}, max_seq_len=1024)


# -- named entities ---------------------------------------------------------------------------------------


STRATEGIES = ["none", "simple", "first", "average", "max"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("ignore_labels", [None, []])
def test_ner_matches_pipeline(ner: Model, strategy: str, ignore_labels: list[str] | None) -> None:
    options: dict[str, Any] = {"aggregation_strategy": strategy}
    if ignore_labels is not None:
        options["ignore_labels"] = ignore_labels
    expected = ner.pipe(TEXTS, **options)
    assert_same(ner.ours(inputs=TEXTS, **options), expected)
    assert_same(ner.ours(inputs=TEXTS[1], batch_size=2, **options), expected[1])


@pytest.mark.parametrize("strategy", ["simple", "first", "average", "max"])
@pytest.mark.parametrize("stride", [16, None])
def test_ner_long_text_in_chunks_matches_pipeline_with_stride(
    ner_small: Model, strategy: str, stride: int | None
) -> None:
    window = SMALL_WINDOW - 2
    pipeline_stride = stride if stride is not None else min(128, window // 2)
    options = {"aggregation_strategy": strategy, "ignore_labels": []}
    expected = ner_small.pipe(LONG_TEXT, stride=pipeline_stride, **options)
    ours = ner_small.ours(inputs=LONG_TEXT, stride=stride, batch_size=3, **options)
    assert_same(ours, expected)
    assert ours[-1]["end"] > len(LONG_TEXT) - 10  # the end of the text is there: nothing truncated
    assert len(ner_small.prepared(inputs=LONG_TEXT, **options).items) > 5


def test_ner_none_on_a_long_text_keeps_every_token_once(ner_small: Model, ner: Model) -> None:
    """Chunked under `none`, the overlap is deduplicated and `index` counts in the whole text."""
    ours = ner_small.ours(inputs=LONG_TEXT, aggregation_strategy="none", ignore_labels=[])
    whole = ner.pipe(LONG_TEXT, aggregation_strategy="none", ignore_labels=[])  # fits in 512 tokens
    assert len(ner.prepared(inputs=LONG_TEXT).items) == 1
    assert [(e["index"], e["word"], e["start"], e["end"]) for e in ours] == [
        (e["index"], e["word"], e["start"], e["end"]) for e in whole
    ]


def test_ner_validates_stride(ner: Model) -> None:
    with pytest.raises(InvalidInput, match="aggregation_strategy"):
        ner.prepared(inputs=TEXTS[0], aggregation_strategy="none", stride=16)
    with pytest.raises(ValidationError, match="less than or equal to 255"):
        ner.prepared(inputs=TEXTS[0], stride=256)  # over half the longest window (510 tokens)
    assert len(ner.prepared(inputs=TEXTS[0], stride=255).items) == 1


def test_model_context_fields(ner: Model) -> None:
    context: ModelContext = ner.context
    assert context.encoder.cls_token_id == 101
    assert context.encoder.unk_token_id == 100
    assert context.encoder.continuing_subword_prefix == "##"
    assert (context.encoder.special_tokens_single, context.encoder.special_tokens_pair) == (2, 3)
