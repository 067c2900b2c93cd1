"""Faults stay contained, refusals say why, and every answer is counted: against a real server."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import RunningServer, run_server

KEY = "s3cret"
AUTH = {"authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def guarded_server(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """tiny-classify fails every 3rd batch on purpose; tiny-ner's queue holds 8 items; a key guards all."""
    env = {
        "BERTSERVE_MODELS": '["tiny-classify", "tiny-ner"]',
        "BERTSERVE_PRECISION": "fp32",
        "BERTSERVE_FAULTS": json.dumps({"tiny-classify": {"fail_run_every": 3}}),
        "BERTSERVE_MODEL_BATCH": json.dumps({"tiny-ner": {"max_queue_items": 8}}),
        "BERTSERVE_BATCH__MAX_BATCH_SIZE": "1",
        "BERTSERVE_BATCH__MAX_DELAY_MS": "0",
        "BERTSERVE_API_KEY": KEY,
        "BERTSERVE_PROTECT_METADATA": "true",
    }
    with run_server(tiny_models, tmp_path_factory.mktemp("guarded"), env=env) as server:
        yield server


def test_a_failing_batch_fails_its_request_only_and_the_model_keeps_serving(
    guarded_server: RunningServer,
) -> None:
    url = guarded_server.url
    codes = []
    for index in range(9):
        headers = {**AUTH, "x-request-id": f"req-{index}"}
        response = httpx.post(f"{url}/classify", json={"inputs": f"text {index}"}, headers=headers)
        codes.append(response.status_code)
        if response.status_code == 500:
            assert response.json()["error"]["type"] == "inference_failed"
            assert response.headers["x-request-id"] == f"req-{index}"
    assert codes == [200, 200, 500] * 3
    assert httpx.get(f"{url}/health/ready").status_code == 200
    metrics = httpx.get(f"{url}/metrics", headers=AUTH).text
    assert 'bertserve_failed_batches_total{model="tiny-classify"} 3.0' in metrics
    assert 'bertserve_requests_total{code="500",model="tiny-classify",task="classify"} 3.0' in metrics
    log = guarded_server.log()
    assert "failed to run: InjectedFault" in log and "(requests: req-2)" in log
    assert "[req-2]" in log  # the request id is in the log line's prefix too


def test_a_request_that_can_never_fit_the_queue_gets_413_not_429(guarded_server: RunningServer) -> None:
    long_text = " ".join(["Angela Merkel met Emmanuel Macron in Paris."] * 1000)  # 44 kB, ~30 windows
    response = httpx.post(f"{guarded_server.url}/ner", json={"inputs": long_text}, headers=AUTH)
    assert response.status_code == 413, response.text[:300]
    error = response.json()["error"]
    assert error["type"] == "too_many_items"
    assert "at most 8" in error["message"] and "windows" in error["message"]
    assert "retry-after" not in response.headers
    fits = httpx.post(f"{guarded_server.url}/ner", json={"inputs": "Angela Merkel in Paris."}, headers=AUTH)
    assert fits.status_code == 200


@pytest.mark.parametrize(
    "authorization", ["Bearer sécret", "Bearer \u00e9\u00e9", "bearer", "Basic s3cret", "Bearer s3cret-no"]
)
def test_a_wrong_or_non_ascii_key_is_401_never_500(guarded_server: RunningServer, authorization: str) -> None:
    response = httpx.post(
        f"{guarded_server.url}/classify",
        json={"inputs": "hi"},
        headers=[(b"authorization", authorization.encode("utf-8"))],
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "unauthorized"


def test_protect_metadata_guards_models_and_metrics_but_not_probes(guarded_server: RunningServer) -> None:
    url = guarded_server.url
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/v1/models", headers=AUTH).status_code == 200
    assert httpx.get(f"{url}/metrics", headers=AUTH).status_code == 200
    assert httpx.get(f"{url}/health/live").status_code == 200
    assert httpx.get(f"{url}/health/ready").status_code == 200


@pytest.mark.parametrize("sent", ["x" * 8192, "has space", "new\u00e9line"])
def test_an_unsafe_request_id_is_replaced(guarded_server: RunningServer, sent: str) -> None:
    response = httpx.get(
        f"{guarded_server.url}/health/live", headers=[(b"x-request-id", sent.encode("utf-8"))]
    )
    echoed = response.headers["x-request-id"]
    assert echoed != sent and len(echoed) == 32


def test_a_safe_request_id_is_echoed(guarded_server: RunningServer) -> None:
    response = httpx.get(f"{guarded_server.url}/health/live", headers={"x-request-id": "trace-01:ab/c"})
    assert response.headers["x-request-id"] == "trace-01:ab/c"


def test_a_tokenizer_that_fails_at_warm_up_fails_its_model_with_the_reason(
    tiny_models: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "models"
    shutil.copytree(tiny_models / "tiny-classify", repo / "tiny-classify")
    broken = repo / "broken-tokenizer"
    shutil.copytree(tiny_models / "tiny-pair", broken)
    tokenizer = json.loads((broken / "tokenizer.json").read_text())
    # loads, encodes "a", but has no [UNK] for words it lacks: "warm up" fails
    tokenizer["model"]["vocab"] = {token: i for i, token in enumerate(["[PAD]", "[CLS]", "[SEP]", "a"])}
    tokenizer["model"]["unk_token"] = "[MISSING]"
    tokenizer["added_tokens"] = []
    (broken / "tokenizer.json").write_text(json.dumps(tokenizer))
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest.pop("tokenizer_sha256", None)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with run_server(repo, tmp_path, env={"BERTSERVE_PRECISION": "fp32"}, ready=False) as server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            models = {m["name"]: m for m in httpx.get(f"{server.url}/v1/models").json()["models"]}
            if all(m["state"] != "loading" for m in models.values()):
                break
            time.sleep(0.2)
        assert models["tiny-classify"]["state"] == "ready"
        assert models["broken-tokenizer"]["state"] == "failed", models
        assert "UNK" in models["broken-tokenizer"]["error"] or "unk" in models["broken-tokenizer"]["error"]
        ready = httpx.get(f"{server.url}/health/ready")
        assert ready.status_code == 503 and "broken-tokenizer" in ready.json()["errors"]
        assert httpx.post(f"{server.url}/classify", json={"inputs": "still served"}).status_code == 200


async def test_a_drain_timeout_under_a_second_is_kept(tiny_models: Path, tmp_path: Path) -> None:
    env = {
        "BERTSERVE_MODELS": '["tiny-classify"]',
        "BERTSERVE_PRECISION": "fp32",
        "BERTSERVE_DRAIN_TIMEOUT_S": "0.5",
        "BERTSERVE_BATCH__MAX_DELAY_MS": "8000",  # a lone request waits 8 s for companions
        "BERTSERVE_BATCH__ALWAYS_WAIT": "true",
        "BERTSERVE_BATCH__MAX_BATCH_SIZE": "64",
    }
    with run_server(tiny_models, tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            held = asyncio.ensure_future(client.post("/classify", json={"inputs": "held"}))
            while "bertserve_inflight_requests 1.0" not in (await client.get("/metrics")).text:
                await asyncio.sleep(0.01)
            started = time.monotonic()
            server.process.send_signal(15)
            await asyncio.to_thread(server.process.wait, 30)
            took = time.monotonic() - started
            held.cancel()
        assert took < 4.0, f"exit took {took:.1f} s with a 0.5 s drain timeout"
        # the request cut off by the drain timeout is reported, not silently dropped
        assert (
            "WARNING bertserve [-]: shutdown: inference requests: 1 received, 0 answered, 1 unanswered"
            in (server.log())
        )
