"""The models being served, their batchers and readiness: what the routes talk to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from app.batching import BatcherClosed, BatchFailed, BatchRunner, DynamicBatcher, NeverFits
from app.contract.items import EncodedItem, ItemOutputs
from app.errors import (
    DeadlineExceeded,
    Draining,
    InferenceFailed,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    Overloaded,
    QueueFull,
    ServiceError,
    TextTooLong,
    TooManyInputs,
    TooManyItems,
    WrongTask,
)
from app.faults import with_faults
from app.metrics import Metrics
from app.observer import MetricsObserver
from app.runtime.gate import GatedRunner, cpu_permits
from app.runtime.repository import LoadedModel, discover, load_model
from app.runtime.session import SessionRunner
from app.settings import Settings
from app.tasks import TASKS
from app.tasks.base import ModelContext, Task

log = logging.getLogger("bertserve.service")

CPU_BATCH_TOKENS = 2048
"""The padded-token budget of a CPU batch when none is configured (16384 is the CUDA default)."""


def check_outputs(name: str, task: Task[Any, Any], outputs: Sequence[str]) -> None:
    """A model must give every output its task reads; say which are missing at load, not per request."""
    missing = [output for output in task.output_names if output not in outputs]
    if missing:
        raise ModelLoadError(
            f"{name}: the {task.name} task reads outputs {missing} the model does not have"
            f" (its outputs: {list(outputs)})"
        )


@dataclass
class ModelSlot:
    """One configured model: loading, ready, or failed with a reason."""

    name: str
    state: str = "loading"  # loading | ready | failed | restarting
    error: str | None = None
    last_crash: str | None = None  # the latest batcher crash, kept after it recovered
    crashes: int = 0
    loaded: LoadedModel | None = None
    context: ModelContext | None = None
    batcher: DynamicBatcher[EncodedItem, ItemOutputs] | None = None
    warmup_shapes: int = 0
    load_seconds: float = 0.0


@dataclass
class Timings:
    """Per-request stage times, for response headers."""

    tokenize: float = 0.0
    queue: float = 0.0
    inference: float = 0.0
    received: float = 0.0  # perf_counter() when the request reached the server, 0 = unknown


@dataclass
class Service:
    settings: Settings
    metrics: Metrics
    slots: dict[str, ModelSlot] = field(default_factory=dict)
    draining: bool = False
    loaded: bool = False
    drain_started: float = 0.0
    run_gate: threading.BoundedSemaphore | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def load_all(self) -> None:
        """Load, warm up and start every model; failures are recorded, not raised."""
        names = discover(self.settings)
        if not names:
            log.error("no models found in %s", self.settings.model_dir.resolve())
        for name in names:
            self.slots[name] = ModelSlot(name)
        for name in names:
            try:
                await self._load_one(self.slots[name])
            except Exception as error:  # never let one model end the loading of the others
                self._mark_failed(self.slots[name], f"{type(error).__name__}: {error}")
                log.exception("model %s failed to load", name)
        self.loaded = True
        self._update_ready()

    async def _load_one(self, slot: ModelSlot) -> None:
        started = time.perf_counter()
        try:
            loaded = await asyncio.to_thread(load_model, slot.name, self.settings)
            if loaded.manifest.task not in TASKS:
                raise ModelLoadError(
                    f"{slot.name}: task {loaded.manifest.task!r} is not served here"
                    f" (tasks: {', '.join(TASKS)})"
                )
            check_outputs(slot.name, TASKS[loaded.manifest.task], loaded.onnx.output_names)
            limits = self.settings.limits_for(slot.name)
            if loaded.onnx.device == "cpu" and "max_batch_tokens" not in limits.model_fields_set:
                # On CPU a big batch is no faster per token, and it holds the cores (the run gate)
                # while every other model's queue ages: keep batches short unless told otherwise.
                limits = limits.model_copy(update={"max_batch_tokens": CPU_BATCH_TOKENS})
            if loaded.onnx.cuda_graphs and limits.max_concurrent_batches != 1:
                limits = limits.model_copy(update={"max_concurrent_batches": 1})
            if self.settings.warmup:
                slot.warmup_shapes = await asyncio.to_thread(
                    loaded.onnx.warmup, limits.max_batch_size, limits.max_batch_tokens
                )
            # this thread's tokenizer clone, built off the hot path (a broken tokenizer fails here)
            loaded.encoder.encode("warm up", max_length=8)
        except ModelLoadError as error:
            self._mark_failed(slot, error.message)
            log.error("model %s failed to load: %s", slot.name, error.message)
            return
        except Exception as error:  # an unexpected failure still must not take the others down
            self._mark_failed(slot, f"{type(error).__name__}: {error}")
            log.exception("model %s failed to load", slot.name)
            return
        slot.loaded = loaded
        slot.context = ModelContext(slot.name, loaded.manifest, loaded.encoder)
        runner = with_faults(self._gated(loaded.onnx), self.settings.faults.get(slot.name))
        observer = MetricsObserver(
            self.metrics, slot.name, health=lambda crash: self._batcher_health(slot, crash)
        )
        slot.batcher = DynamicBatcher(slot.name, runner, limits, observer=observer)
        slot.batcher.start()
        slot.load_seconds = time.perf_counter() - started
        slot.state = "ready"
        self.metrics.model_info.labels(
            slot.name, loaded.manifest.task, loaded.variant.precision, loaded.provider
        ).set(1)
        self.metrics.model_ready.labels(slot.name).set(1)
        log.info(
            "model %s ready in %.1f s (%d warm-up shapes)", slot.name, slot.load_seconds, slot.warmup_shapes
        )

    def _gated(self, onnx: SessionRunner) -> BatchRunner[Any, Any, Any]:
        """The model's runner behind the shared gate (CPU), or as it is (CUDA, or a gate of 0)."""
        permits = self.settings.max_concurrent_runs
        if permits == 0 and onnx.device != "cpu":
            return onnx
        if self.run_gate is None:
            self.run_gate = threading.BoundedSemaphore(permits or cpu_permits(self.settings.intra_op_threads))
        return GatedRunner(onnx, self.run_gate)

    def _mark_failed(self, slot: ModelSlot, reason: str) -> None:
        slot.state, slot.error = "failed", reason
        self.metrics.model_ready.labels(slot.name).set(0)
        self._update_ready()

    def _batcher_health(self, slot: ModelSlot, crash: str | None) -> None:
        """The batcher's supervisor reports a crash (readiness false) or its recovery."""
        if crash is not None:
            slot.state, slot.error, slot.last_crash = "restarting", crash, crash
            slot.crashes += 1
            self.metrics.model_ready.labels(slot.name).set(0)
        elif slot.state == "restarting":
            slot.state, slot.error = "ready", None
            self.metrics.model_ready.labels(slot.name).set(1)
        self._update_ready()

    def begin_drain(self) -> None:
        """Stop taking new work: readiness goes false, new requests get 503."""
        if not self.draining:
            log.info("draining: no new requests; finishing accepted work")
            self.drain_started = time.monotonic()
        self.draining = True
        self._update_ready()

    async def shutdown(self) -> None:
        """Finish accepted work (within what is left of the drain timeout), then stop every batcher."""
        self.begin_drain()
        batchers = [slot.batcher for slot in self.slots.values() if slot.batcher is not None]
        for batcher in batchers:
            batcher.stop_accepting()
        left = max(0.0, self.settings.drain_timeout_s - (time.monotonic() - self.drain_started))
        results = await asyncio.gather(*(b.wait_idle(left) for b in batchers))
        if not all(results):
            log.error(
                "drain timeout: some queued work did not finish in %.0f s", self.settings.drain_timeout_s
            )
        await asyncio.gather(*(b.close() for b in batchers))

    @property
    def ready(self) -> bool:
        return (
            self.loaded
            and not self.draining
            and bool(self.slots)
            and all(slot.state == "ready" for slot in self.slots.values())
        )

    def _update_ready(self) -> None:
        self.metrics.ready.set(1 if self.ready else 0)

    def readiness(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "draining": self.draining,
            "models": {name: slot.state for name, slot in self.slots.items()},
            "errors": {name: slot.error for name, slot in self.slots.items() if slot.error},
        }

    # -- requests -------------------------------------------------------------------------------

    def resolve(self, task: Task[Any, Any], requested: str | None) -> ModelSlot:
        """The slot that serves this request: the named model, or the task's default.

        Draining does not refuse here: a request that reached the server is served. Readiness
        turns false at SIGTERM so no new traffic is routed here, and the batchers refuse only
        once the HTTP server has stopped taking requests.
        """
        name = requested or self.default_model(task.name)
        if name is None:
            if any(slot.state == "loading" for slot in self.slots.values()):
                raise ModelNotReady(
                    f"no model for task {task.name!r} is ready yet: models are still loading",
                    retry_after=self.settings.retry_after_s,
                )
            raise ModelNotFound(f"no model serves task {task.name!r}")
        slot = self.slots.get(name)
        if slot is None:
            known = ", ".join(sorted(self.slots)) or "none"
            raise ModelNotFound(f"unknown model {name!r}; models: {known}")
        if slot.state == "failed":
            raise ModelNotReady(f"model {name!r} failed to load: {slot.error}", retry_after=30)
        if slot.state == "restarting":
            raise ModelNotReady(
                f"model {name!r} is restarting after a crash: {slot.error}",
                retry_after=self.settings.retry_after_s,
            )
        if slot.state != "ready" or slot.context is None:
            raise ModelNotReady(f"model {name!r} is still loading", retry_after=self.settings.retry_after_s)
        if slot.context.manifest.task != task.name:
            raise WrongTask(f"model {name!r} serves {slot.context.manifest.task!r}, not {task.name!r}")
        return slot

    def default_model(self, task_name: str) -> str | None:
        configured = self.settings.default_models.get(task_name)
        if configured is not None:
            return configured
        for name in sorted(self.slots):
            slot = self.slots[name]
            if slot.context is not None and slot.context.manifest.task == task_name:
                return name
        return None

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
    ) -> BaseModel:
        """Tokenize, queue, batch, run and post-process one request."""
        assert slot.context is not None and slot.batcher is not None
        context = slot.context
        self._check_not_behind(slot, timings)
        with self._refusals(slot, request_id):
            slot.batcher.check_admission()  # refuse before tokenizing: refusing must stay cheap
        started = time.perf_counter()
        inline = sum(map(len, task.texts(request))) <= self.settings.inline_tokenize_chars
        if inline:
            prepared = task.preprocess(request, context)  # cheaper than a thread hop
        else:
            prepared = await asyncio.to_thread(task.preprocess, request, context)
        timings.tokenize = time.perf_counter() - started
        self.metrics.tokenize.labels(slot.name).observe(timings.tokenize)
        if prepared.truncated:
            self.metrics.truncated.labels(slot.name).inc(prepared.truncated)
        with self._refusals(slot, request_id):
            done = await slot.batcher.submit(
                [(item, item.length) for item in prepared.items],
                self.settings.request_timeout_s,
                tag=request_id,
            )
        timings.queue, timings.inference = done.queue_seconds, done.inference_seconds
        if inline:
            answer: BaseModel = task.postprocess(request, prepared, done.outputs, context)
        else:  # QA builds a length x length matrix per window: keep big ones off the loop
            answer = await asyncio.to_thread(task.postprocess, request, prepared, done.outputs, context)
        return answer

    def _check_not_behind(self, slot: ModelSlot, timings: Timings) -> None:
        """503 for a request that already waited too long inside the server to reach its queue.

        The queue's own limits cannot see this wait (a saturated event loop, a burst of parsing);
        refusing here keeps what is accepted within the request timeout and recovery quick."""
        limit = self.settings.limits_for(slot.name).max_queue_wait_s
        if timings.received and (waited := time.perf_counter() - timings.received) > limit:
            self.metrics.rejected.labels(slot.name, "overloaded").inc()
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
            self.metrics.rejected.labels(slot.name, "too_many_items").inc()
            raise TooManyItems(
                f"model {slot.name!r}: the request needs {error.needed} windows after tokenization;"
                f" the model's queue holds at most {error.limit}: send fewer or shorter texts"
            ) from error
        except BatchFailed as error:
            log.warning("request failed on model %s: %s", slot.name, error)  # the line carries its id
            raise InferenceFailed(f"inference failed on model {slot.name!r}: {error}") from error
        except QueueFull as error:
            self.metrics.rejected.labels(slot.name, "queue_full").inc()
            error.retry_after = retry
            raise
        except BatcherClosed as error:
            self.metrics.rejected.labels(slot.name, "shutting_down").inc()
            raise Draining(str(error), retry_after=retry) from error
        except DeadlineExceeded as error:
            self.metrics.rejected.labels(slot.name, "timeout").inc()
            raise DeadlineExceeded(f"model {slot.name!r}: {error}") from error
        except ServiceError:
            raise
        except Exception as error:
            log.exception("inference failed on %s (request %s)", slot.name, request_id or "-")
            raise InferenceFailed(
                f"inference failed on model {slot.name!r}: {type(error).__name__}"
            ) from error

    def describe(self) -> list[dict[str, Any]]:
        """Every model's task, labels, precision, provider, limits and parity, for /v1/models."""
        described: list[dict[str, Any]] = []
        for name, slot in sorted(self.slots.items()):
            entry: dict[str, Any] = {"name": name, "state": slot.state}
            if slot.error:
                entry["error"] = slot.error
            if slot.crashes:
                entry["crashes"] = slot.crashes
                entry["last_crash"] = slot.last_crash
            if slot.loaded is not None and slot.batcher is not None:
                manifest, variant = slot.loaded.manifest, slot.loaded.variant
                entry |= {
                    "task": manifest.task,
                    "default": self.default_model(manifest.task) == name,
                    "architecture": manifest.architecture,
                    "model_type": manifest.model_type,
                    "inputs": manifest.input_names,
                    "fusions": manifest.fusions,
                    "labels": [manifest.id2label[i] for i in sorted(manifest.id2label)],
                    "problem_type": manifest.problem_type,
                    "max_length": manifest.max_length,
                    "precision": variant.precision,
                    "provider": slot.loaded.provider,
                    "fell_back_to_cpu": slot.loaded.fell_back_to_cpu,
                    "io_binding": slot.loaded.onnx.io_binding,
                    "shape_buckets": slot.loaded.onnx.buckets is not None,
                    "cuda_graphs": slot.loaded.onnx.cuda_graphs,
                    "parity": variant.parity.model_dump(),
                    "fused_ops": variant.fused_ops,
                    "batching": {"queue_items": slot.batcher.queue_depth, **slot.batcher.limits.model_dump()},
                    "source": manifest.source.model_dump(),
                    "load_seconds": round(slot.load_seconds, 3),
                }
            described.append(entry)
        return described
