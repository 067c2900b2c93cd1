"""The inference service: what the routes call to serve a request on a model of the registry
(limits, tokenizing, queueing, post-processing, and the batcher's refusals as service errors)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from app.batching import BatcherClosed, BatchFailed, Completed, NeverFits
from app.errors import (
    DeadlineExceeded,
    Draining,
    ErrorKind,
    InferenceFailed,
    Overloaded,
    QueueFull,
    ServiceError,
    TextTooLong,
    TooManyInputs,
    TooManyItems,
)
from app.lifecycle.registry import ModelRegistry, ModelSlot
from app.metrics import Metrics
from app.settings import Settings
from app.tasks.base import Prepared, Task
from app.tracing import ModelFacts, RequestTrace, stage

log = logging.getLogger("bertserve.service")

CHARACTERS_PER_TOKEN = 4
"""A low guess of the characters per token of English text, for the work a request brings before
it is tokenized (admission counts it while the request tokenizes)."""

INLINE_POSTPROCESS_WORK = 512
"""Post-processing runs on the event loop only for a request tokenized there whose items hold at most
this many tokens (QA spans included, Task.postprocess_work): about one window, a few milliseconds."""


@dataclass
class Timings:
    """Per-request stage times, for response headers."""

    tokenize: float = 0.0
    queue: float = 0.0
    inference: float = 0.0
    received: float = 0.0  # perf_counter() when the request reached the server, 0 = unknown


@dataclass
class Service:
    """Serves requests on the registry's models; the routes reach the registry through it."""

    settings: Settings
    metrics: Metrics
    registry: ModelRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.registry = ModelRegistry(self.settings, self.metrics)

    def check_limits(self, task: Task[Any, Any], request: BaseModel) -> None:
        count = task.input_count(request)
        if count > self.settings.max_items_per_request:
            raise TooManyInputs(
                f"{count} inputs in one request; the limit is {self.settings.max_items_per_request}"
            )
        for text in task.texts(request):
            if len(text) > self.settings.max_text_chars:
                raise TextTooLong(
                    f"a text of {len(text)} characters; the limit is {self.settings.max_text_chars}"
                )

    async def infer(
        self,
        task: Task[Any, Any],
        slot: ModelSlot,
        request: BaseModel,
        timings: Timings,
        request_id: str = "",
        *,
        trace: RequestTrace | None = None,
    ) -> BaseModel:
        """Tokenize, queue, batch, run and post-process one request (each stage a span of `trace`)."""
        assert slot.context is not None and slot.batcher is not None
        context = slot.context
        if trace is not None:
            trace.describe(model_facts(slot, task))
        self._check_not_behind(slot, timings)
        characters = sum(map(len, task.texts(request)))
        with self._refusals(slot, request_id):  # refuse before tokenizing: refusing must stay cheap
            reservation = slot.batcher.reserve(characters // CHARACTERS_PER_TOKEN)
        started = time.perf_counter()
        inline = characters <= self.settings.inline_tokenize_chars
        with reservation, stage(trace, "tokenize"):
            prepared = await self._preprocess(task, slot, request, inline)
        timings.tokenize = time.perf_counter() - started
        self.metrics.tokenize.labels(slot.name).observe(timings.tokenize)
        if prepared.truncated:
            self.metrics.truncated.labels(slot.name).inc(prepared.truncated)
        if trace is not None:
            trace.count(len(prepared.items), sum(item.length for item in prepared.items))
        done = await self._queue(slot, prepared, request_id, trace)
        timings.queue, timings.inference = done.queue_seconds, done.inference_seconds
        inline = inline and task.postprocess_work(request, prepared) <= INLINE_POSTPROCESS_WORK
        with stage(trace, "postprocess"):
            if inline:
                answer: BaseModel = task.postprocess(request, prepared, done.outputs, context)
            else:  # many windows, tokens or QA spans: keep the work off the loop
                answer = await asyncio.to_thread(task.postprocess, request, prepared, done.outputs, context)
        return answer

    async def _queue(
        self, slot: ModelSlot, prepared: Prepared, request_id: str, trace: RequestTrace | None
    ) -> Completed[Any]:
        """Queue the request's items and await their outputs; the wait for their batch is a span."""
        assert slot.batcher is not None
        queued_ns = time.time_ns()
        done: Completed[Any] | None = None
        try:
            with self._refusals(slot, request_id):
                done = await slot.batcher.submit(
                    [(item, item.length) for item in prepared.items],
                    self.settings.request_timeout_s,
                    tag=request_id,
                    trace=trace,
                )
            return done
        finally:
            if trace is not None:  # until its (last) batch started, or until it failed
                waited = time.time_ns() if done is None else queued_ns + int(done.queue_seconds * 1e9)
                trace.record("queue", queued_ns, waited)

    async def _preprocess(
        self, task: Task[Any, Any], slot: ModelSlot, request: BaseModel, inline: bool
    ) -> Prepared:
        """Tokenize into items, on the loop when small; a request needing more windows than one
        request may have, or than the model's queue holds, gets 413 before any is built."""
        assert slot.context is not None
        queue = self.settings.limits_for(slot.name).max_queue_items
        limit = min(self.settings.max_windows_per_request, queue)
        try:
            if inline:
                return task.preprocess(request, slot.context, limit)  # cheaper than a thread hop
            return await asyncio.to_thread(task.preprocess, request, slot.context, limit)
        except TooManyItems:
            self.metrics.rejected.labels(slot.name, ErrorKind.TOO_MANY_ITEMS).inc()
            raise

    def _check_not_behind(self, slot: ModelSlot, timings: Timings) -> None:
        """503 for a request that already waited too long inside the server to reach its queue.

        The queue's own limits cannot see this wait (a saturated event loop, a burst of parsing);
        refusing here keeps what is accepted within the request timeout and recovery quick."""
        limit = self.settings.limits_for(slot.name).max_queue_wait_s
        if timings.received and (waited := time.perf_counter() - timings.received) > limit:
            self.metrics.rejected.labels(slot.name, ErrorKind.OVERLOADED).inc()
            raise Overloaded(
                f"the server is behind: this request waited {waited:.1f} s to reach the queue"
                f" (limit {limit:g} s)",
                retry_after=self.settings.retry_after_s,
            )

    @contextlib.contextmanager
    def _refusals(self, slot: ModelSlot, request_id: str) -> Iterator[None]:
        """The batcher's refusals and failures as service errors, counted by reason."""
        retry = self.settings.retry_after_s
        try:
            yield
        except NeverFits as error:
            self.metrics.rejected.labels(slot.name, ErrorKind.TOO_MANY_ITEMS).inc()
            raise TooManyItems(
                f"model {slot.name!r}: the request needs {error.needed} windows after tokenization;"
                f" the model's queue holds at most {error.limit}: send fewer or shorter texts"
            ) from error
        except BatchFailed as error:
            log.warning("request failed on model %s: %s", slot.name, error)  # the line carries its id
            raise InferenceFailed(f"inference failed on model {slot.name!r}: {error}") from error
        except QueueFull as error:
            self.metrics.rejected.labels(slot.name, ErrorKind.QUEUE_FULL).inc()
            error.retry_after = retry
            raise
        except BatcherClosed as error:
            self.metrics.rejected.labels(slot.name, ErrorKind.SHUTTING_DOWN).inc()
            raise Draining(str(error), retry_after=retry) from error
        except DeadlineExceeded as error:
            self.metrics.rejected.labels(slot.name, ErrorKind.TIMEOUT).inc()
            raise DeadlineExceeded(f"model {slot.name!r}: {error}") from error
        except ServiceError:
            raise
        except Exception as error:
            log.exception("inference failed on %s (request %s)", slot.name, request_id or "-")
            raise InferenceFailed(
                f"inference failed on model {slot.name!r}: {type(error).__name__}"
            ) from error


def model_facts(slot: ModelSlot, task: Task[Any, Any]) -> ModelFacts:
    """What a request's spans say of the model serving it."""
    loaded = slot.loaded
    provider, precision = (loaded.provider, loaded.variant.precision) if loaded is not None else ("", "")
    return ModelFacts(model=slot.name, task=task.name, provider=provider, precision=precision)
