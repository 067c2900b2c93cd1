"""The models being served: their state (loading, ready, failed, restarting), readiness and
draining, and which model serves a request. app.lifecycle.loading fills the slots and re-opens the session of
a model whose batches keep failing."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.batching import DynamicBatcher
from app.contract.items import EncodedItem, ItemOutputs
from app.errors import ModelNotFound, ModelNotReady, WrongTask
from app.metrics import Metrics
from app.runtime.repository import LoadedModel
from app.settings import Settings
from app.tasks.base import ModelContext, Task

log = logging.getLogger("bertserve.service")


class ModelState(StrEnum):
    """Where a model slot stands; /v1/models and /health show the value."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"  # at load, or after its batches kept failing (then its session is re-opened)
    RESTARTING = "restarting"  # its batcher crashed and restarts after a backoff


@dataclass
class ModelSlot:
    """One configured model: loading, ready, or failed with a reason."""

    name: str
    state: ModelState = ModelState.LOADING
    error: str | None = None
    last_crash: str | None = None  # the latest batcher crash, kept after it recovered
    crashes: int = 0
    loaded: LoadedModel | None = None
    context: ModelContext | None = None
    batcher: DynamicBatcher[EncodedItem, ItemOutputs] | None = None
    warmup_shapes: int = 0
    load_seconds: float = 0.0
    failures_in_row: int = 0  # batches that failed since the last one that ran
    reloads: int = 0  # times its session was re-opened after failing
    reload_tries: int = 0  # re-opens since a batch last ran: the backoff grows with them
    next_reload: float = 0.0  # monotonic time of the next try to re-open it, while failed
    reloading: asyncio.Task[None] | None = None
    users: int = 0  # requests resolved to this slot and not yet answered: a swap retires it after them

    def hold(self, work: asyncio.Future[Any]) -> None:
        """Count `work` (a request's inference) as a user of this slot until it is done."""
        self.users += 1
        work.add_done_callback(self._release)

    def _release(self, _: asyncio.Future[Any]) -> None:
        self.users -= 1

    @property
    def failed_at_runtime(self) -> bool:
        """Failed after it had loaded (its batches kept failing), not at load."""
        return self.state == ModelState.FAILED and self.loaded is not None


def runtime_failure(slot: ModelSlot, retry_after_s: int) -> ModelNotReady:
    """The 503 for a request to a model that failed after loading: retry once it is re-opened."""
    wait = math.ceil(max(0.0, slot.next_reload - time.monotonic()))
    return ModelNotReady(
        f"model {slot.name!r} is failing: {slot.error}", retry_after=max(retry_after_s, wait)
    )


class SlotHealth:
    """One model's health as its batcher reports it: `max_consecutive_failures` failed batches in a
    row fail the model until its session is re-opened; crashes go to the registry's supervision."""

    def __init__(self, registry: ModelRegistry, slot: ModelSlot) -> None:
        self._registry, self._slot = registry, slot

    def batch_ran(self) -> None:
        self._slot.failures_in_row = self._slot.reload_tries = 0

    def batch_failed(self, error: BaseException) -> None:
        slot = self._slot
        slot.failures_in_row += 1
        limit = self._registry.settings.max_consecutive_failures
        serving = self._registry.serves(slot)
        if limit and slot.failures_in_row >= limit and slot.state == ModelState.READY and serving:
            last = f"{type(error).__name__}: {error}"
            self.fail(f"{slot.failures_in_row} batches in a row failed (the last: {last})")

    def fail(self, reason: str) -> None:
        """The model's session fails every batch: readiness false, its queued and new requests get
        503 at once, and its session is re-opened until it works (the registry's `start_reload`)."""
        slot, registry = self._slot, self._registry
        log.error("model %s failed: %s; re-opening its session", slot.name, reason)
        slot.state, slot.error = ModelState.FAILED, f"{reason}; re-opening its session"
        registry.metrics.model_ready.labels(slot.name).set(0)
        registry.update_ready()
        if slot.batcher is not None:
            slot.batcher.suspend(lambda: runtime_failure(slot, registry.settings.retry_after_s))
        idle = slot.reloading is None or slot.reloading.done()
        if registry.start_reload is not None and idle and not registry.draining:
            slot.reloading = registry.start_reload(slot)

    def reloaded(self) -> None:
        """The model's session was re-opened and warmed up: it serves again."""
        slot = self._slot
        slot.failures_in_row, slot.error, slot.reloads = 0, None, slot.reloads + 1
        if slot.batcher is not None:
            slot.batcher.suspend(None)
        self._registry.mark_ready(slot)
        self._registry.update_ready()

    def batcher_crashed(self, reason: str) -> None:
        self._registry.batcher_health(self._slot, reason)

    def batcher_recovered(self) -> None:
        self._registry.batcher_health(self._slot, None)


