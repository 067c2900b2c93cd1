"""OpenTelemetry tracing of inference requests and batch runs; off unless an OTLP endpoint is set.

Configured by the standard variables: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT
(one of them turns it on), OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL (grpc, the default, or http/protobuf),
_HEADERS, _TIMEOUT, _COMPRESSION, _INSECURE, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_SAMPLER[_ARG], OTEL_BSP_* (the batch span processor), OTEL_PROPAGATORS; OTEL_SDK_DISABLED=true
or OTEL_TRACES_EXPORTER=none turn it off. Off, nothing of it is built and a request costs one header
look-up (the ids of a `traceparent` it carries still reach the logs).

An inference request gets a server span, the child of its `traceparent`, with its stages (tokenize,
queue, postprocess) as children. Each batch run gets one span, in a trace of its own, linked to every
request span whose items ran in it, and each of those request spans links back to it; it is kept
whenever one of those requests is sampled.

The spans are built finished (app.spans) and exported through the SDK's BatchSpanProcessor.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, _get_from_env_or_default
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

from app.batching import BatchShape, RunTrace
from app.logs import TraceIds
from app.spans import BatchSpan, SpanRecorder, StageSpan

log = logging.getLogger("bertserve.tracing")

PROTOCOLS = ("grpc", "http/protobuf")
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SHUTDOWN_TIMEOUT_S = 5.0
TRACEPARENT = "traceparent"
# W3C Trace Context: version-traceid-parentid-flags; a later version may append fields.
TRACEPARENT_FORMAT = re.compile(
    r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?[ \t]*"
)
INVALID_TRACE_ID = "0" * 32
INVALID_SPAN_ID = "0" * 16
ERROR = Status(StatusCode.ERROR)


def traceparent_ids(value: str | None) -> TraceIds | None:
    """The trace id and parent span id of a valid `traceparent` header (None for an invalid one)."""
    if not value or (match := TRACEPARENT_FORMAT.fullmatch(value)) is None:
        return None
    version, trace_id, span_id, _, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == INVALID_TRACE_ID:
        return None
    return None if span_id == INVALID_SPAN_ID else TraceIds(trace_id, span_id)


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for tracing: an OTLP endpoint, and the SDK not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def otlp_protocol(environ: Mapping[str, str]) -> str:
    """The OTLP transport asked for; an unknown one is a configuration error, raised at startup."""
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: bertserve exports over {' or '.join(PROTOCOLS)}"
        )
    return protocol


def otlp_exporter(protocol: str) -> SpanExporter:
    """The OTLP exporter of `protocol`, configured by the environment (imported here, only when used:
    the gRPC one is slow to import)."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What the spans of a request, and of the batches it runs in, say of the model serving it."""

    model: str
    task: str
    provider: str
    precision: str

    def request_attributes(self) -> dict[str, str]:
        return {"bertserve.model": self.model, "bertserve.task": self.task}

    def batch_attributes(self) -> dict[str, str]:
        return {
            **self.request_attributes(),
            "bertserve.provider": self.provider,
            "bertserve.precision": self.precision,
        }


