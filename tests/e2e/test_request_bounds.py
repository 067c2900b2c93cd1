"""The issue's options that multiply work, against a real server: each gets its 4xx in both body
formats and on v2, and a request needing too many windows gets 413 naming the figure and the limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

LONG_TEXT = ("Ada Lovelace met Charles Babbage in London. " * 400)[:16_000]
PUNCTUATION = "!" * 16_000  # one token a character
QA = {"question": "Who met Babbage?", "context": LONG_TEXT}
V2_INPUTS = {
    "qa": [
        {"name": "question", "datatype": "BYTES", "shape": [1], "data": [QA["question"]]},
        {"name": "context", "datatype": "BYTES", "shape": [1], "data": [QA["context"]]},
    ],
    "ner": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [LONG_TEXT]}],
}
CASES = [
    ("ner", LONG_TEXT, {"stride": 509}),  # consecutive windows one token apart
    ("ner", LONG_TEXT, {"ignore_labels": ["O"] * 400_000}),
    ("qa", QA, {"top_k": 100_000}),
    ("qa", QA, {"max_answer_len": 10**30}),
    ("qa", QA, {"doc_stride": 10**30}),
    ("qa", QA, {"max_seq_len": 64, "doc_stride": 63}),  # within the static bound, over half the window
]


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text[:300]
    error: dict[str, str] = response.json()["error"]
    return error


@pytest.mark.parametrize(("task", "inputs", "options"), CASES)
def test_options_that_multiply_work_are_refused_in_every_format(
    live_url: str, task: str, inputs: Any, options: dict[str, Any]
) -> None:
    bertserve = httpx.post(f"{live_url}/{task}", json={"inputs": inputs, **options}, timeout=30)
    assert error_of(bertserve, 422)["type"] in {"validation_error", "invalid_input"}
    hugging_face = httpx.post(
        f"{live_url}/{task}", json={"inputs": inputs, "parameters": options}, timeout=30
    )
    assert error_of(hugging_face, 422)["type"] in {"validation_error", "invalid_input"}
    v2 = httpx.post(
        f"{live_url}/v2/models/tiny-{task}/infer",
        json={"inputs": V2_INPUTS[task], "parameters": options},
        timeout=30,
    )
    assert v2.status_code == 400, v2.text[:300]


def test_a_request_needing_too_many_windows_gets_413_naming_the_figure(live_url: str) -> None:
    body = {"inputs": {"question": "Who?", "context": PUNCTUATION}, "max_seq_len": 64, "doc_stride": 32}
    error = error_of(httpx.post(f"{live_url}/qa", json=body, timeout=30), 413)
    assert error["type"] == "too_many_items"
    assert "needs 592 windows" in error["message"] and "at most 512" in error["message"], error
    ner = {"inputs": [PUNCTUATION] * 9, "stride": 255}  # 62 windows a text in steps of 255 tokens
    error = error_of(httpx.post(f"{live_url}/ner", json=ner, timeout=30), 413)
    assert "needs 558 windows" in error["message"], error
    metrics = httpx.get(f"{live_url}/metrics").text
    assert 'bertserve_rejected_total{model="tiny-qa",reason="too_many_items"}' in metrics


def test_the_bounds_themselves_are_served(live_url: str) -> None:
    body = {"inputs": QA, "top_k": 100, "max_answer_len": 512, "doc_stride": 192}
    answers = httpx.post(f"{live_url}/qa", json=body, timeout=30)
    assert answers.status_code == 200, answers.text[:300]
    assert 1 <= len(answers.json()["results"]) <= 100
    ner = httpx.post(
        f"{live_url}/ner", json={"inputs": LONG_TEXT, "stride": 255, "ignore_labels": ["O"] * 256}
    )
    assert ner.status_code == 200, ner.text[:300]
