"""Servers with special settings: overload, deadlines, API key, drain on SIGTERM, broken folders."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.harness import run_server, wait_until_ready

ONE_MODEL = {"BERTSERVE_MODELS": '["tiny-classify"]', "BERTSERVE_PRECISION": "fp32"}


async def flood(url: str, count: int, body: dict[str, object]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return list(await asyncio.gather(*(client.post("/classify", json=body) for _ in range(count))))


async def test_a_full_queue_answers_429_and_loses_nothing_it_accepted(
    tiny_models: Path, tmp_path: Path
) -> None:
    env = {
        **ONE_MODEL,
        "BERTSERVE_BATCH__MAX_QUEUE_ITEMS": "16",
        "BERTSERVE_BATCH__MAX_BATCH_SIZE": "8",
        "BERTSERVE_BATCH__MAX_DELAY_MS": "50",
    }
    with run_server(tiny_models, tmp_path, env=env) as server:
        texts = [f"sentence number {i} about the weather" for i in range(8)]
        responses = await flood(server.url, 40, {"inputs": texts})
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 429}, codes
        assert codes.count(429) > 0 and codes.count(200) > 0
        for response in responses:
            if response.status_code == 429:
                assert response.headers["retry-after"] == "1"
                assert response.json()["error"]["type"] == "queue_full"
            else:
                assert len(response.json()["results"]) == 8
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'bertserve_rejected_total{model="tiny-classify",reason="queue_full"}' in metrics


def test_a_request_past_its_deadline_gets_504(tiny_models: Path, tmp_path: Path) -> None:
    env = {
        **ONE_MODEL,
        "BERTSERVE_REQUEST_TIMEOUT_S": "0.05",
        "BERTSERVE_BATCH__MAX_DELAY_MS": "400",
        "BERTSERVE_BATCH__ALWAYS_WAIT": "true",
    }
    with run_server(tiny_models, tmp_path, env=env) as server:
        response = httpx.post(f"{server.url}/classify", json={"inputs": "slow"})
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "timeout"


def test_an_api_key_protects_inference_but_not_probes(tiny_models: Path, tmp_path: Path) -> None:
    with run_server(tiny_models, tmp_path, env={**ONE_MODEL, "BERTSERVE_API_KEY": "s3cret"}) as server:
        refused = httpx.post(f"{server.url}/classify", json={"inputs": "hi"})
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        wrong = httpx.post(
            f"{server.url}/classify", json={"inputs": "hi"}, headers={"authorization": "Bearer no"}
        )
        assert wrong.status_code == 401
        ok = httpx.post(
            f"{server.url}/classify", json={"inputs": "hi"}, headers={"authorization": "Bearer s3cret"}
        )
        assert ok.status_code == 200
        assert httpx.get(f"{server.url}/health/ready").status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 200


async def test_sigterm_finishes_accepted_requests_then_exits(tiny_models: Path, tmp_path: Path) -> None:
    env = {
        **ONE_MODEL,
        "BERTSERVE_BATCH__MAX_DELAY_MS": "300",
        "BERTSERVE_BATCH__MAX_BATCH_SIZE": "64",
        "BERTSERVE_BATCH__ALWAYS_WAIT": "true",
    }
    with run_server(tiny_models, tmp_path, env=env) as server:
        in_flight = asyncio.ensure_future(flood(server.url, 20, {"inputs": "held in the queue for a while"}))
        async with httpx.AsyncClient(base_url=server.url) as probe:
            while "bertserve_inflight_requests 20.0" not in (await probe.get("/metrics")).text:
                await asyncio.sleep(0.01)  # until all 20 are accepted and wait out the batching delay
        server.process.send_signal(15)
        responses = await in_flight
        assert [r.status_code for r in responses] == [200] * 20
        # uvicorn re-raises the signal after a clean shutdown: the exit status is SIGTERM's own
        assert await asyncio.to_thread(server.process.wait, 30) in (0, -15)
        log = server.log()
        assert "draining" in log and "Application shutdown complete" in log
        assert "shutdown: inference requests: 20 received, 20 answered, 0 unanswered" in log


def test_a_corrupt_model_folder_is_reported_not_fatal(tiny_models: Path, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    shutil.copytree(tiny_models / "tiny-classify", repo / "tiny-classify")
    broken = repo / "broken"
    shutil.copytree(tiny_models / "tiny-pair", broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["task"] = "translate"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    wrong_outputs = repo / "wrong-outputs"  # a classify graph (logits) declared as qa (start/end logits)
    shutil.copytree(tiny_models / "tiny-classify", wrong_outputs)
    manifest = json.loads((wrong_outputs / "manifest.json").read_text())
    manifest["task"] = "qa"
    (wrong_outputs / "manifest.json").write_text(json.dumps(manifest))
    truncated = repo / "truncated"
    shutil.copytree(tiny_models / "tiny-ner", truncated)
    for onnx_file in truncated.glob("*.onnx"):
        onnx_file.write_bytes(onnx_file.read_bytes()[:1000])
    with run_server(repo, tmp_path, env={"BERTSERVE_PRECISION": "fp32"}, ready=False) as server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            models = httpx.get(f"{server.url}/v1/models").json()["models"]
            if all(m["state"] != "loading" for m in models):
                break
            time.sleep(0.2)
        states = {m["name"]: m for m in models}
        assert states["tiny-classify"]["state"] == "ready"
        assert states["broken"]["state"] == "failed" and "task" in states["broken"]["error"]
        assert states["truncated"]["state"] == "failed" and "checksum" in states["truncated"]["error"]
        assert states["wrong-outputs"]["state"] == "failed"
        assert "['start_logits', 'end_logits']" in states["wrong-outputs"]["error"]
        ready = httpx.get(f"{server.url}/health/ready")
        assert ready.status_code == 503 and "broken" in ready.json()["errors"]
        assert httpx.post(f"{server.url}/classify", json={"inputs": "still served"}).status_code == 200
        unavailable = httpx.post(f"{server.url}/ner", json={"inputs": "x", "model": "truncated"})
        assert unavailable.status_code == 503 and "retry-after" in unavailable.headers


def test_an_empty_model_directory_is_never_ready(tmp_path: Path) -> None:
    with run_server(tmp_path / "nothing-here", tmp_path, ready=False) as server:
        assert httpx.get(f"{server.url}/health/ready").status_code == 503
        with pytest.raises(RuntimeError):
            wait_until_ready(server, timeout=1)


def test_io_binding_and_shape_buckets_give_the_same_answers(
    tiny_models: Path, tmp_path: Path, live_url: str
) -> None:
    """The CUDA-path options (IO binding, bucket buffers reused in place) exercised on the CPU provider."""
    env = {
        "BERTSERVE_PRECISION": "fp32",
        "BERTSERVE_IO_BINDING": "on",
        "BERTSERVE_SHAPE_BUCKETS": "on",
        "BERTSERVE_CUDA_GRAPHS": "true",
        "BERTSERVE_BATCH__MAX_BATCH_TOKENS": "4096",
    }
    requests = [
        (
            "/classify",
            {"inputs": ["short one", "a somewhat longer sentence about the weather today"], "top_k": None},
        ),
        ("/ner", {"inputs": "Angela Merkel met Emmanuel Macron in Paris."}),
        (
            "/qa",
            {"inputs": {"question": "Where?", "context": "They met in Paris on a rainy day."}, "top_k": 2},
        ),
    ]
    with run_server(tiny_models, tmp_path, env=env) as server:
        models = {m["name"]: m for m in httpx.get(f"{server.url}/v1/models").json()["models"]}
        assert all(m["io_binding"] and m["shape_buckets"] for m in models.values())
        assert not any(m["cuda_graphs"] for m in models.values())  # CPU: graphs need CUDA
        for path, body in requests:
            bucketed = httpx.post(f"{server.url}{path}", json=body).json()["results"]
            plain = httpx.post(f"{live_url}{path}", json=body).json()["results"]
            assert _close(bucketed, plain), (bucketed, plain)


def _close(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-5
    return a == b
