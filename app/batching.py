"""Dynamic batching: items in, futures out.

The batcher knows only items with a token count and a future. It knows nothing of tasks, HTTP
or onnxruntime: an injected runner pads a batch (`prepare`, cheap, on the event loop) and runs it
(`run`, in a runner thread), so the event loop never blocks on inference.

A batch closes when it is full (`max_batch_size` items, or `max_batch_tokens` padded tokens), or
when its oldest item has waited `max_delay_ms`. While a batch runs, the next one is formed and
padded and waits in a hand-off slot; a runner thread starts it the moment the current one ends,
without a round trip through a busy event loop. Items are grouped by length around the oldest
one, within a padding budget (`max_padding_ratio`), so batches pad little and nobody starves.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from app.settings import BatchLimits

PayloadT = TypeVar("PayloadT")
OutputT = TypeVar("OutputT")


class QueueFull(Exception):
    """The queue cannot take the request's items now (429)."""


class BatcherClosed(Exception):
    """The batcher is draining or stopped and takes no new work (503)."""


class DeadlineExceeded(Exception):
    """An item was still waiting when its deadline passed (504)."""


class PreparedBatch(Protocol):
    """What a runner's `prepare` returns: opaque to the batcher but for its padded size."""

    @property
    def padded_tokens(self) -> int: ...


PayloadT_contra = TypeVar("PayloadT_contra", contravariant=True)
OutputT_co = TypeVar("OutputT_co", covariant=True)
PreparedT = TypeVar("PreparedT", bound=PreparedBatch)


class BatchRunner(Protocol[PayloadT_contra, PreparedT, OutputT_co]):
    """Pads and runs batches; both methods are called from worker threads."""

    def prepare(self, payloads: Sequence[PayloadT_contra]) -> PreparedT: ...

    def run(self, batch: PreparedT) -> Sequence[OutputT_co]: ...


@dataclass(frozen=True)
class BatchReport:
    """What happened to one batch, for metrics."""

    size: int
    real_tokens: int
    padded_tokens: int
    queue_waits: list[float]
    run_seconds: float


@dataclass(frozen=True)
class Completed(Generic[OutputT]):
    """A request's outputs, in item order, with how long its items queued and ran."""

    outputs: list[OutputT]
    queue_seconds: float
    inference_seconds: float


@dataclass(frozen=True)
class DropReport:
    """Items dropped before running: their client went away, or their deadline passed."""

    reason: str
    count: int


class BatchObserver(Protocol):
    def on_batch(self, report: BatchReport) -> None: ...

    def on_drop(self, report: DropReport) -> None: ...

    def on_queue_depth(self, depth: int) -> None: ...


@dataclass(eq=False)
class _Pending(Generic[PayloadT, OutputT]):
    payload: PayloadT
    length: int
    future: asyncio.Future[OutputT]
    enqueued: float
    deadline: float
    seq: int
    started: float = 0.0
    run_seconds: float = 0.0

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.length, self.seq)


@dataclass(frozen=True)
class _Batch(Generic[PayloadT, OutputT]):
    """A formed batch: its items and the runner's padded arrays for them."""

    items: list[_Pending[PayloadT, OutputT]]
    prepared: Any


@dataclass
class _Queue(Generic[PayloadT, OutputT]):
    """Pending items, kept sorted by (length, arrival) with a record of arrival order."""

    by_length: list[_Pending[PayloadT, OutputT]] = field(default_factory=list)
    keys: list[tuple[int, int]] = field(default_factory=list)
    tokens: int = 0

    def __len__(self) -> int:
        return len(self.by_length)

    def add(self, item: _Pending[PayloadT, OutputT]) -> None:
        index = bisect.bisect(self.keys, item.sort_key)
        self.keys.insert(index, item.sort_key)
        self.by_length.insert(index, item)
        self.tokens += item.length

    def remove_indices(self, indices: Sequence[int]) -> None:
        for index in sorted(indices, reverse=True):
            self.tokens -= self.by_length[index].length
            del self.by_length[index]
            del self.keys[index]

    def oldest_index(self) -> int:
        return min(range(len(self.by_length)), key=lambda i: self.by_length[i].seq)


