"""JSON logs end to end, with tracing off: every line a real server writes is one JSON object; a
request's lines carry its request id, model, and the ids of the `traceparent` it came with; and
without an OTLP endpoint nothing is exported, not even to the exporter's default port."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import RunningServer, run_server
from tests.otlp import TraceReceiver, otlp_receiver

pytestmark = pytest.mark.slow

TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
DEFAULT_OTLP_GRPC_PORT = 4317
BASE_KEYS = {"time", "level", "logger", "message", "request_id"}


@contextlib.contextmanager
def receiver_on_default_port() -> Iterator[TraceReceiver | None]:
    """A receiver where the exporter sends by default (localhost:4317); None if the port is taken."""
    with contextlib.ExitStack() as stack:
        try:
            receiver: TraceReceiver | None = stack.enter_context(otlp_receiver(DEFAULT_OTLP_GRPC_PORT))[0]
        except RuntimeError:  # grpc could not bind it
            receiver = None
        yield receiver


@pytest.fixture(scope="module")
def untraced(
    tiny_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, Any]]:
    """A server with JSON logs and the access log, every OTEL_* setting but an endpoint."""
    env = {
        "BERTSERVE_MODELS": '["tiny-classify"]',
        "BERTSERVE_PRECISION": "fp32",
        "BERTSERVE_LOG_FORMAT": "json",
        "BERTSERVE_ACCESS_LOG": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "bertserve-untraced",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    with (
        receiver_on_default_port() as receiver,
        run_server(tiny_models, tmp_path_factory.mktemp("json-logs"), env=env) as server,
    ):
        yield server, receiver


def lines_of(server: RunningServer) -> list[dict[str, Any]]:
    """Every line of the server's output (stdout and stderr), each parsed as one JSON object."""
    parsed = []
    for text in server.log().splitlines():
        line = json.loads(text)
        assert isinstance(line, dict) and set(line) >= BASE_KEYS, text
        parsed.append(line)
    return parsed


def test_every_line_is_json_and_a_request_line_carries_its_ids(untraced: tuple[RunningServer, Any]) -> None:
    server, _ = untraced
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "x-request-id": "json-logs-1"}
    response = httpx.post(f"{server.url}/classify", json={"inputs": "fine"}, headers=headers, timeout=30)
    assert response.status_code == 200
    plain = httpx.post(f"{server.url}/classify", json={"inputs": "fine"}, timeout=30)
    missing = httpx.post(f"{server.url}/classify", json={"inputs": "x", "model": "nope"}, timeout=30)
    assert missing.status_code == 404
    lines = lines_of(server)
    assert any(line["logger"] == "uvicorn.error" and "startup complete" in line["message"] for line in lines)
    access = {line["request_id"]: line for line in lines if line["logger"] == "uvicorn.access"}
    traced = access["json-logs-1"]
    assert (traced["trace_id"], traced["span_id"]) == (TRACE_ID, PARENT_ID)  # tracing off: the client's
    assert traced["model"] == "tiny-classify"
    assert (traced["method"], traced["path"], traced["status"]) == ("POST", "/classify", 200)
    untraced_line = access[plain.headers["x-request-id"]]
    assert "trace_id" not in untraced_line and untraced_line["model"] == "tiny-classify"
    assert access[missing.headers["x-request-id"]]["status"] == 404
    for line in lines:
        assert line["time"].endswith("Z") and line["level"] in {
            "DEBUG",
            "INFO",
            "WARNING",
            "ERROR",
            "CRITICAL",
        }
    assert not any("tracing on" in line["message"] for line in lines)


def test_without_an_endpoint_nothing_is_exported(untraced: tuple[RunningServer, Any]) -> None:
    server, receiver = untraced
    if receiver is None:
        pytest.skip(f"port {DEFAULT_OTLP_GRPC_PORT} is taken: the exporter's default cannot be watched")
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    assert (
        httpx.post(f"{server.url}/classify", json={"inputs": "x"}, headers=headers, timeout=30).status_code
        == 200
    )
    server.stop()  # a tracer provider would flush its spans now
    assert "Finished server process" in server.log()
    assert (receiver.exports, receiver.span_count) == (0, 0)
