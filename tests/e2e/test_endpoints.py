"""A real server process answers like `transformers.pipeline` on the same checkpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

SCORE_TOL = 1e-4  # ORT fp32 against PyTorch fp32

TEXTS = [
    "The film was a quiet triumph, patient and generous with its characters.",
    "Terrible.",
    "I waited forty minutes for a cold sandwich and the staff shrugged when I asked about it.",
]
PAIRS = [
    {"text": "A man is playing a guitar on stage.", "text_pair": "Someone performs music for a crowd."},
    {"text": "The bank raised interest rates on Tuesday.", "text_pair": "Rates went down this week."},
]
NER_TEXT = "Angela Merkel met Emmanuel Macron in Paris before flying back to Berlin with Lufthansa."
CONTEXT = (
    "The Amazon rainforest covers much of the Amazon basin of South America. The basin spans "
    "seven million square kilometres, of which five and a half million are covered by the rainforest. "
    "The region includes territory belonging to nine nations. The majority of the forest is contained "
    "within Brazil, with sixty percent of the rainforest, followed by Peru with thirteen percent and "
    "Colombia with ten percent. The rainforest was first described by European explorers in the "
    "sixteenth century, and it has been studied by scientists ever since."
)


@pytest.fixture(scope="module")
def pipelines(tiny_checkpoints: dict[str, Path]) -> dict[str, Any]:
    from transformers import pipeline

    kinds = {
        "classify": "text-classification",
        "pair": "text-classification",
        "qa": "question-answering",
        "ner": "token-classification",
    }
    return {
        task: pipeline(kinds[task], model=str(path), tokenizer=str(path), device=-1)
        for task, path in tiny_checkpoints.items()
    }


def post(url: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{url}{path}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def assert_same(ours: Any, reference: Any) -> None:
    """Equal structure and strings; numbers within SCORE_TOL."""
    if isinstance(reference, dict):
        assert set(ours) == set(reference), (ours, reference)
        for key in reference:
            assert_same(ours[key], reference[key])
    elif isinstance(reference, list):
        assert len(ours) == len(reference), (ours, reference)
        for a, b in zip(ours, reference, strict=True):
            assert_same(a, b)
    elif isinstance(reference, float):
        assert ours == pytest.approx(reference, abs=SCORE_TOL)
    elif hasattr(reference, "item"):
        assert_same(ours, reference.item())
    else:
        assert ours == reference


def test_health_and_models(live_url: str) -> None:
    assert httpx.get(f"{live_url}/health/live").json() == {"status": "alive"}
    ready = httpx.get(f"{live_url}/health/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    models = {m["name"]: m for m in httpx.get(f"{live_url}/v1/models").json()["models"]}
    assert set(models) == {"tiny-classify", "tiny-pair", "tiny-qa", "tiny-ner"}
    for model in models.values():
        assert model["state"] == "ready"
        assert model["provider"] == "CPUExecutionProvider"
        assert model["precision"] == "fp32"
        assert model["parity"]["passed"] is True
        assert model["default"] is True
    assert models["tiny-ner"]["labels"][0] == "O"


@pytest.mark.parametrize("top_k", [1, 2, None])
def test_classify_matches_the_pipeline(live_url: str, pipelines: dict[str, Any], top_k: int | None) -> None:
    ours = post(live_url, "/classify", {"inputs": TEXTS, "top_k": top_k})
    assert ours["model"] == "tiny-classify"
    assert_same(ours["results"], pipelines["classify"](TEXTS, top_k=top_k))
    single = post(live_url, "/classify", {"inputs": TEXTS[0], "top_k": top_k})
    assert_same(single["results"], pipelines["classify"](TEXTS[0], top_k=top_k))


def test_pair_matches_the_pipeline(live_url: str, pipelines: dict[str, Any]) -> None:
    ours = post(live_url, "/pair", {"inputs": PAIRS, "top_k": None})
    assert_same(ours["results"], pipelines["pair"](PAIRS, top_k=None))


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_ner_matches_the_pipeline(live_url: str, pipelines: dict[str, Any], strategy: str) -> None:
    ours = post(live_url, "/ner", {"inputs": NER_TEXT, "aggregation_strategy": strategy})
    assert_same(ours["results"], pipelines["ner"](NER_TEXT, aggregation_strategy=strategy))


@pytest.mark.parametrize("options", [{}, {"top_k": 3}, {"handle_impossible_answer": True}])
def test_qa_over_several_windows_matches_the_pipeline(
    live_url: str, pipelines: dict[str, Any], options: dict[str, Any]
) -> None:
    question = "Which country holds most of the rainforest?"
    windows = {"max_seq_len": 48, "doc_stride": 16}
    ours = post(live_url, "/qa", {"inputs": {"question": question, "context": CONTEXT}, **windows, **options})
    reference = pipelines["qa"](question=question, context=CONTEXT, **windows, **options)
    assert_same(ours["results"], reference)
    answers = ours["results"] if isinstance(ours["results"], list) else [ours["results"]]
    for answer in answers:
        assert CONTEXT[answer["start"] : answer["end"]] == answer["answer"]


def test_timing_and_request_id_headers(live_url: str) -> None:
    response = httpx.post(
        f"{live_url}/classify", json={"inputs": "fine"}, headers={"x-request-id": "abc-123"}
    )
    assert response.headers["x-request-id"] == "abc-123"
    for header in ("x-queue-time", "x-inference-time", "x-tokenize-time"):
        assert response.headers[header].endswith("ms")


async def test_concurrent_requests_are_batched(live_url: str) -> None:
    def batch_counts() -> tuple[float, float]:
        text = httpx.get(f"{live_url}/metrics").text
        values = {}
        for line in text.splitlines():
            for name in ("bertserve_batch_size_count", "bertserve_batch_size_sum"):
                if line.startswith(f'{name}{{model="tiny-classify"}}'):
                    values[name] = float(line.split()[-1])
        return values.get("bertserve_batch_size_count", 0.0), values.get("bertserve_batch_size_sum", 0.0)

    before = batch_counts()
    async with httpx.AsyncClient(base_url=live_url, timeout=60) as client:
        responses = await asyncio.gather(
            *(client.post("/classify", json={"inputs": f"{TEXTS[i % 3]} ({i})"}) for i in range(64))
        )
    assert all(r.status_code == 200 for r in responses)
    after = batch_counts()
    batches, items = after[0] - before[0], after[1] - before[1]
    assert items == 64
    assert batches < 64, "64 concurrent single-text requests ran one per batch"
    metrics = httpx.get(f"{live_url}/metrics").text
    assert 'bertserve_requests_total{code="200",model="tiny-classify",task="classify"}' in metrics
    assert (
        'bertserve_model_info{model="tiny-qa",precision="fp32",provider="CPUExecutionProvider",task="qa"} 1.0'
        in metrics
    )