class RequestTrace:
    """One sampled inference request: its server span (built when it ends), the spans of its stages,
    and the batch runs its items ran in (linked from its span)."""

    __slots__ = ("_batches", "_method", "_recorder", "_start_ns", "attributes", "context", "facts", "parent")

    def __init__(
        self, recorder: SpanRecorder, context: SpanContext, parent: SpanContext | None, method: str
    ) -> None:
        self._recorder = recorder
        self.context, self.parent = context, parent
        self._method = method
        self._start_ns = time.time_ns()
        self._batches: list[SpanContext] = []
        self.attributes: dict[str, str | int] = {}
        self.facts: ModelFacts | None = None

    def describe(self, facts: ModelFacts) -> None:
        """The model that serves the request (its batch spans say the same, with provider and precision)."""
        self.facts = facts
        self.attributes.update(facts.request_attributes())

    def count(self, items: int, tokens: int) -> None:
        """What the request became once tokenized: its items (windows) and their tokens."""
        self.attributes["bertserve.items"], self.attributes["bertserve.tokens"] = items, tokens

    def stage(self, name: str) -> StageSpan:
        """A child span around one stage."""
        return StageSpan(self._recorder, name, self.context)

    def record(self, name: str, start_ns: int, end_ns: int) -> None:
        """A child span of a stage timed elsewhere (the queue wait, timed by the batcher)."""
        self._recorder.emit_between(name, self.context, start_ns, end_ns)

    def batch_span(self, requests: Sequence[RunTrace], shape: BatchShape) -> BatchSpan:
        """The span of one batch run (entered in the runner thread), linked to `requests`' spans."""
        traced = [request for request in requests if isinstance(request, RequestTrace)]
        attributes: dict[str, str | int | float] = {
            "bertserve.batch.size": shape.size,
            "bertserve.batch.requests": len(traced),
            "bertserve.batch.tokens": shape.real_tokens,
            "bertserve.batch.padded_tokens": shape.padded_tokens,
            "bertserve.batch.padding": shape.padding,
        }
        if self.facts is not None:
            attributes.update(self.facts.batch_attributes())
        batch = BatchSpan(self._recorder, attributes, [Link(request.context) for request in traced])
        for request in traced:  # linked back when each request span ends, on the event loop
            request._batches.append(batch.context)
        return batch

    def finish(self, status: int, route: str | None) -> None:
        """Build the server span, ended now, with the answer's status; 5xx marks it an error."""
        attributes = self.attributes
        attributes["http.response.status_code"] = status
        name = self._method
        if route:
            name = f"{self._method} {route}"
            attributes["http.route"] = route
        unique = {(batch.trace_id, batch.span_id): batch for batch in self._batches}  # windows may share one
        self._recorder.emit(
            name,
            self.context,
            self.parent,
            self._start_ns,
            kind=SpanKind.SERVER,
            attributes=attributes,
            links=[Link(batch) for batch in unique.values()],
            status=ERROR if status >= 500 else None,
        )


def stage(request: RequestTrace | None, name: str) -> StageSpan | NotTraced:
    """`request.stage(name)`, or a shared do-nothing context for a request that is not traced."""
    return NOT_TRACED if request is None else request.stage(name)


class NotTraced:
    """The block of a request that is not traced: nothing happens around it."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


NOT_TRACED = NotTraced()


class Tracing:
    """The server's tracing: `Tracing(None)` is off; `from_environment()` reads the OTEL_* variables."""

    def __init__(self, recorder: SpanRecorder | None) -> None:
        self._recorder = recorder

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Tracing:
        environ = os.environ if environ is None else environ
        if not tracing_wanted(environ):
            return cls(None)
        protocol = otlp_protocol(environ)
        processor = BatchSpanProcessor(otlp_exporter(protocol))
        endpoint = next(environ[name] for name in ENDPOINT_VARIABLES if environ.get(name, "").strip())
        log.info("tracing on: spans exported over OTLP (%s) to %s", protocol, endpoint)
        return cls(SpanRecorder(processor, _get_from_env_or_default()))

    @property
    def enabled(self) -> bool:
        return self._recorder is not None

    def start_request(
        self, method: str, path: str, headers: Mapping[str, str], request_id: str
    ) -> tuple[RequestTrace | None, TraceIds | None]:
        """The request's trace (None when off or not sampled) and the ids its log lines carry."""
        recorder = self._recorder
        if recorder is None:
            return None, traceparent_ids(headers.get(TRACEPARENT))
        parent_context = propagate.extract(headers)  # traceparent, or what OTEL_PROPAGATORS names
        parent: SpanContext | None = trace.get_current_span(parent_context).get_span_context()
        if parent is None or not parent.is_valid:
            parent, parent_context = None, Context()  # a root: no ambient span may become its parent
        trace_id = parent.trace_id if parent is not None else recorder.ids.generate_trace_id()
        decision = recorder.sampler.should_sample(parent_context, trace_id, method, SpanKind.SERVER)
        context = recorder.new_span_context(trace_id, decision.trace_state)
        log_ids = TraceIds(f"{trace_id:032x}", f"{context.span_id:016x}")
        if decision.decision is not Decision.RECORD_AND_SAMPLE:
            return None, log_ids
        request = RequestTrace(recorder, context, parent, method)
        request.attributes.update(
            {"http.request.method": method, "url.path": path, "bertserve.request_id": request_id}
        )
        return request, log_ids

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Export what is still buffered and stop the exporter, waiting at most `timeout_s`: an
        unreachable collector must not hold the exit past the container's grace period."""
        if self._recorder is not None:
            flushing = threading.Thread(
                target=self._recorder.processor.shutdown, name="tracing-shutdown", daemon=True
            )
            flushing.start()
            flushing.join(timeout_s)
