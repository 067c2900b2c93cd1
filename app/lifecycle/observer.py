"""Feeds one model's batch reports into the Prometheus metrics, and into its health in the registry."""

from __future__ import annotations

from typing import Protocol

from app.batching import BatchReport, DropReport, Part
from app.metrics import Metrics


class ModelHealth(Protocol):
    """Where a model's batch outcomes and batcher crashes go (the registry's slot health)."""

    def batch_ran(self) -> None: ...

    def batch_failed(self, error: BaseException) -> None: ...

    def batcher_crashed(self, reason: str) -> None: ...

    def batcher_recovered(self) -> None: ...


class MetricsObserver:
    """A BatchObserver that records batches, drops and queue depth for one model."""

    def __init__(self, metrics: Metrics, model: str, health: ModelHealth | None = None) -> None:
        self._batch_size = metrics.batch_size.labels(model)
        self._batch_tokens = metrics.batch_tokens.labels(model)
        self._padding = metrics.padding_ratio.labels(model)
        self._inference = metrics.inference.labels(model)
        self._queue_wait = metrics.queue_wait.labels(model)
        self._queue_items = metrics.queue_items.labels(model)
        self._rejected = metrics.rejected
        self._failed_batches = metrics.failed_batches.labels(model)
        self._crashes = metrics.batcher_crashes
        self._health = health
        self._model = model

    def on_batch(self, report: BatchReport) -> None:
        self._batch_size.observe(report.size)
        self._batch_tokens.observe(report.padded_tokens)
        if report.padded_tokens:
            self._padding.observe(1.0 - report.real_tokens / report.padded_tokens)
        self._inference.observe(report.run_seconds)
        for wait in report.queue_waits:
            self._queue_wait.observe(wait)
        if self._health is not None:
            self._health.batch_ran()

    def on_drop(self, report: DropReport) -> None:
        self._rejected.labels(self._model, report.reason).inc(report.count)

    def on_queue_depth(self, depth: int) -> None:
        self._queue_items.set(depth)

    def on_batch_failed(self, size: int, error: BaseException) -> None:
        self._failed_batches.inc()
        if self._health is not None:
            self._health.batch_failed(error)

    def on_crash(self, part: Part, reason: str) -> None:
        self._crashes.labels(self._model, part.component).inc()
        if self._health is not None:
            self._health.batcher_crashed(reason)

    def on_recovered(self, part: Part) -> None:
        if self._health is not None:
            self._health.batcher_recovered()
