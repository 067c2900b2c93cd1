"""Tracing end to end: a real server exports its spans over OTLP/gRPC to a real receiver started here;
a request's trace shows its stages and the batch it ran in, and its log lines carry its trace id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import RunningServer, run_server
from tests.otlp import ReceivedSpan, TraceReceiver, otlp_receiver

pytestmark = pytest.mark.slow

CLIENT_TRACES = ("4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c")
CLIENT_SPANS = ("00f067aa0ba902b7", "b7ad6b7169203331")
MODEL = {"bertserve.model": "tiny-classify", "bertserve.task": "classify"}
ENGINE = {"bertserve.provider": "CPUExecutionProvider", "bertserve.precision": "fp32"}


@dataclass
class TracedServer:
    server: RunningServer
    receiver: TraceReceiver


@pytest.fixture(scope="module")
def traced(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracedServer]:
    """A server exporting to the receiver within 50 ms of a span's end; batches wait 300 ms for
    companions, whatever their lengths, so that requests sent together run in one batch; JSON logs
    with the access log."""
    with otlp_receiver() as (receiver, endpoint):
        env = {
            "BERTSERVE_MODELS": '["tiny-classify"]',
            "BERTSERVE_PRECISION": "fp32",
            "BERTSERVE_BATCH__ALWAYS_WAIT": "true",
            "BERTSERVE_BATCH__MAX_DELAY_MS": "300",
            "BERTSERVE_BATCH__MAX_PADDING_RATIO": "1",
            "BERTSERVE_LOG_FORMAT": "json",
            "BERTSERVE_ACCESS_LOG": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_SERVICE_NAME": "bertserve-under-test",
        }
        with run_server(tiny_models, tmp_path_factory.mktemp("traced"), env=env) as server:
            yield TracedServer(server, receiver)


def traceparent(index: int) -> str:
    return f"00-{CLIENT_TRACES[index]}-{CLIENT_SPANS[index]}-01"


async def send_together(url: str) -> list[httpx.Response]:
    """Two requests at once, each from a client span of its own trace."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return list(
            await asyncio.gather(
                *(
                    client.post(
                        "/classify",
                        json={"inputs": ["a fine film", "a dull film"][i]},
                        headers={"traceparent": traceparent(i)},
                    )
                    for i in range(2)
                )
            )
        )


def server_span_of(spans: list[ReceivedSpan], trace_id: str) -> ReceivedSpan:
    [span] = [s for s in spans if s.kind == "server" and s.trace_id == trace_id]
    return span


def access_lines(server: RunningServer) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    return [line for line in lines if line["logger"] == "uvicorn.access"]


def test_a_request_trace_shows_its_stages_and_the_batch_it_shared(traced: TracedServer) -> None:
    responses = asyncio.run(send_together(traced.server.url))
    assert [r.status_code for r in responses] == [200, 200]

    def complete(spans: list[ReceivedSpan]) -> bool:
        servers = [s for s in spans if s.kind == "server" and s.trace_id in CLIENT_TRACES]
        return len(servers) == 2 and any(s.name == "batch" for s in spans)

    spans = traced.receiver.wait_for(complete)
    requests = [server_span_of(spans, trace_id) for trace_id in CLIENT_TRACES]
    [batch] = [s for s in spans if s.name == "batch" and s.links]
    for index, request in enumerate(requests):
        assert request.name == "POST /classify"
        assert request.parent_id == CLIENT_SPANS[index]  # the child of the client's span
        assert request.service == "bertserve-under-test"
        assert request.attributes["http.response.status_code"] == 200
        assert request.attributes["bertserve.request_id"] == responses[index].headers["x-request-id"]
        assert request.attributes["bertserve.items"] == 1 and request.attributes["bertserve.tokens"] > 2
        assert request.attributes.items() >= MODEL.items()
        stages = {s.name: s for s in spans if s.parent_id == request.span_id}
        assert set(stages) == {"tokenize", "queue", "postprocess"}
        assert all(stage.trace_id == request.trace_id for stage in stages.values())
        assert request.links == [(batch.trace_id, batch.span_id)]  # the request links to its batch
    assert set(batch.links) == {(r.trace_id, r.span_id) for r in requests}  # and the batch to both
    assert batch.parent_id == "" and batch.trace_id not in CLIENT_TRACES
    assert batch.attributes["bertserve.batch.size"] == 2
    assert batch.attributes["bertserve.batch.requests"] == 2
    assert batch.attributes["bertserve.batch.padded_tokens"] >= batch.attributes["bertserve.batch.tokens"]
    assert 0 <= batch.attributes["bertserve.batch.padding"] < 1
    assert batch.attributes.items() >= {**MODEL, **ENGINE}.items()
    # the access line of each request carries its request id and its server span's ids
    by_request_id = {line["request_id"]: line for line in access_lines(traced.server)}
    for response, request in zip(responses, requests, strict=True):
        line = by_request_id[response.headers["x-request-id"]]
        assert (line["trace_id"], line["span_id"]) == (request.trace_id, request.span_id)
        assert line["model"] == "tiny-classify" and line["status"] == 200


def test_an_untraced_client_starts_a_trace_and_v2_spans_are_named_by_route(traced: TracedServer) -> None:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}]}
    response = httpx.post(f"{traced.server.url}/v2/models/tiny-classify/infer", json=body, timeout=30)
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]

    def found(spans: list[ReceivedSpan]) -> bool:
        return any(s.attributes.get("bertserve.request_id") == request_id for s in spans)

    [span] = [
        s for s in traced.receiver.wait_for(found) if s.attributes.get("bertserve.request_id") == request_id
    ]
    assert span.name == "POST /v2/models/{name}/infer"
    assert span.parent_id == "" and span.kind == "server"
    assert span.attributes["http.route"] == "/v2/models/{name}/infer"
    # probes and other routes make no spans
    httpx.get(f"{traced.server.url}/health/ready", timeout=10)
    assert not any(s.attributes.get("url.path") == "/health/ready" for s in traced.receiver.spans())
