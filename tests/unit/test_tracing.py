"""Tracing in process: the OTEL_* switch, traceparent parsing, sampling, and the spans of a request and
of the batch its items run in (a real batcher; the SDK's span processor, spans kept in memory)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, DEFAULT_ON, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from app.batching import BatchShape, DynamicBatcher
from app.batching.limits import BatchLimits
from app.logs import TraceIds
from app.spans import SpanRecorder
from app.tracing import (
    ModelFacts,
    RequestTrace,
    Tracing,
    otlp_exporter,
    otlp_protocol,
    traceparent_ids,
    tracing_wanted,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
FACTS = ModelFacts(model="m", task="classify", provider="CPUExecutionProvider", precision="int8")


@pytest.mark.parametrize(
    ("header", "ids"),
    [
        (TRACEPARENT, TraceIds(TRACE_ID, PARENT_ID)),
        (f"01-{TRACE_ID}-{PARENT_ID}-00-later-fields", TraceIds(TRACE_ID, PARENT_ID)),
        (None, None),
        ("", None),
        ("garbage", None),
        (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", None),  # W3C: lowercase hex only
        (f"00-{'0' * 32}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),
        (f"ff-{TRACE_ID}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID}-{PARENT_ID}-01-extra", None),  # version 00 has exactly four fields
    ],
)
def test_traceparent_ids(header: str | None, ids: TraceIds | None) -> None:
    assert traceparent_ids(header) == ids


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_with_an_endpoint(environ: dict[str, str], wanted: bool) -> None:
    assert tracing_wanted(environ) is wanted
    tracing = Tracing.from_environment(environ)
    assert tracing.enabled is wanted
    tracing.shutdown()


def test_the_protocol_is_grpc_unless_told_and_an_unknown_one_is_refused() -> None:
    assert otlp_protocol({}) == "grpc"
    assert otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) == "http/protobuf"
    both = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}
    assert otlp_protocol(both) == "grpc"
    with pytest.raises(ValueError, match="http/json"):
        otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    assert "grpc" in type(otlp_exporter("grpc")).__module__
    assert "http" in type(otlp_exporter("http/protobuf")).__module__


def test_off_no_span_is_made_but_a_traceparent_reaches_the_logs() -> None:
    tracing = Tracing(None)
    assert tracing.start_request("POST", "/classify", {"traceparent": TRACEPARENT}, "r1") == (
        None,
        TraceIds(TRACE_ID, PARENT_ID),
    )
    assert tracing.start_request("POST", "/classify", {}, "r1") == (None, None)
    tracing.shutdown()


def recording(sampler: Sampler) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracing(SpanRecorder(SimpleSpanProcessor(exporter), sampler)), exporter


@pytest.mark.parametrize(
    ("sampler", "flags", "traced"),
    [
        (ALWAYS_ON, "00", True),
        (DEFAULT_ON, "01", True),
        (DEFAULT_ON, "00", False),  # parent-based: the client did not sample its span
        (ALWAYS_OFF, "01", False),
        (TraceIdRatioBased(0.0), "01", False),
    ],
)
def test_the_sampler_decides_at_the_server_span(sampler: Sampler, flags: str, traced: bool) -> None:
    tracing, exporter = recording(sampler)
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-{flags}"}
    trace, ids = tracing.start_request("POST", "/classify", headers, "r1")
    assert (trace is not None) is traced
    assert ids is not None and ids.trace_id == TRACE_ID and ids.span_id != PARENT_ID  # logged either way
    if trace is not None:
        trace.finish(200, "/classify")
        [span] = exporter.get_finished_spans()
        assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_ID
        assert f"{span.context.span_id:016x}" == ids.span_id and span.kind is SpanKind.SERVER
    else:
        assert exporter.get_finished_spans() == ()


@pytest.fixture
def spans() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    tracing, exporter = recording(ALWAYS_ON)
    yield tracing, exporter
    tracing.shutdown()


def request_trace(tracing: Tracing, request_id: str, headers: dict[str, str] | None = None) -> RequestTrace:
    trace, ids = tracing.start_request("POST", "/classify", headers or {}, request_id)
    assert trace is not None and ids is not None
    assert ids.trace_id == f"{trace.context.trace_id:032x}"
    trace.describe(FACTS)
    return trace


@dataclass
class Padded:
    lengths: list[int]

    @property
    def padded_tokens(self) -> int:
        return max(self.lengths) * len(self.lengths)


@dataclass
class HeldRunner:
    """Runs batches of ints once let go; fails them when told to."""

    gate: threading.Event = field(default_factory=threading.Event)
    fail: bool = False

    def pad(self, payloads: Sequence[int]) -> Padded:
        return Padded(list(payloads))

    def run(self, batch: Padded) -> list[int]:
        self.gate.wait(5)
        if self.fail:
            raise RuntimeError("boom")
        return batch.lengths


def by_name(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


async def run_one_batch(
    runner: HeldRunner, *submissions: tuple[list[int], RequestTrace | None]
) -> list[object]:
    """Submit every request while the runner is busy, so that they all run in the second batch."""
    limits = BatchLimits(max_delay_ms=50, max_padding_ratio=1.0)
    batcher: DynamicBatcher[int, int] = DynamicBatcher("m", runner, limits)
    batcher.start()
    try:
        blocker = asyncio.ensure_future(batcher.submit([(1, 1)], 5.0))
        await asyncio.sleep(0.05)
        waiting = [
            asyncio.ensure_future(batcher.submit([(n, n) for n in items], 5.0, trace=trace))
            for items, trace in submissions
        ]
        await asyncio.sleep(0.05)
        runner.gate.set()
        await asyncio.gather(blocker, return_exceptions=True)
        return list(await asyncio.gather(*waiting, return_exceptions=True))
    finally:
        await batcher.close()


async def test_one_span_per_batch_run_linked_to_and_from_each_traced_request(
    spans: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = spans
    first = request_trace(tracing, "r1", {"traceparent": TRACEPARENT})
    second = request_trace(tracing, "r2")
    await run_one_batch(HeldRunner(), ([3, 3], first), ([4], second), ([3], None))
    [batch] = by_name(exporter, "batch")
    assert batch.parent is None  # a trace of its own
    linked = {link.context.span_id for link in batch.links}
    assert linked == {first.context.span_id, second.context.span_id}
    assert batch.attributes is not None
    assert dict(batch.attributes) == {
        "bertserve.batch.size": 4,
        "bertserve.batch.requests": 2,
        "bertserve.batch.tokens": 13,
        "bertserve.batch.padded_tokens": 16,
        "bertserve.batch.padding": pytest.approx(3 / 16),
        **FACTS.batch_attributes(),
    }
    for request in (first, second):
        request.finish(200, "/classify")
    servers = by_name(exporter, "POST /classify")
    assert len(servers) == 2
    for server in servers:  # the two items of the first request ran in one batch: one link
        assert [link.context.span_id for link in server.links] == [batch.context.span_id]
    [with_parent] = [span for span in servers if span.parent is not None]
    assert with_parent.parent is not None
    assert (with_parent.context.trace_id, with_parent.parent.span_id) == (
        int(TRACE_ID, 16),
        int(PARENT_ID, 16),
    )


async def test_a_failed_batch_run_is_an_error_span(spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = spans
    traced = request_trace(tracing, "r1")
    runner = HeldRunner(fail=True)
    outcomes = await run_one_batch(runner, ([2], traced))
    assert len(outcomes) == 1 and isinstance(outcomes[0], Exception)
    [batch] = by_name(exporter, "batch")
    assert not batch.status.is_ok
    assert [event.name for event in batch.events] == ["exception"]


async def test_untraced_requests_make_no_span(spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    _, exporter = spans
    outcomes = await run_one_batch(HeldRunner(), ([2], None), ([3], None))
    assert [getattr(outcome, "outputs", None) for outcome in outcomes] == [[2], [3]]
    assert exporter.get_finished_spans() == ()


def test_stages_are_children_of_the_request_span(spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = spans
    traced = request_trace(tracing, "r1")
    with traced.stage("tokenize"):
        pass
    traced.record("queue", 1_000, 2_000)
    with pytest.raises(ValueError), traced.stage("postprocess"):
        raise ValueError("bad")
    traced.count(items=2, tokens=9)
    traced.finish(503, None)
    server_id = traced.context.span_id
    tokenize, queue, postprocess = (
        by_name(exporter, name)[0] for name in ("tokenize", "queue", "postprocess")
    )
    assert {span.parent.span_id for span in (tokenize, queue, postprocess) if span.parent} == {server_id}
    assert tokenize.end_time is not None and tokenize.start_time is not None
    assert tokenize.end_time >= tokenize.start_time
    assert (queue.start_time, queue.end_time) == (1_000, 2_000)
    assert not postprocess.status.is_ok
    assert [event.name for event in postprocess.events] == ["exception"]
    assert postprocess.events[0].attributes is not None
    assert postprocess.events[0].attributes["exception.type"] == "ValueError"
    [server] = by_name(exporter, "POST")  # no route: the method alone
    assert server.attributes is not None and not server.status.is_ok
    assert server.attributes["http.response.status_code"] == 503
    assert server.attributes["bertserve.tokens"] == 9
    assert BatchShape(2, 0, 0).padding == 0.0


def test_shutdown_does_not_wait_for_a_collector_that_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
        tracing = Tracing.from_environment()
        trace, _ = tracing.start_request("POST", "/classify", {}, "r1")
        assert trace is not None
        trace.finish(200, "/classify")
        tracing.shutdown(timeout_s=0.2)
        assert any(thread.name == "tracing-shutdown" for thread in threading.enumerate())  # still exporting
