"""`bertserve serve` is the server `python -m app` runs: it answers, and drains on SIGTERM."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from tests.harness import free_port, run_process

SCRIPT = Path(sys.executable).parent / "bertserve"


def test_bertserve_serve_answers_and_drains_on_sigterm(tiny_models: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "BERTSERVE_MODEL_DIR": str(tiny_models),
        "BERTSERVE_MODELS": '["tiny-classify"]',
        "BERTSERVE_PRECISION": "fp32",
        "BERTSERVE_HOST": "127.0.0.1",
        "BERTSERVE_PORT": str(port),
        "BERTSERVE_INTRA_OP_THREADS": "1",
    }
    with run_process([str(SCRIPT), "serve"], port, tmp_path, env=env) as server:
        answer = httpx.post(f"{server.url}/classify", json={"inputs": "a fine film"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-model"] == "tiny-classify"
        # uvicorn re-raises the signal after a clean shutdown: the exit status is SIGTERM's own
        assert server.stop() in (0, -15)
    assert "draining" in server.log()
