"""Finished spans, built once and handed to the OpenTelemetry SDK's span processor (app.tracing's).

No span of the server is ever current or changed by other code once it ends, so none needs the SDK's
live span: each is made as a ReadableSpan when it ends, which costs a fraction of a live one. The
sampler decides at each request's server span (app.tracing), as the SDK would; ids come from the
SDK's generator.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def service_resource() -> Resource:
    """The resource of the environment (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), named bertserve
    unless it names itself."""
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "bertserve"}))
    return resource


class SpanRecorder:
    """Builds finished spans and hands them to a span processor; the sampler decides at the root of
    each request's spans, and the ids come from the SDK's generator."""

    def __init__(self, processor: SpanProcessor, sampler: Sampler, resource: Resource | None = None) -> None:
        self.processor = processor
        self.sampler = sampler
        self.resource = resource or service_resource()
        self.scope = InstrumentationScope("bertserve")
        self.ids = RandomIdGenerator()

    def new_span_context(self, trace_id: int, trace_state: Any = None) -> SpanContext:
        return SpanContext(trace_id, self.ids.generate_span_id(), False, SAMPLED, trace_state)

    def emit(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        start_ns: int,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] = (),
        error: BaseException | None = None,
        status: Status | None = None,
    ) -> None:
        """One finished span, ending now, to the processor; an exception is its error status and event."""
        end_ns = time.time_ns()
        events: tuple[Event, ...] = ()
        if error is not None:
            events = (exception_event(error, end_ns),)
            status = Status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
        span = ReadableSpan(
            name=name,
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=attributes,
            events=events,
            links=links,
            kind=kind,
            status=status or Status(),
            start_time=start_ns,
            end_time=max(start_ns, end_ns),
            instrumentation_scope=self.scope,
        )
        self.processor.on_end(span)

    def emit_between(self, name: str, parent: SpanContext, start_ns: int, end_ns: int) -> None:
        """A finished child span of `parent` timed elsewhere."""
        context = self.new_span_context(parent.trace_id, parent.trace_state)
        span = ReadableSpan(
            name=name,
            context=context,
            parent=parent,
            resource=self.resource,
            start_time=start_ns,
            end_time=max(start_ns, end_ns),
            instrumentation_scope=self.scope,
        )
        self.processor.on_end(span)


def exception_event(error: BaseException, timestamp: int) -> Event:
    """The span event OpenTelemetry's semantic conventions name for an exception."""
    stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    attributes = {"exception.type": type(error).__qualname__, "exception.message": str(error)}
    return Event("exception", {**attributes, "exception.stacktrace": stack}, timestamp)


class StageSpan:
    """A child span of a request around one block; an exception leaving the block is recorded on it."""

    __slots__ = ("_name", "_parent", "_recorder", "_start_ns")

    def __init__(self, recorder: SpanRecorder, name: str, parent: SpanContext) -> None:
        self._recorder, self._name, self._parent = recorder, name, parent
        self._start_ns = 0

    def __enter__(self) -> None:
        self._start_ns = time.time_ns()

    def __exit__(self, _: object, error: BaseException | None, __: object) -> None:
        context = self._recorder.new_span_context(self._parent.trace_id, self._parent.trace_state)
        failed = error if isinstance(error, Exception) else None
        self._recorder.emit(self._name, context, self._parent, self._start_ns, error=failed)


class BatchSpan:
    """The span of one batch run, the root of a trace of its own, linked to its requests' spans."""

    __slots__ = ("_attributes", "_links", "_recorder", "_start_ns", "context")

    def __init__(self, recorder: SpanRecorder, attributes: dict[str, Any], links: list[Link]) -> None:
        self._recorder, self._attributes, self._links = recorder, attributes, links
        self.context = recorder.new_span_context(recorder.ids.generate_trace_id())
        self._start_ns = 0

    def __enter__(self) -> None:
        self._start_ns = time.time_ns()

    def __exit__(self, _: object, error: BaseException | None, __: object) -> None:
        failed = error if isinstance(error, Exception) else None
        self._recorder.emit(
            "batch",
            self.context,
            None,
            self._start_ns,
            attributes=self._attributes,
            links=self._links,
            error=failed,
        )
