"""Models changed without a restart, against a real server with the repository poll on and an API key:
the repository extension through Triton's client (index, load, unload), a folder replaced under load
(by the poll and through the load endpoint) with every answer 200, a broken replacement that leaves the
old model serving and says why, an unload under load (200 or 404 only) that gives the memory back."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.harness import RunningServer, run_server
from tools.bench.hotswap import (
    eventually,
    index_state,
    loads_ok,
    metric,
    replace_folder,
    replacement_export,
    resident_mb,
    settled_resident_mb,
    statuses,
    steady,
    under_load,
)

KEY = "s3cret"
AUTH = {"authorization": f"Bearer {KEY}"}
MODEL = "tiny-classify"
CLIENTS = 64
AROUND_S = 1.0


@pytest.fixture(scope="module")
def repo(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repository") / "models"
    shutil.copytree(tiny_models / MODEL, root / MODEL)
    return root


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "BERTSERVE_PRECISION": "fp32",
        "BERTSERVE_MODEL_POLL_S": "0.3",
        "BERTSERVE_API_KEY": KEY,
        # every request awaits its tokenizing thread between picking its model and queueing on it:
        # a swap in that gap must still let it finish on the model it picked
        "BERTSERVE_INLINE_TOKENIZE_CHARS": "0",
        # on a busy machine admission may shed some of the 64 clients' requests (429/503 overloaded):
        # what is tested here is the swap, so the queue may hold a long wait
        "BERTSERVE_BATCH__MAX_QUEUE_WAIT_S": "30",
    }
    with run_server(repo, tmp_path_factory.mktemp("repository-logs"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=120)


def classify(url: str, model: str) -> httpx.Response:
    return httpx.post(f"{url}/classify", json={"inputs": "fine", "model": model}, headers=AUTH)


def entry(url: str, model: str) -> dict[str, Any]:
    listing: list[dict[str, Any]] = httpx.get(f"{url}/v1/models").json()["models"]
    return next(m for m in listing if m["name"] == model)


def classify_enum(url: str) -> list[str]:
    """The model names the OpenAPI document offers for /classify."""
    schemas = httpx.get(f"{url}/openapi.json").json()["components"]["schemas"]
    named: list[str] = schemas["ClassifyRequest"]["properties"]["model"]["anyOf"][0]["enum"]
    return named


def test_the_repository_routes_need_the_api_key(server: RunningServer) -> None:
    for path in (
        "/v2/repository/index",
        f"/v2/repository/models/{MODEL}/load",
        f"/v2/repository/models/{MODEL}/unload",
    ):
        refused = httpx.post(f"{server.url}{path}")
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == "Bearer" and "API key" in refused.json()["error"]
    assert classify(server.url, MODEL).status_code == 200  # nothing was unloaded
    assert "model_repository" in httpx.get(f"{server.url}/v2").json()["extensions"]


def test_index_load_and_unload_through_tritons_client(
    server: RunningServer, client: triton.InferenceServerClient, repo: Path
) -> None:
    index = {e["name"]: e for e in client.get_model_repository_index(headers=AUTH)}
    assert index[MODEL] == {"name": MODEL, "version": "1", "state": "READY", "reason": ""}
    shutil.copytree(repo / MODEL, repo / "loaded-by-name")
    client.load_model("loaded-by-name", headers=AUTH)  # answers once it serves
    assert client.is_model_ready("loaded-by-name")
    assert classify(server.url, "loaded-by-name").json()["model"] == "loaded-by-name"
    assert "loaded-by-name" in classify_enum(server.url)

    client.unload_model("loaded-by-name", headers=AUTH)
    gone = classify(server.url, "loaded-by-name")
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "model_not_found"
    assert not client.is_model_ready("loaded-by-name")
    eventually(lambda: index_state(server.url, "loaded-by-name", AUTH) == "UNAVAILABLE", 30, "the unload")
    ready_only = httpx.post(f"{server.url}/v2/repository/index", json={"ready": True}, headers=AUTH).json()
    ready_names = {e["name"] for e in ready_only}
    assert MODEL in ready_names and "loaded-by-name" not in ready_names
    listed = {e["name"]: e for e in client.get_model_repository_index(headers=AUTH)}
    assert listed["loaded-by-name"]["reason"] == "unloaded"
    assert "loaded-by-name" not in classify_enum(server.url)
    asyncio.run(asyncio.sleep(1.0))  # three polls: the folder is there, yet it stays unloaded
    assert classify(server.url, "loaded-by-name").status_code == 404

    with pytest.raises(InferenceServerException) as raised:
        client.load_model("no-such-folder", headers=AUTH)
    assert raised.value.status() == "400" and "no model folder" in str(raised.value.message())
    with pytest.raises(InferenceServerException) as raised:
        client.unload_model("no-such-folder", headers=AUTH)
    assert raised.value.status() == "404"
    with pytest.raises(InferenceServerException) as raised:
        client.load_model(MODEL, headers=AUTH, config='{"max_batch_size": 8}')
    assert raised.value.status() == "400" and "config" in str(raised.value.message())


def test_a_bad_repository_request_is_a_4xx_in_the_protocols_shape(server: RunningServer) -> None:
    url = f"{server.url}/v2/repository"
    for body, status in [
        (b"{", 400),
        (b'{"ready": "yes"}', 400),
        (b'{"unknown": 1}', 400),
        (b"[]", 400),
        (b" " * 20_000, 413),
    ]:
        answer = httpx.post(f"{url}/index", content=body, headers=AUTH)
        assert answer.status_code == status, (body[:20], answer.text)
        assert set(answer.json()) == {"error"}
    bad_name = httpx.post(f"{url}/models/.hidden/load", headers=AUTH)
    assert bad_name.status_code == 400
    extra = httpx.post(f"{url}/models/{MODEL}/unload", json={"parameters": {"force": True}}, headers=AUTH)
    assert extra.status_code == 400 and "force" in extra.json()["error"]


async def test_a_folder_replaced_under_load_is_swapped_in_with_every_answer_200(
    server: RunningServer, repo: Path
) -> None:
    url = server.url
    replacement = repo.parent / "replacement"
    replacement_export(repo / MODEL, replacement)
    swapped = loads_ok(url, MODEL) + 1

    def poll_swap() -> None:
        replace_folder(repo, MODEL, replacement)
        eventually(lambda: loads_ok(url, MODEL) >= swapped, 60, "the poll to swap the folder in")

    answers, _, _ = await under_load(url, MODEL, CLIENTS, poll_swap, around_s=AROUND_S, headers=AUTH)
    assert len(answers) > CLIENTS and statuses(answers) == {200: len(answers)}

    def endpoint_swap() -> None:
        httpx.post(f"{url}/v2/repository/models/{MODEL}/load", headers=AUTH, timeout=120).raise_for_status()

    answers, _, _ = await under_load(url, MODEL, CLIENTS, endpoint_swap, around_s=AROUND_S, headers=AUTH)
    assert len(answers) > CLIENTS and statuses(answers) == {200: len(answers)}
    assert loads_ok(url, MODEL) == swapped + 1
    assert httpx.get(f"{url}/health/ready").status_code == 200
    assert "swapped in" in server.log()


def test_a_broken_replacement_leaves_the_old_model_serving_and_says_why(
    server: RunningServer, repo: Path
) -> None:
    url, name = server.url, "broken-later"
    shutil.copytree(repo / MODEL, repo / name)
    eventually(lambda: classify(url, name).status_code == 200, 30, "the poll to load a new folder")
    manifest = json.loads((repo / name / "manifest.json").read_text())
    manifest["created_at"] = "another export"
    for graph in (repo / name).glob("*.onnx"):
        graph.write_bytes(graph.read_bytes()[:1000])  # truncated: its checksum no longer matches
    (repo / name / "manifest.json").write_text(json.dumps(manifest))
    failed = f'bertserve_model_loads_total{{model="{name}",outcome="failed"}}'
    eventually(lambda: metric(url, failed) >= 1, 30, "the poll to try the broken folder")
    assert classify(url, name).status_code == 200  # the version loaded before still serves
    listing = httpx.get(f"{url}/v1/models").json()
    assert "checksum" in listing["load_errors"][name]
    assert "checksum" in entry(url, name)["last_load_error"] and entry(url, name)["state"] == "ready"
    assert httpx.get(f"{url}/health/ready").status_code == 200
    assert f"model {name}: loading its folder failed" in server.log()
    assert metric(url, failed) == 1  # an unchanged broken folder is not tried again and again

    shutil.rmtree(repo / name)  # a removed folder is unloaded, and its error forgotten
    eventually(lambda: classify(url, name).status_code == 404, 30, "the poll to unload a removed folder")
    assert name not in httpx.get(f"{url}/v1/models").json().get("load_errors", {})


async def test_an_unload_under_load_answers_200_or_404_and_gives_the_memory_back(
    server: RunningServer, client: triton.InferenceServerClient, repo: Path
) -> None:
    url, name, pid = server.url, "unloaded-under-load", server.process.pid
    before = await asyncio.to_thread(settled_resident_mb, pid)
    shutil.copytree(repo / MODEL, repo / name)
    client.load_model(name, headers=AUTH)  # gevent inside: called from this thread only
    answers = await steady(url, name, CLIENTS, AROUND_S, AUTH)  # its runs touch their memory
    assert statuses(answers) == {200: len(answers)}
    loaded = await asyncio.to_thread(settled_resident_mb, pid)

    def unload() -> None:
        triton.InferenceServerClient(url.removeprefix("http://")).unload_model(name, headers=AUTH)
        eventually(lambda: index_state(url, name, AUTH) == "UNAVAILABLE", 30, "the unloaded model to stop")

    answers, _, _ = await under_load(url, name, CLIENTS, unload, around_s=AROUND_S, headers=AUTH)
    codes = statuses(answers)
    assert set(codes) <= {200, 404} and 404 in codes, codes
    after = await asyncio.to_thread(settled_resident_mb, pid)
    assert loaded > before, (before, loaded)
    assert loaded - after >= (loaded - before) / 2, (before, loaded, after)
    assert resident_mb(pid) > 0
