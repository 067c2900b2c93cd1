"""The three clients against a real server over the trained demo heads (demo/, MiniLM, real tokenizer).

The demo checkpoints are exported once (fp32 only) through the real export pipeline. Each client
calls each task once; its answer must equal the task route's for the same input, and the
pipeline's (PyTorch fp32 on the checkpoint), and make sense (trained heads, not random ones).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from huggingface_hub import AsyncInferenceClient, InferenceClient
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

from tests.e2e.test_endpoints import assert_same, post
from tests.e2e.test_huggingface_client import plain
from tests.e2e.test_open_inference_protocol import strings
from tests.harness import RunningServer, run_server

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[2] / "demo"
HEADS = {"classify": "sst2-minilm", "pair": "mrpc-minilm", "qa": "squad-minilm", "ner": "conll-minilm"}
REVIEW = "I loved this film, the acting was wonderful."
PAIR = {"text": "He bought a new car yesterday.", "text_pair": "Yesterday he purchased a new car."}
QUESTION = {"question": "Where does Ada live?", "context": "Ada lives in London and works in Cambridge."}
SENTENCE = "Angela Merkel met Emmanuel Macron in Paris."


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    from export.repository import build_repository

    models = tmp_path_factory.mktemp("demo-models")
    report = build_repository(DEMO, models, ["fp32"], progress=lambda _: None)
    assert sorted(report.exported) == sorted(HEADS.values()), report
    with run_server(
        models,
        tmp_path_factory.mktemp("demo-logs"),
        env={"BERTSERVE_PRECISION": "fp32", "BERTSERVE_WARMUP": "false"},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def demo_pipelines() -> dict[str, Any]:
    import torch
    from transformers import pipeline

    kinds = {
        "classify": "text-classification",
        "pair": "text-classification",
        "qa": "question-answering",
        "ner": "token-classification",
    }
    return {
        task: pipeline(kinds[task], model=str(DEMO / name), device=-1, dtype=torch.float32)
        for task, name in HEADS.items()
    }


@pytest.fixture(scope="module")
def routes(demo_server: RunningServer) -> dict[str, Any]:
    """What the task routes answer, in bertserve's own format."""
    url = demo_server.url
    return {
        "classify": post(url, "/classify", {"inputs": REVIEW, "top_k": 2})["results"],
        "pair": post(url, "/pair", {"inputs": PAIR, "top_k": 2})["results"],
        "qa": post(url, "/qa", {"inputs": QUESTION})["results"],
        "ner": post(url, "/ner", {"inputs": SENTENCE})["results"],
    }


def test_the_routes_make_sense_and_match_the_pipeline(
    routes: dict[str, Any], demo_pipelines: dict[str, Any]
) -> None:
    assert routes["classify"][0]["label"] == "POSITIVE"
    assert routes["pair"][0]["label"] == "equivalent"
    assert routes["qa"]["answer"] == "London"
    assert [(e["entity_group"], e["word"]) for e in routes["ner"]] == [
        ("PER", "angela merkel"),
        ("PER", "emmanuel macron"),
        ("LOC", "paris"),
    ]
    assert_same(routes["classify"], demo_pipelines["classify"](REVIEW, top_k=2))
    assert_same(routes["pair"], demo_pipelines["pair"](PAIR, top_k=2))
    assert_same(routes["qa"], demo_pipelines["qa"](**QUESTION))
    assert_same(routes["ner"], demo_pipelines["ner"](SENTENCE, aggregation_strategy="simple"))


async def test_huggingface_hub(demo_server: RunningServer, routes: dict[str, Any]) -> None:
    url = demo_server.url
    assert_same(
        plain(InferenceClient(f"{url}/classify").text_classification(REVIEW, top_k=2)), routes["classify"]
    )
    assert_same(plain(InferenceClient(f"{url}/pair").text_classification(PAIR, top_k=2)), routes["pair"])  # type: ignore[arg-type]
    assert_same(plain(InferenceClient(f"{url}/qa").question_answering(**QUESTION)), routes["qa"])
    assert_same(plain(await AsyncInferenceClient(f"{url}/ner").token_classification(SENTENCE)), routes["ner"])


def test_tritonclient(demo_server: RunningServer, routes: dict[str, Any]) -> None:
    client = triton.InferenceServerClient(demo_server.url.removeprefix("http://"))

    def tensors(**texts: str) -> list[triton.InferInput]:
        made = []
        for name, text in texts.items():
            tensor = triton.InferInput(name, [1], "BYTES")
            tensor.set_data_from_numpy(np.array([text], dtype=np.object_))
            made.append(tensor)
        return made

    labels = client.infer(HEADS["classify"], tensors(text=REVIEW), parameters={"top_k": 2})
    assert strings(labels.as_numpy("label")) == [row["label"] for row in routes["classify"]]
    assert labels.as_numpy("score").tolist()[0] == pytest.approx([row["score"] for row in routes["classify"]])
    pair = client.infer(HEADS["pair"], tensors(**PAIR))
    assert strings(pair.as_numpy("label")) == [routes["pair"][0]["label"]]
    qa = client.infer(HEADS["qa"], tensors(**QUESTION))
    assert strings(qa.as_numpy("answer")) == [routes["qa"]["answer"]]
    assert qa.as_numpy("start").tolist() == [routes["qa"]["start"]]
    ner = client.infer(HEADS["ner"], tensors(text=SENTENCE))
    assert strings(ner.as_numpy("word")) == [e["word"] for e in routes["ner"]]
    assert ner.as_numpy("entity_count").tolist() == [len(routes["ner"])]


async def test_kserve_client(demo_server: RunningServer, routes: dict[str, Any]) -> None:
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=60)) as client:
        for task, texts, output, expected in [
            ("classify", {"text": REVIEW}, "label", [routes["classify"][0]["label"]]),
            ("pair", PAIR, "label", [routes["pair"][0]["label"]]),
            ("qa", QUESTION, "answer", [routes["qa"]["answer"]]),
            ("ner", {"text": SENTENCE}, "entity_group", [e["entity_group"] for e in routes["ner"]]),
        ]:
            inputs = [InferInput(name, [1], "BYTES", data=[text]) for name, text in texts.items()]
            response = await client.infer(demo_server.url, InferRequest(HEADS[task], inputs), HEADS[task])
            outputs = {o.name: o.as_numpy() for o in response.outputs}
            assert strings(outputs[output]) == expected, task
    assert httpx.get(f"{demo_server.url}/v2/models/{HEADS['qa']}").json()["parameters"] == {"task": "qa"}
