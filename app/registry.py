"""The models being served: their state (loading, ready, failed, restarting), readiness and
draining, and which model serves a request. app.loading fills the slots."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from app.batching import DynamicBatcher
from app.contract.items import EncodedItem, ItemOutputs
from app.errors import ModelNotFound, ModelNotReady, WrongTask
from app.metrics import Metrics
from app.runtime.repository import LoadedModel
from app.settings import Settings
from app.tasks.base import ModelContext, Task

log = logging.getLogger("bertserve.service")


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


class ModelRegistry:
    """Every configured model's slot; readiness is true once all are ready and none is draining."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.slots: dict[str, ModelSlot] = {}
        self.draining = False
        self.loaded = False
        self.drain_started = 0.0

    def loading_done(self) -> None:
        """Every configured model has been tried (readiness may turn true now)."""
        self.loaded = True
        self._update_ready()

    def mark_ready(self, slot: ModelSlot) -> None:
        assert slot.loaded is not None
        slot.state = "ready"
        manifest = slot.loaded.manifest
        self.metrics.model_info.labels(
            slot.name, manifest.task, slot.loaded.variant.precision, slot.loaded.provider
        ).set(1)
        self.metrics.model_ready.labels(slot.name).set(1)

    def mark_failed(self, slot: ModelSlot, reason: str) -> None:
        slot.state, slot.error = "failed", reason
        self.metrics.model_ready.labels(slot.name).set(0)
        self._update_ready()

    def batcher_health(self, slot: ModelSlot, crash: str | None) -> None:
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

    def resolve(self, task: Task[Any, Any], requested: str | None) -> ModelSlot:
        """The slot that serves this request: the named model, or the task's default.

        Draining does not refuse here: a request that reached the server is served. Readiness
        turns false at SIGTERM so no new traffic is routed here, and the batchers refuse only
        once the HTTP server has stopped taking requests.
        """
        name = requested or self.default_model(task.name)
        retry = self.settings.retry_after_s
        if name is None:
            if any(slot.state == "loading" for slot in self.slots.values()):
                raise ModelNotReady(
                    f"no model for task {task.name!r} is ready yet: models are still loading",
                    retry_after=retry,
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
                f"model {name!r} is restarting after a crash: {slot.error}", retry_after=retry
            )
        if slot.state != "ready" or slot.context is None:
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