def choose_window(
    lengths: Sequence[int], anchor: int, max_size: int, max_tokens: int, max_padding: float = 1.0
) -> tuple[int, int]:
    """Pick a contiguous run [lo, hi] of length-sorted items that contains `anchor`.

    Grows one item at a time on the side that adds the least padding, while the batch stays
    within `max_size` items, `max_tokens` padded tokens (longest x count) and a padding share of
    at most `max_padding`. The anchor alone is always taken, even when over the budget by itself.
    """
    lo = hi = anchor
    longest, real = lengths[anchor], lengths[anchor]

    def fits(new_longest: int, new_real: int, count: int) -> bool:
        padded = new_longest * count
        return padded <= max_tokens and padded - new_real <= max_padding * padded

    while hi - lo + 1 < max_size:
        count = hi - lo + 1
        left_cost = longest - lengths[lo - 1] if lo > 0 else None
        right_cost = count * (lengths[hi + 1] - longest) if hi + 1 < len(lengths) else None
        left_fits = left_cost is not None and fits(longest, real + lengths[lo - 1], count + 1)
        right_fits = right_cost is not None and fits(lengths[hi + 1], real + lengths[hi + 1], count + 1)
        if left_fits and (not right_fits or (left_cost or 0) <= (right_cost or 0)):
            lo -= 1
            real += lengths[lo]
        elif right_fits:
            hi += 1
            longest = lengths[hi]
            real += longest
        else:
            break
    return lo, hi


