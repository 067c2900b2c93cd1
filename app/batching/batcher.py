"""DynamicBatcher: one per model, the face of the batching package (items in, futures out)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from app.batching.backlog import Backlog
from app.batching.delivery import Delivery
from app.batching.limits import BatchLimits
from app.batching.protocol import (
    BatcherClosed,
    BatchFailed,
    BatchObserver,
    BatchRunner,
    Completed,
    Component,
    DropReason,
    NeverFits,
    Part,
    RunTrace,
)
from app.batching.queue import Pending, PendingQueue, Reservation, expire
from app.batching.scheduler import ArrivalRate, Scheduler
from app.batching.supervisor import Supervisor
from app.errors import DeadlineExceeded

PayloadT = TypeVar("PayloadT")
OutputT = TypeVar("OutputT")
Items = Sequence[tuple[PayloadT, int]]
"""A request's items: (payload, token count) each."""


class DynamicBatcher(Generic[PayloadT, OutputT]):
    """Admits a request's items (all or none), awaits their outputs, and owns the parts that do the
    work: the queue (admission), the scheduler (batching loop and runner threads), the delivery of
    results, and the supervisor that restarts the loop or a runner thread if one dies."""

    def __init__(
        self,
        name: str,
        runner: BatchRunner[PayloadT, Any, OutputT],
        limits: BatchLimits,
        *,
        observer: BatchObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        restart_backoff_s: tuple[float, float] = (0.1, 10.0),
        backlog: Backlog | None = None,
    ) -> None:
        """`backlog`: the one shared by the models whose runs share an engine (its own otherwise)."""
        self.name = name
        self.limits = limits
        self._clock = clock
        self._queue: PendingQueue[PayloadT, OutputT] = PendingQueue(name, limits, clock, backlog)
        self._delivery: Delivery[PayloadT, OutputT] = Delivery(name, observer)
        self._supervisor = Supervisor(name, self._restart, observer, clock, restart_backoff_s)
        self._scheduler = Scheduler(
            name, runner, self._queue, self._delivery, clock=clock, on_crash=self._supervisor.crashed
        )
        self._seq = itertools.count()
        self._started = False
        self._accepting = True

    def start(self) -> None:
        """Start the batching loop on the running event loop, and the runner threads."""
        if self._started:
            return
        self._started = True
        loop = asyncio.get_running_loop()
        self._supervisor.start_loop(loop, self._scheduler.run)
        self._scheduler.pool.start(loop)

    def use_runner(self, replace: Callable[[Any], BatchRunner[PayloadT, Any, OutputT]]) -> None:
        """Pad and run the next batches on `replace(current runner)`, e.g. over a re-opened session."""
        self._scheduler.use(replace(self._scheduler.runner))

    def suspend(self, refusal: Callable[[], BaseException] | None) -> None:
        """See Scheduler.suspend: queued and new work fail with `refusal()`; None takes work again."""
        self._scheduler.suspend(refusal)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        return self._scheduler.busy

    @property
    def arrivals(self) -> ArrivalRate:
        return self._scheduler.arrivals

    @property
    def restarts(self) -> int:
        return self._supervisor.restarts

    @property
    def tokens_per_second(self) -> float:
        """Padded tokens one of the model's runs does per second (EWMA), 0 = unknown."""
        return self._queue.tokens_per_second

    @tokens_per_second.setter
    def tokens_per_second(self, value: float) -> None:
        self._queue.tokens_per_second = value

    def expected_wait(self, extra_tokens: int = 0) -> float:
        return self._queue.expected_wait(extra_tokens)

    def reserve(self, tokens: int) -> Reservation:
        """Admit a request before it is tokenized, its work (about `tokens`) counted as queued meanwhile."""
        return self._queue.reserve(tokens)

    async def submit(
        self, items: Items[PayloadT], timeout_s: float, *, tag: str = "", trace: RunTrace | None = None
    ) -> Completed[OutputT]:
        """Queue all items of one request (or none: admission is all-or-nothing) and await them; `tag`
        names it in logs, `trace` traces the batches its items run in. Raises NeverFits, QueueFull,
        BatcherClosed, DeadlineExceeded, BatchFailed. If the caller is cancelled (its client went
        away), its items still queued are dropped before they run."""
        if not self._accepting:
            raise BatcherClosed(f"model {self.name!r} is shutting down")
        if len(items) > self.limits.max_queue_items:
            raise NeverFits(len(items), self.limits.max_queue_items)
        self._queue.check_admission(len(items), sum(max(1, length) for _, length in items))
        loop, now = asyncio.get_running_loop(), self._clock()
        due = now + timeout_s
        pending = [
            Pending(payload, max(1, length), loop.create_future(), now, due, next(self._seq), tag, trace)
            for payload, length in items
        ]
        self.arrivals.arrive(now, busy=self.busy)
        self._queue.add(pending)
        self._delivery.depth(len(self._queue))
        self._scheduler.wakeup.set()
        # The deadline fails the items still waiting (reason DEADLINE); a client that goes away
        # cancels the gather, which cancels the futures at once (reason CLIENT_GONE).
        expiry = loop.call_later(timeout_s, expire, pending, timeout_s)
        try:
            outputs = list(await asyncio.gather(*(item.future for item in pending)))
            runs = {(item.started, item.run_seconds) for item in pending}
            return Completed(
                outputs=outputs,
                queue_seconds=max((item.started - item.enqueued for item in pending), default=0.0),
                inference_seconds=sum(run_seconds for _, run_seconds in runs),
            )
        except (BatchFailed, DeadlineExceeded):
            for item in pending:
                if not item.future.done():  # the request failed already: its other items need not run
                    item.abandoned = DropReason.REQUEST_FAILED
            raise
        finally:
            expiry.cancel()
            if sum(item.future.cancel() for item in pending):  # the loop drops them from the queue now
                self._scheduler.wakeup.set()

    def stop_accepting(self) -> None:
        """Refuse new work from now on; queued and running items still complete."""
        self._accepting = False

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or running; False if that took longer than `timeout_s`."""
        deadline = self._clock() + timeout_s
        while self.busy:
            if self._clock() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def close(self) -> None:
        """Stop the loop and the threads, fail what is still queued."""
        self._accepting = False
        await self._supervisor.stop_loop()
        for item in self._queue.clear():
            if not item.future.done():
                item.future.set_exception(BatcherClosed(f"model {self.name!r} stopped"))
        await self._scheduler.pool.stop()
        self._queue.backlog.leave(self._queue)

    def _restart(self, part: Part) -> None:
        """The supervisor restarted `part` (the loop), or asks for a runner thread anew."""
        if part.component == Component.RUNNER and part.index is not None:
            self._scheduler.pool.start_thread(part.index)
        self._scheduler.wakeup.set()
