"""huggingface_hub's InferenceClient and AsyncInferenceClient, unchanged, against a real server.

Each call is compared with the task route in bertserve's own format (same inputs, options at the
top level) and with `transformers.pipeline` on the same checkpoint.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import httpx
import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from tests.e2e.test_endpoints import CONTEXT, NER_TEXT, PAIRS, TEXTS, assert_same, pipelines, post

__all__ = ["pipelines"]  # the pipelines fixture, shared with test_endpoints

QUESTION = "Which country holds most of the rainforest?"
WINDOWS = {"max_seq_len": 48, "doc_stride": 16}  # several windows per context


def plain(element: Any) -> Any:
    """A client's output element (or a list of them) as a dict without the unset fields.

    The elements are dataclasses and dicts; fields the dataclass lacks (NER's `index`) are only
    in the dict."""
    if isinstance(element, list):
        return [plain(e) for e in element]
    return {key: value for key, value in {**asdict(element), **element}.items() if value is not None}


def client(url: str, route: str) -> InferenceClient:
    return InferenceClient(model=f"{url}/{route}", timeout=30)


@pytest.mark.parametrize("top_k", [None, 2])
def test_text_classification(live_url: str, pipelines: dict[str, Any], top_k: int | None) -> None:
    ours = plain(client(live_url, "classify").text_classification(TEXTS[0], top_k=top_k))
    assert isinstance(ours, list) and len(ours) == (top_k or 1)
    reference = pipelines["classify"](TEXTS[0], top_k=top_k or 1)
    assert_same(ours, reference)
    assert_same(ours, post(live_url, "/classify", {"inputs": TEXTS[0], "top_k": top_k or 1})["results"])


def test_a_sentence_pair_through_text_classification(live_url: str, pipelines: dict[str, Any]) -> None:
    """The client has no pair method: text_classification posts a {text, text_pair} input as is."""
    ours = plain(client(live_url, "pair").text_classification(PAIRS[0], top_k=2))  # type: ignore[arg-type]
    assert_same(ours, pipelines["pair"](PAIRS[0], top_k=2))
    assert_same(ours, post(live_url, "/pair", {"inputs": PAIRS[0], "top_k": 2})["results"])


@pytest.mark.parametrize("top_k", [None, 3])
def test_question_answering(live_url: str, pipelines: dict[str, Any], top_k: int | None) -> None:
    ours = plain(
        client(live_url, "qa").question_answering(question=QUESTION, context=CONTEXT, top_k=top_k, **WINDOWS)
    )
    options = {**WINDOWS, "top_k": top_k or 1}
    assert_same(ours, pipelines["qa"](question=QUESTION, context=CONTEXT, **options))
    route = post(live_url, "/qa", {"inputs": {"question": QUESTION, "context": CONTEXT}, **options})
    assert_same(ours, route["results"])


@pytest.mark.parametrize("strategy", ["simple", "none", "first"])
def test_token_classification(live_url: str, pipelines: dict[str, Any], strategy: str) -> None:
    ours = plain(client(live_url, "ner").token_classification(NER_TEXT, aggregation_strategy=strategy))  # type: ignore[arg-type]
    reference = pipelines["ner"](NER_TEXT, aggregation_strategy=strategy)
    assert_same(ours, reference)
    route = post(live_url, "/ner", {"inputs": NER_TEXT, "aggregation_strategy": strategy})
    assert_same(ours, route["results"])


async def test_the_async_client(live_url: str, pipelines: dict[str, Any]) -> None:
    def async_client(route: str) -> AsyncInferenceClient:
        return AsyncInferenceClient(model=f"{live_url}/{route}", timeout=30)

    classified, paired, answered, tagged = await asyncio.gather(
        async_client("classify").text_classification(TEXTS[1]),
        async_client("pair").text_classification(PAIRS[1]),  # type: ignore[arg-type]
        async_client("qa").question_answering(question=QUESTION, context=CONTEXT, **WINDOWS),
        async_client("ner").token_classification(NER_TEXT),
    )
    assert_same(plain(classified), pipelines["classify"](TEXTS[1], top_k=1))
    assert_same(plain(paired), pipelines["pair"](PAIRS[1], top_k=1))
    assert_same(plain(answered), pipelines["qa"](question=QUESTION, context=CONTEXT, **WINDOWS))
    assert_same(plain(tagged), pipelines["ner"](NER_TEXT, aggregation_strategy="simple"))


def test_the_client_sees_errors(live_url: str) -> None:
    with pytest.raises(HfHubHTTPError) as raised:
        client(live_url, "classify").text_classification("   ")
    assert raised.value.response is not None and raised.value.response.status_code == 422


def test_the_format_by_hand(live_url: str, pipelines: dict[str, Any]) -> None:
    """A list of inputs, a model named in the body, the model in the header, bad parameters."""
    response = httpx.post(
        f"{live_url}/classify",
        json={"inputs": TEXTS, "parameters": {"top_k": None}, "model": "tiny-classify"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-model"] == "tiny-classify"
    assert_same(response.json(), pipelines["classify"](TEXTS, top_k=None))
    route = httpx.post(f"{live_url}/classify", json={"inputs": TEXTS, "top_k": None})
    assert route.headers["x-model"] == "tiny-classify"
    assert response.json() == route.json()["results"]

    bare_qa = httpx.post(
        f"{live_url}/qa", json={"inputs": {"question": QUESTION, "context": CONTEXT}, "parameters": {}}
    ).json()
    assert set(bare_qa) == {"score", "start", "end", "answer"}  # the pipeline's dict, no envelope

    for body, where in [
        ({"inputs": "x", "parameters": {"top_k": 0}}, "parameters.top_k:"),
        ({"inputs": "x", "parameters": {"topk": 1}}, "parameters.topk:"),
        ({"inputs": "x", "parameters": {}, "top_k": 1}, "top_k:"),  # options go in parameters
        ({"inputs": "", "parameters": {}}, "inputs: Value error, must not be empty"),
    ]:
        error = httpx.post(f"{live_url}/classify", json=body)
        assert error.status_code == 422, error.text
        assert error.json()["error"]["type"] == "validation_error"
        assert error.json()["error"]["message"].startswith(where), error.json()
