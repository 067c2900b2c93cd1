"""On the event loop: a batch's results (or its failure) reach its items' futures and the observer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from app.batching.protocol import BatchFailed, BatchObserver, BatchReport, DropReason, DropReport
from app.batching.queue import FormedBatch, Pending

log = logging.getLogger("bertserve.batching")

PayloadT = TypeVar("PayloadT")
OutputT = TypeVar("OutputT")


class Delivery(Generic[PayloadT, OutputT]):
    """Resolves futures and reports batches, drops, failures and queue depth to the observer."""

    def __init__(self, name: str, observer: BatchObserver | None) -> None:
        self.name = name
        self.observer = observer

    def resolve(
        self,
        handed: FormedBatch[PayloadT, OutputT],
        outputs: Sequence[OutputT] | None,
        error: BaseException | None,
        started: float,
        finished: float,
    ) -> None:
        """Give each live item its output, or fail the batch; items gone already count as drops."""
        batch = handed.items
        if outputs is None:
            reasons: dict[DropReason, int] = {}
            for item in batch:
                if item.future.done():
                    reasons[item.abandoned] = reasons.get(item.abandoned, 0) + 1
            self.drops(reasons)
            if error is not None:
                self.fail(batch, error, "run")
            return
        for item, output in zip(batch, outputs, strict=True):
            item.started, item.run_seconds = started, finished - started
            if not item.future.done():
                item.future.set_result(output)
        if self.observer is not None:
            self.observer.on_batch(
                BatchReport(
                    size=len(batch),
                    real_tokens=sum(item.length for item in batch),
                    padded_tokens=handed.padded.padded_tokens,
                    queue_waits=[started - item.enqueued for item in batch],
                    run_seconds=finished - started,
                )
            )

    def fail(self, batch: Sequence[Pending[PayloadT, Any]], error: BaseException, stage: str) -> None:
        """Fail the live items of one batch, and log which requests they belonged to."""
        requests = sorted({item.tag for item in batch if item.tag})
        log.error(
            "model %s: a batch of %d items failed to %s: %s: %s (requests: %s)",
            self.name,
            len(batch),
            stage,
            type(error).__name__,
            error,
            ", ".join(requests) or "-",
            exc_info=(type(error), error, error.__traceback__),
        )
        failure = BatchFailed(f"the batch failed to {stage} ({type(error).__name__})")
        for item in batch:
            if not item.future.done():
                item.future.set_exception(failure)
        if self.observer is not None:
            self.observer.on_batch_failed(len(batch), error)

    def drops(self, reasons: dict[DropReason, int]) -> None:
        if self.observer is not None:
            for reason, count in reasons.items():
                self.observer.on_drop(DropReport(reason, count))

    def depth(self, depth: int) -> None:
        if self.observer is not None:
            self.observer.on_queue_depth(depth)
