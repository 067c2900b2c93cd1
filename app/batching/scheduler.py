"""The batching loop, on the event loop: decides when a batch closes, forms and pads it, and hands
it to the runner threads; counts the batches in flight and folds their results back in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from app.batching.delivery import Delivery
from app.batching.limits import BatchLimits
from app.batching.protocol import BatchRunner, DropReason, Part
from app.batching.queue import FormedBatch, PendingQueue
from app.batching.runners import RunnerPool

PayloadT = TypeVar("PayloadT")
OutputT = TypeVar("OutputT")


class ArrivalRate:
    """Requests per second that arrive while the model has work (queued or running).

    Counted only over the time the model is busy, so that a client that sends one request after
    another (whose next request never arrives while its last one is pending) shows no companions,
    and a lone request is not kept waiting for itself. Each busy period is folded into decaying
    sums when it ends, so the estimate follows the load within a few busy periods.
    """

    def __init__(self, decay: float = 0.8) -> None:
        self._decay = decay
        self._arrivals = 0.0  # decayed count of arrivals that found the model busy
        self._seconds = 0.0  # decayed busy time
        self._busy_since: float | None = None
        self._current = 0  # arrivals in the busy period under way

    def arrive(self, now: float, *, busy: bool) -> None:
        if self._busy_since is None:
            self._busy_since = now
        elif busy:
            self._current += 1

    def idle(self, now: float) -> None:
        """The model has nothing queued or running any more: the busy period ends."""
        if self._busy_since is None:
            return
        self._arrivals = self._arrivals * self._decay + self._current
        self._seconds = self._seconds * self._decay + max(0.0, now - self._busy_since)
        self._busy_since, self._current = None, 0

    def per_second(self, now: float) -> float:
        seconds, arrivals = self._seconds, self._arrivals
        if self._busy_since is not None:
            seconds += max(0.0, now - self._busy_since)
            arrivals += self._current
        return arrivals / seconds if seconds > 0 else 0.0


class Scheduler(Generic[PayloadT, OutputT]):
    """Closes a batch when it is full or its oldest item has waited `max_delay_ms`, but waits for
    companions only while waiting pays (every runner busy, the shared engine saturated, or the
    arrival rate says one comes within the delay); a lone request on an idle model runs at once."""

    def __init__(
        self,
        name: str,
        runner: BatchRunner[PayloadT, Any, OutputT],
        pending: PendingQueue[PayloadT, OutputT],
        delivery: Delivery[PayloadT, OutputT],
        *,
        clock: Callable[[], float],
        on_crash: Callable[[Part, BaseException], None],
    ) -> None:
        self._runner = runner
        self._queue = pending
        self._delivery = delivery
        self._limits: BatchLimits = pending.limits
        self._clock = clock
        self.arrivals = ArrivalRate()
        self.in_flight = 0  # batches handed off and not yet delivered
        self.wakeup = asyncio.Event()
        self.pool: RunnerPool[PayloadT, OutputT] = RunnerPool(
            name,
            runner,
            self._limits.max_concurrent_batches,
            clock=clock,
            on_taken=self.wakeup.set,
            deliver=self.deliver,
            on_crash=on_crash,
        )

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self.in_flight > 0

    @property
    def runner(self) -> BatchRunner[PayloadT, Any, OutputT]:
        return self._runner

    def use(self, runner: BatchRunner[PayloadT, Any, OutputT]) -> None:
        """Pad and run the next batches with `runner`."""
        self._runner = runner
        self.pool.use(runner)

    def suspend(self, refusal: Callable[[], BaseException] | None) -> None:
        """Fail the items not yet running (queued, or padded for a runner thread) with `refusal()` now
        and refuse new work with it, as waiting cannot help while the runner is known to fail; None
        takes work again."""
        self._queue.refusal = refusal
        if refusal is None:
            return
        waiting = [item for batch in self.pool.waiting() for item in batch.items]
        for item in [*self._queue.clear(), *waiting]:
            if not item.future.done():
                item.abandoned = DropReason.MODEL_NOT_READY
                item.future.set_exception(refusal())
        self._delivery.depth(0)

    async def run(self) -> None:
        """The loop: runs until cancelled."""
        while True:
            if reasons := self._queue.drop_dead():
                self._delivery.depth(len(self._queue))
                self._delivery.drops(reasons)
            if not self.busy:
                self.arrivals.idle(self._clock())
            if not self._queue or self.pool.full():
                await self._wait_for_change(None)
                continue
            if not self._queue.is_full():
                wait_s = self._queue.delay_left()
                if wait_s > 0 and self._waiting_pays(wait_s):
                    await self._wait_for_change(wait_s)
                    continue
            batch = self._queue.take_batch()
            self._delivery.depth(len(self._queue))
            try:
                padded = self._runner.pad([item.payload for item in batch])
            except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
                raise
            except BaseException as error:  # only this batch's items learn of it
                self._queue.settle(batch)
                self._delivery.fail(batch, error, "pad")
                continue
            self.in_flight += 1
            self.pool.hand_off(FormedBatch(batch, padded))

    async def _wait_for_change(self, timeout_s: float | None) -> None:
        """Sleep until an item arrives, a runner takes a batch, or `timeout_s` passes."""
        self.wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.wakeup.wait()

    def _waiting_pays(self, wait_s: float) -> bool:
        """Wait for companions only while the batch could not start anyway (every runner busy, or
        the runner's shared engine saturated by other models), or if one should come in `wait_s`."""
        if self._limits.always_wait or self.in_flight >= self._limits.max_concurrent_batches:
            return True
        saturated = getattr(self._runner, "saturated", None)
        if saturated is not None and saturated():
            return True
        return self.arrivals.per_second(self._clock()) * wait_s >= 1.0

    def deliver(
        self,
        handed: FormedBatch[PayloadT, OutputT],
        outputs: Sequence[OutputT] | None,
        error: BaseException | None,
        started: float,
        finished: float,
    ) -> None:
        """On the event loop: a batch came back from a runner thread (ran, failed, or its thread died)."""
        self.in_flight -= 1
        self.wakeup.set()
        if not self.busy:
            self.arrivals.idle(self._clock())
        self._queue.settle(handed.items)
        if outputs is not None:
            self._queue.measure(handed.padded.padded_tokens, finished - started)
        self._delivery.resolve(handed, outputs, error, started, finished)
