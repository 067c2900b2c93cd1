"""The Open Inference Protocol (v2) with Triton's HTTP client and the KServe SDK's REST client,
against a real server: the same answers as the task routes (and so as the pipeline) for the
same inputs, the protocol's error shape, and the same metrics."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tritonclient.utils import InferenceServerException

from tests.e2e.test_endpoints import CONTEXT, NER_TEXT, PAIRS, TEXTS, assert_same, pipelines, post

__all__ = ["pipelines"]  # the pipelines fixture, shared with test_endpoints

QUESTIONS = ["Which country holds most of the rainforest?", "Who first described the rainforest?"]
NER_TEXTS = [NER_TEXT, "nothing to see here", "Ada Lovelace lived in London."]


@pytest.fixture(scope="module")
def triton_client(live_url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(live_url.removeprefix("http://"), network_timeout=30)


def text_input(name: str, texts: list[str], *, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(name, [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_), binary_data=binary)
    return tensor


def strings(array: np.ndarray) -> list[Any]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]


def rows(result: Any, columns: dict[str, str], count: str) -> list[list[dict[str, Any]]]:
    """Flattened output tensors back into one list of dicts per input, using the count tensor."""
    data = {
        name: strings(result.as_numpy(name)) if kind == "str" else result.as_numpy(name).tolist()
        for name, kind in columns.items()
    }
    grouped, start = [], 0
    for n in result.as_numpy(count).tolist():
        grouped.append([{name: data[name][i] for name in columns} for i in range(start, start + n)])
        start += n
    assert start == len(next(iter(data.values())))
    return grouped


def test_health_and_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.get_server_metadata()["name"] == "bertserve"
    for name, inputs in [
        ("tiny-classify", ["text"]),
        ("tiny-pair", ["text", "text_pair"]),
        ("tiny-qa", ["question", "context"]),
        ("tiny-ner", ["text"]),
    ]:
        assert triton_client.is_model_ready(name)
        assert triton_client.is_model_ready(name, model_version="1")
        meta = triton_client.get_model_metadata(name)
        assert [t["name"] for t in meta["inputs"]] == inputs
        assert {t["datatype"] for t in meta["inputs"]} == {"BYTES"}
    assert not triton_client.is_model_ready("nope")
    with pytest.raises(InferenceServerException) as raised:
        triton_client.get_model_metadata("tiny-qa", model_version="2")
    assert raised.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False])
def test_classify_and_pair(
    live_url: str, triton_client: triton.InferenceServerClient, pipelines: dict[str, Any], binary: bool
) -> None:
    result = triton_client.infer(
        "tiny-classify", [text_input("text", TEXTS, binary=binary)], parameters={"top_k": 2}
    )
    labels, scores = result.as_numpy("label"), result.as_numpy("score")
    assert labels.shape == scores.shape == (len(TEXTS), 2) and scores.dtype == np.float32
    ours = [
        [{"label": label, "score": float(score)} for label, score in zip(strings(lab), sco, strict=True)]
        for lab, sco in zip(labels, scores, strict=True)
    ]
    assert_same(ours, post(live_url, "/classify", {"inputs": TEXTS, "top_k": 2})["results"])
    assert_same(ours, pipelines["classify"](TEXTS, top_k=2))

    pair = triton_client.infer(
        "tiny-pair",
        [
            text_input("text", [p["text"] for p in PAIRS], binary=binary),
            text_input("text_pair", [p["text_pair"] for p in PAIRS], binary=binary),
        ],
        outputs=[triton.InferRequestedOutput("label", binary_data=binary)],
    )
    assert pair.as_numpy("score") is None  # only the requested output
    best = [row[0]["label"] for row in post(live_url, "/pair", {"inputs": PAIRS})["results"]]
    assert strings(pair.as_numpy("label")) == best


def test_qa(live_url: str, triton_client: triton.InferenceServerClient, pipelines: dict[str, Any]) -> None:
    options = {"top_k": 2, "max_seq_len": 48, "doc_stride": 16}
    result = triton_client.infer(
        "tiny-qa",
        [text_input("question", QUESTIONS), text_input("context", [CONTEXT] * len(QUESTIONS))],
        model_version="1",
        parameters=options,
    )
    columns = {"answer": "str", "score": "num", "start": "num", "end": "num"}
    ours = rows(result, columns, "answer_count")
    inputs = [{"question": q, "context": CONTEXT} for q in QUESTIONS]
    assert_same(ours, post(live_url, "/qa", {"inputs": inputs, **options})["results"])
    for question, answers in zip(QUESTIONS, ours, strict=True):
        assert_same(answers, pipelines["qa"](question=question, context=CONTEXT, **options))


@pytest.mark.parametrize("strategy", ["simple", "none"])
def test_ner(
    live_url: str, triton_client: triton.InferenceServerClient, pipelines: dict[str, Any], strategy: str
) -> None:
    result = triton_client.infer(
        "tiny-ner", [text_input("text", NER_TEXTS)], parameters={"aggregation_strategy": strategy}
    )
    label = "entity" if strategy == "none" else "entity_group"
    columns = {label: "str", "score": "num", "word": "str", "start": "num", "end": "num"}
    if strategy == "none":
        columns["index"] = "num"
    ours = rows(result, columns, "entity_count")
    assert len(ours) == len(NER_TEXTS)
    assert_same(
        ours, post(live_url, "/ner", {"inputs": NER_TEXTS, "aggregation_strategy": strategy})["results"]
    )
    assert_same(ours, pipelines["ner"](NER_TEXTS, aggregation_strategy=strategy))


async def test_the_kserve_client(live_url: str) -> None:
    def tensor(name: str, texts: list[str]) -> InferInput:
        t = InferInput(name=name, shape=[len(texts)], datatype="BYTES")
        t.set_data_from_numpy(np.array(texts, dtype=np.object_), binary_data=False)
        return t

    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=30)) as client:
        assert await client.is_server_live(live_url)
        assert await client.is_server_ready(live_url)
        assert await client.is_model_ready(live_url, "tiny-pair")
        assert not await client.is_model_ready(live_url, "nope")
        request = InferRequest(
            model_name="tiny-pair",
            infer_inputs=[
                tensor("text", [p["text"] for p in PAIRS]),
                tensor("text_pair", [p["text_pair"] for p in PAIRS]),
            ],
            parameters={"top_k": None},
        )
        response = await client.infer(live_url, request, model_name="tiny-pair")
        outputs = {output.name: output.as_numpy() for output in response.outputs}
        ours = [
            [{"label": label, "score": float(score)} for label, score in zip(strings(lab), sco, strict=True)]
            for lab, sco in zip(outputs["label"], outputs["score"], strict=True)
        ]
        assert_same(ours, post(live_url, "/pair", {"inputs": PAIRS, "top_k": None})["results"])

        qa = InferRequest(
            model_name="tiny-qa",
            infer_inputs=[tensor("question", QUESTIONS[:1]), tensor("context", [CONTEXT])],
        )
        answer = {
            o.name: o.as_numpy().tolist() for o in (await client.infer(live_url, qa, "tiny-qa")).outputs
        }
        route = post(live_url, "/qa", {"inputs": {"question": QUESTIONS[0], "context": CONTEXT}})["results"]
        assert strings(np.array(answer["answer"], dtype=np.object_)) == [route["answer"]]
        assert (answer["start"], answer["end"], answer["answer_count"]) == (
            [route["start"]],
            [route["end"]],
            [1],
        )

        bad = InferRequest(model_name="tiny-qa", infer_inputs=[tensor("question", ["only a question"])])
        with pytest.raises(httpx.HTTPStatusError) as raised:
            await client.infer(live_url, bad, "tiny-qa")
        assert raised.value.response.status_code == 400
        assert "missing input 'context'" in str(raised.value)


def v2_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return str(body["error"])


def text_tensor(
    name: str, data: Any, shape: list[int] | None = None, datatype: str = "BYTES"
) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


@pytest.mark.parametrize(
    ("model", "body", "status", "fragment"),
    [
        ("tiny-classify", {"inputs": [text_tensor("txt", ["x"])]}, 400, "unexpected or repeated inputs"),
        ("tiny-classify", {"inputs": [text_tensor("text", ["x", "y"], [3])]}, 400, "has shape [3] but 2"),
        ("tiny-classify", {"inputs": [text_tensor("text", [1, 2], datatype="INT64")]}, 400, "must be BYTES"),
        ("tiny-classify", {"inputs": [text_tensor("text", [" "])]}, 400, "element 0: Value error"),
        ("tiny-classify", {"inputs": [text_tensor("text", [])]}, 400, "hold no elements"),
        ("tiny-classify", {"inputs": [text_tensor("text", ["x"])], "parameters": {"top_k": 0}}, 400, "top_k"),
        ("tiny-classify", {"inputs": [text_tensor("text", ["x"])], "parameters": {"topk": 1}}, 400, "topk"),
        (
            "tiny-classify",
            {"inputs": [text_tensor("text", ["x"])], "outputs": [{"name": "x"}]},
            400,
            "unknown output",
        ),
        (
            "tiny-pair",
            {"inputs": [text_tensor("text", ["a", "b"]), text_tensor("text_pair", ["a"])]},
            400,
            "same number",
        ),
        ("tiny-classify", {"inputs": "text"}, 400, "not a v2 inference request"),
        ("nope", {"inputs": [text_tensor("text", ["x"])]}, 404, "unknown model 'nope'"),
        ("tiny-ner", {"inputs": [text_tensor("text", ["x"] * 300)]}, 413, "300 inputs"),
    ],
)
def test_errors_in_the_protocol_shape(
    live_url: str, model: str, body: dict[str, Any], status: int, fragment: str
) -> None:
    message = v2_error(httpx.post(f"{live_url}/v2/models/{model}/infer", json=body), status)
    assert fragment in message, message


def test_transport_errors_in_the_protocol_shape(live_url: str) -> None:
    infer = f"{live_url}/v2/models/tiny-classify/infer"
    assert "not valid JSON" in v2_error(httpx.post(infer, content=b'{"inputs": ['), 400)
    header = {"inference-header-content-length": "9999"}
    assert "does not fit" in v2_error(httpx.post(infer, content=b"{}", headers=header), 400)
    v2_error(httpx.get(infer), 405)
    huge = (
        b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["'
        + b"a" * 2_100_000
        + b'"]}]}'
    )
    assert "the limit is" in v2_error(httpx.post(infer, content=huge), 413)  # refused by Content-Length
    v2_error(httpx.get(f"{live_url}/v2/models/nope/ready"), 404)


def test_v2_requests_share_the_task_metrics(
    live_url: str, triton_client: triton.InferenceServerClient
) -> None:
    def served() -> float:
        for line in httpx.get(f"{live_url}/metrics").text.splitlines():
            if line.startswith('bertserve_requests_total{code="200",model="tiny-ner",task="ner"}'):
                return float(line.split()[-1])
        return 0.0

    before = served()
    triton_client.infer("tiny-ner", [text_input("text", ["Paris"])])
    assert served() == before + 1
