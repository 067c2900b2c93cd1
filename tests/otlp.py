"""A real OTLP/gRPC trace receiver (opentelemetry-proto's TraceService) on a loopback port, keeping
the spans it is sent: the tracing tests and the tracing benchmark export to it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

KIND_NAMES = {Span.SPAN_KIND_SERVER: "server", Span.SPAN_KIND_INTERNAL: "internal"}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver got it, ids as hex."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    attributes: dict[str, Any]
    links: list[tuple[str, str]]  # (trace id, span id) of each linked span
    service: str
    error: bool


def value_of(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


def received_span(span: Span, service: str) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        kind=KIND_NAMES.get(span.kind, str(span.kind)),
        attributes={a.key: value_of(a.value) for a in span.attributes},
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
        service=service,
        error=span.status.code == span.status.STATUS_CODE_ERROR,
    )


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span exported to it (decoded), or with `keep=False` only counts them."""

    def __init__(self, *, keep: bool = True) -> None:
        self.keep = keep
        self.exports = 0
        self.span_count = 0
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def Export(  # noqa: N802 (the generated service's method name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.exports += 1
            for resource_spans in request.resource_spans:
                resource = {a.key: value_of(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    self.span_count += len(scope_spans.spans)
                    if self.keep:
                        service = str(resource.get("service.name", ""))
                        self._spans.extend(received_span(span, service) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, found: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """The spans received, once `found(spans)` holds (AssertionError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while not found(spans := self.spans()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not received within {timeout} s; got {[s.name for s in spans]}")
            time.sleep(0.05)
        return spans


@contextlib.contextmanager
def otlp_receiver(port: int = 0, *, keep: bool = True) -> Iterator[tuple[TraceReceiver, str]]:
    """A receiver listening on 127.0.0.1:`port` (0: a free one) and its endpoint URL."""
    receiver = TraceReceiver(keep=keep)
    # no SO_REUSEPORT: a port another process listens on is refused, not shared with it
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield receiver, f"http://127.0.0.1:{bound}"
    finally:
        server.stop(grace=None)