class ModelRegistry:
    """Every configured model's slot; readiness is true once all are ready and none is draining."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.slots: dict[str, ModelSlot] = {}
        self.draining = False
        self.loaded = False
        self.drain_started = 0.0
        self.discovery_errors: dict[str, str] = {}  # model directory entries skipped: why
        self.load_errors: dict[str, str] = {}  # folders whose latest load after startup failed: why
        # starts re-opening a failed model's session (app.lifecycle.loading sets it: it imports the registry)
        self.start_reload: Callable[[ModelSlot], asyncio.Task[None]] | None = None

    def health(self, slot: ModelSlot) -> SlotHealth:
        return SlotHealth(self, slot)

    def serves(self, slot: ModelSlot) -> bool:
        """Whether `slot` is the one serving its name (not one being swapped out or unloaded)."""
        return self.slots.get(slot.name) is slot

    def loading_done(self) -> None:
        """Every configured model has been tried (readiness may turn true now)."""
        self.loaded = True
        self.update_ready()

    def mark_ready(self, slot: ModelSlot) -> None:
        assert slot.loaded is not None
        slot.state = ModelState.READY
        manifest = slot.loaded.manifest
        self.metrics.model_info.labels(
            slot.name, manifest.task, slot.loaded.variant.precision, slot.loaded.provider
        ).set(1)
        self.metrics.model_ready.labels(slot.name).set(1)

    def mark_failed(self, slot: ModelSlot, reason: str) -> None:
        slot.state, slot.error = ModelState.FAILED, reason
        self.metrics.model_ready.labels(slot.name).set(0)
        self.update_ready()

    def batcher_health(self, slot: ModelSlot, crash: str | None) -> None:
        """The batcher's supervisor reports a crash (readiness false) or its recovery."""
        if not self.serves(slot):  # a retired slot's batcher no longer decides anything
            return
        if slot.state == ModelState.FAILED:  # the failure and its reload decide the state; the crash is noted
            if crash is not None:
                slot.last_crash, slot.crashes = crash, slot.crashes + 1
            return
        if crash is not None:
            slot.state, slot.error, slot.last_crash = ModelState.RESTARTING, crash, crash
            slot.crashes += 1
            self.metrics.model_ready.labels(slot.name).set(0)
        elif slot.state == ModelState.RESTARTING:
            slot.state, slot.error = ModelState.READY, None
            self.metrics.model_ready.labels(slot.name).set(1)
        self.update_ready()

    def begin_drain(self) -> None:
        """Stop taking new work: readiness goes false, new requests get 503."""
        if not self.draining:
            log.info("draining: no new requests; finishing accepted work")
            self.drain_started = time.monotonic()
        self.draining = True
        self.update_ready()

    async def shutdown(self) -> None:
        """Finish accepted work (within what is left of the drain timeout), then stop every batcher."""
        self.begin_drain()
        for slot in self.slots.values():
            if slot.reloading is not None:
                slot.reloading.cancel()
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
            and all(slot.state == ModelState.READY for slot in self.slots.values())
        )

    def update_ready(self) -> None:
        self.metrics.ready.set(1 if self.ready else 0)

    def readiness(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ready": self.ready,
            "draining": self.draining,
            "models": {name: slot.state for name, slot in self.slots.items()},
            "errors": {name: slot.error for name, slot in self.slots.items() if slot.error},
        }
        if self.discovery_errors:  # reported, but they do not hold readiness back
            body["discovery_errors"] = dict(self.discovery_errors)
        return body

    def resolve(self, task: Task[Any, Any], requested: str | None) -> ModelSlot:
        """The slot that serves this request: the named model, or the task's default.

        Draining does not refuse here: a request that reached the server is served. Readiness
        turns false at SIGTERM so no new traffic is routed here, and the batchers refuse only
        once the HTTP server has stopped taking requests.
        """
        name = requested or self.default_model(task.name)
        retry = self.settings.retry_after_s
        if name is None:
            if any(slot.state == ModelState.LOADING for slot in self.slots.values()):
                raise ModelNotReady(
                    f"no model for task {task.name!r} is ready yet: models are still loading",
                    retry_after=retry,
                )
            raise ModelNotFound(f"no model serves task {task.name!r}")
        slot = self.slots.get(name)
        if slot is None:
            known = ", ".join(sorted(self.slots)) or "none"
            raise ModelNotFound(f"unknown model {name!r}; models: {known}")
        if slot.failed_at_runtime:
            raise runtime_failure(slot, retry)
        if slot.state == ModelState.FAILED:
            raise ModelNotReady(f"model {name!r} failed to load: {slot.error}", retry_after=30)
        if slot.state == ModelState.RESTARTING:
            raise ModelNotReady(
                f"model {name!r} is restarting after a crash: {slot.error}", retry_after=retry
            )
        if slot.state != ModelState.READY or slot.context is None:
            raise ModelNotReady(f"model {name!r} is still loading", retry_after=retry)
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
