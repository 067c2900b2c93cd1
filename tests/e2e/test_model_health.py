"""Readiness follows failure, against a real server: a model whose batches keep failing turns unready
and is re-opened until it serves again; an unreadable entry in the model directory is skipped and
reported, and the models beside it load and turn ready."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import free_port, run_process, run_server

MODEL = "tiny-classify"


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def metric(url: str, name: str, labels: str) -> float:
    found = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", httpx.get(f"{url}/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def model_entry(url: str) -> dict[str, Any]:
    listing: list[dict[str, Any]] = httpx.get(f"{url}/v1/models").json()["models"]
    return next(m for m in listing if m["name"] == MODEL)


def test_a_model_whose_batches_keep_failing_turns_unready_and_is_reopened(
    tiny_models: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "models"
    shutil.copytree(tiny_models / MODEL, repo / MODEL)
    env = {
        "BERTSERVE_PRECISION": "fp32",
        "BERTSERVE_FAULTS": json.dumps({MODEL: {"fail_runs": 3}}),  # the first 3 batches fail
        "BERTSERVE_MAX_CONSECUTIVE_FAILURES": "3",
        "BERTSERVE_RELOAD_BACKOFF_S": "[1, 2]",
        "BERTSERVE_BATCH__MAX_BATCH_SIZE": "1",
        "BERTSERVE_BATCH__MAX_DELAY_MS": "0",
    }
    with run_server(repo, tmp_path, env=env) as server:
        url = server.url
        onnx = repo / MODEL / "model.fp32.onnx"
        original = onnx.read_bytes()
        onnx.write_bytes(original + b"x")  # the re-opened session must pass its checksum: not yet
        codes = [httpx.post(f"{url}/classify", json={"inputs": f"text {i}"}).status_code for i in range(3)]
        assert codes == [500, 500, 500]

        ready = httpx.get(f"{url}/health/ready")
        assert ready.status_code == 503
        assert ready.json()["models"][MODEL] == "failed"
        assert "3 batches in a row failed" in ready.json()["errors"][MODEL]
        assert model_entry(url)["state"] == "failed"
        refused = httpx.post(f"{url}/classify", json={"inputs": "while failed"})
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "model_not_ready"
        assert int(refused.headers["retry-after"]) >= 1
        assert metric(url, "bertserve_model_ready", f'model="{MODEL}"') == 0

        eventually(
            lambda: metric(url, "bertserve_model_reloads_total", f'model="{MODEL}",outcome="failed"'),
            30,
            "a failed try to re-open the session",
        )
        assert "checksum" in model_entry(url)["error"]
        onnx.write_bytes(original)

        eventually(lambda: httpx.get(f"{url}/health/ready").status_code == 200, 30, "ready again")
        assert httpx.post(f"{url}/classify", json={"inputs": "served again"}).status_code == 200
        entry = model_entry(url)
        assert entry["state"] == "ready" and entry["reloads"] == 1 and "error" not in entry
        assert metric(url, "bertserve_model_reloads_total", f'model="{MODEL}",outcome="ok"') == 1
        assert metric(url, "bertserve_model_ready", f'model="{MODEL}"') == 1
    log = server.log()
    assert "re-opening its session failed" in log and "its session was re-opened" in log


def can_drop_file_capabilities() -> bool:
    """Whether this process may start one that keeps uid 0 without bypassing file permissions."""
    if shutil.which("setpriv") is None:
        return False
    probe = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "true"]
    return subprocess.run(probe, check=False, capture_output=True).returncode == 0


@pytest.mark.skipif(not can_drop_file_capabilities(), reason="needs setpriv and CAP_SETPCAP")
def test_an_unreadable_folder_in_the_model_directory_is_skipped_and_reported(
    tiny_models: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "models"
    shutil.copytree(tiny_models / MODEL, repo / MODEL)
    (repo / "lost+found").mkdir(mode=0)  # as on a freshly formatted volume, to anyone but its owner
    port = free_port()
    env = {
        "BERTSERVE_MODEL_DIR": str(repo),
        "BERTSERVE_HOST": "127.0.0.1",
        "BERTSERVE_PORT": str(port),
        "BERTSERVE_PRECISION": "fp32",
        "BERTSERVE_INTRA_OP_THREADS": "1",
    }
    # uid 0 without the capabilities that let root read any file: the folder is unreadable to it
    command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m", "app"]
    try:
        with run_process(command, port, tmp_path, env=env, timeout=60) as server:
            ready = httpx.get(f"{server.url}/health/ready").json()
            assert ready["ready"] is True and ready["models"] == {MODEL: "ready"}
            assert "Permission denied" in ready["discovery_errors"]["lost+found"]
            listing = httpx.get(f"{server.url}/v1/models").json()
            assert "Permission denied" in listing["discovery_errors"]["lost+found"]
            assert metric(server.url, "bertserve_discovery_errors", 'entry="lost+found"') == 1
            assert "model directory entry lost+found skipped" in server.log()
    finally:
        (repo / "lost+found").chmod(0o700)