class DynamicBatcher(Generic[PayloadT, OutputT]):
    """One per model: queues items, forms batches, hands them to runner threads.

    Runner threads take prepared batches from a hand-off queue themselves, so a batch starts the
    moment the previous one ends, however busy the event loop is with HTTP at that moment.
    """

    def __init__(
        self,
        name: str,
        runner: BatchRunner[PayloadT, Any, OutputT],
        limits: BatchLimits,
        *,
        observer: BatchObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.limits = limits
        self._runner = runner
        self._observer = observer
        self._clock = clock
        self._queue: _Queue[PayloadT, OutputT] = _Queue()
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        # One prepared batch may wait per runner thread: it starts as soon as a thread is free.
        self._handoff: queue.Queue[_Batch[PayloadT, OutputT] | None] = queue.Queue(
            maxsize=limits.max_concurrent_batches
        )
        self._threads: list[threading.Thread] = []
        self._in_flight = 0  # batches handed off and not yet delivered
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._accepting = True

    # -- public API ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the batching loop on the running event loop, and the runner threads."""
        if self._loop_task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_task = self._loop.create_task(self._batch_loop(), name=f"batcher-{self.name}")
        for index in range(self.limits.max_concurrent_batches):
            thread = threading.Thread(
                target=self._runner_thread, name=f"run-{self.name}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._in_flight > 0

    async def submit(self, items: Sequence[tuple[PayloadT, int]], timeout_s: float) -> Completed[OutputT]:
        """Queue all items of one request (or none: admission is all-or-nothing) and await them.

        Raises QueueFull, BatcherClosed, DeadlineExceeded. If the caller is cancelled (its client
        went away), its items still queued are dropped.
        """
        if not self._accepting:
            raise BatcherClosed(f"model {self.name!r} is shutting down")
        if len(self._queue) + len(items) > self.limits.max_queue_items:
            raise QueueFull(
                f"model {self.name!r} has {len(self._queue)} items queued"
                f" (limit {self.limits.max_queue_items})"
            )
        loop = asyncio.get_running_loop()
        now = self._clock()
        deadline = now + timeout_s
        pending = [
            _Pending(payload, max(1, length), loop.create_future(), now, deadline, next(self._seq))
            for payload, length in items
        ]
        futures = [item.future for item in pending]
        for item in pending:
            self._queue.add(item)
        self._report_depth()
        self._wakeup.set()
        try:
            async with asyncio.timeout(timeout_s):
                outputs = list(await asyncio.gather(*futures))
            runs = {(item.started, item.run_seconds) for item in pending}
            return Completed(
                outputs=outputs,
                queue_seconds=max((item.started - item.enqueued for item in pending), default=0.0),
                inference_seconds=sum(run_seconds for _, run_seconds in runs),
            )
        except TimeoutError:
            raise DeadlineExceeded(f"no answer within {timeout_s:g} s") from None
        finally:
            for future in futures:
                future.cancel()  # no-op on finished ones; marks queued ones to be dropped

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
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for item in self._queue.by_length:
            if not item.future.done():
                item.future.set_exception(BatcherClosed(f"model {self.name!r} stopped"))
        self._queue = _Queue()
        for _ in self._threads:
            await asyncio.to_thread(self._handoff.put, None)
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 5.0)

    # -- the loop (event loop side) -------------------------------------------------------------

    async def _batch_loop(self) -> None:
        while True:
            self._drop_dead_items()
            if not self._queue or self._handoff.full():
                await self._wait_for_change(None)
                continue
            if not self._is_full():
                wait_s = self._delay_left()
                if wait_s > 0:
                    await self._wait_for_change(wait_s)
                    continue
            batch = self._take_batch()
            prepared = self._runner.prepare([item.payload for item in batch])
            self._in_flight += 1
            self._handoff.put_nowait(_Batch(batch, prepared))

    async def _wait_for_change(self, timeout_s: float | None) -> None:
        """Sleep until an item arrives, a runner takes a batch, or `timeout_s` passes."""
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._wakeup.wait()

    def _is_full(self) -> bool:
        return (
            len(self._queue) >= self.limits.max_batch_size
            or self._queue.tokens >= self.limits.max_batch_tokens
        )

    def _delay_left(self) -> float:
        oldest = self._queue.by_length[self._queue.oldest_index()]
        return oldest.enqueued + self.limits.max_delay_ms / 1000.0 - self._clock()

    def _drop_dead_items(self) -> None:
        now = self._clock()
        gone: list[int] = []
        expired: list[int] = []
        for index, item in enumerate(self._queue.by_length):
            if item.future.done():
                gone.append(index)
            elif item.deadline <= now:
                expired.append(index)
                item.future.set_exception(DeadlineExceeded("deadline passed while queued"))
        if gone or expired:
            self._queue.remove_indices(gone + expired)
            self._report_depth()
            if gone:
                self._report_drop("client_gone", len(gone))
            if expired:
                self._report_drop("deadline", len(expired))

    def _take_batch(self) -> list[_Pending[PayloadT, OutputT]]:
        lengths = [item.length for item in self._queue.by_length]
        lo, hi = choose_window(
            lengths,
            self._queue.oldest_index(),
            self.limits.max_batch_size,
            self.limits.max_batch_tokens,
            self.limits.max_padding_ratio,
        )
        batch = self._queue.by_length[lo : hi + 1]
        self._queue.remove_indices(range(lo, hi + 1))
        self._report_depth()
        return batch

    # -- runner threads -------------------------------------------------------------------------

    def _runner_thread(self) -> None:
        assert self._loop is not None
        loop = self._loop
        while True:
            handed = self._handoff.get()
            if handed is None:
                return
            loop.call_soon_threadsafe(self._wakeup.set)  # room for the next prepared batch
            live = [item for item in handed.items if not item.future.done()]
            started = self._clock()
            outputs: Sequence[OutputT] | None = None
            error: BaseException | None = None
            if live:
                try:
                    outputs = self._runner.run(handed.prepared)
                except Exception as failure:  # every item of the batch learns why
                    error = failure
            finished = self._clock()
            try:
                loop.call_soon_threadsafe(self._deliver, handed, outputs, error, started, finished)
            except RuntimeError:  # the event loop is closed: nobody is waiting any more
                return

    def _deliver(
        self,
        handed: _Batch[PayloadT, OutputT],
        outputs: Sequence[OutputT] | None,
        error: BaseException | None,
        started: float,
        finished: float,
    ) -> None:
        """On the event loop: resolve the batch's futures and report it."""
        self._in_flight -= 1
        self._wakeup.set()
        batch = handed.items
        if outputs is None:
            gone = sum(item.future.done() for item in batch)
            if gone:
                self._report_drop("client_gone", gone)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error or RuntimeError("batch was not run"))
            return
        for item, output in zip(batch, outputs, strict=True):
            item.started, item.run_seconds = started, finished - started
            if not item.future.done():
                item.future.set_result(output)
        if self._observer is not None:
            self._observer.on_batch(
                BatchReport(
                    size=len(batch),
                    real_tokens=sum(item.length for item in batch),
                    padded_tokens=handed.prepared.padded_tokens,
                    queue_waits=[started - item.enqueued for item in batch],
                    run_seconds=finished - started,
                )
            )

    def _report_depth(self) -> None:
        if self._observer is not None:
            self._observer.on_queue_depth(len(self._queue))

    def _report_drop(self, reason: str, count: int) -> None:
        if self._observer is not None:
            self._observer.on_drop(DropReport(reason, count))


def describe(batcher: DynamicBatcher[Any, Any]) -> dict[str, Any]:
    """The batcher's limits and state, for /v1/models."""
    return {"queue_items": batcher.queue_depth, **batcher.limits.model_dump()}
