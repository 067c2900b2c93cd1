"""Dynamic batching: items in, futures out.

The batcher knows only items with a token count and a future. It knows nothing of tasks, HTTP
or onnxruntime: an injected runner pads a batch (`pad`, cheap, on the event loop) and runs it
(`run`, in a runner thread), so the event loop never blocks on inference.

A batch closes when it is full (`max_batch_size` items, or `max_batch_tokens` padded tokens), or
when its oldest item has waited `max_delay_ms`; but the batcher waits for companions only when
waiting pays: while every runner thread is busy (the next batch fills up anyway), or when the
arrival rate it observes says a companion comes within the delay. A lone request on an idle model
runs at once. While a batch runs, the next one is formed and
padded and waits in a hand-off slot; a runner thread starts it the moment the current one ends,
without a round trip through a busy event loop. Items are grouped by length around the oldest
one, within a padding budget (`max_padding_ratio`), so batches pad little and nobody starves.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from app.errors import DeadlineExceeded, QueueFull
from app.settings import BatchLimits

log = logging.getLogger("bertserve.batching")

PayloadT = TypeVar("PayloadT")
OutputT = TypeVar("OutputT")


class BatcherClosed(Exception):
    """The batcher is draining or stopped and takes no new work (503)."""


class NeverFits(Exception):
    """A request needs more items than the queue can ever hold: retrying cannot help (413)."""

    def __init__(self, needed: int, limit: int) -> None:
        super().__init__(f"the request needs {needed} items (windows); a queue holds at most {limit}")
        self.needed = needed
        self.limit = limit


class BatchFailed(Exception):
    """The batch an item was in failed to pad or run; only that batch's items get it (500)."""


class PaddedArrays(Protocol):
    """What a runner's `pad` returns: opaque to the batcher but for its padded size."""

    @property
    def padded_tokens(self) -> int: ...


PayloadT_contra = TypeVar("PayloadT_contra", contravariant=True)
OutputT_co = TypeVar("OutputT_co", covariant=True)
PaddedT = TypeVar("PaddedT", bound=PaddedArrays)


class BatchRunner(Protocol[PayloadT_contra, PaddedT, OutputT_co]):
    """Pads and runs batches; both methods are called from worker threads."""

    def pad(self, payloads: Sequence[PayloadT_contra]) -> PaddedT: ...

    def run(self, batch: PaddedT) -> Sequence[OutputT_co]: ...


# A runner may also offer `saturated() -> bool`: True while a batch formed now could not start
# (e.g. a run gate shared with other models is full); the batcher then waits for companions.


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

    def on_batch_failed(self, size: int) -> None: ...

    def on_crash(self, component: str, reason: str) -> None:
        """The batching loop or a runner thread died; the supervisor restarts it after a backoff."""

    def on_recovered(self, component: str) -> None:
        """The component that died runs again."""


@dataclass(eq=False)
class _Pending(Generic[PayloadT, OutputT]):
    payload: PayloadT
    length: int
    future: asyncio.Future[OutputT]
    enqueued: float
    deadline: float
    seq: int
    tag: str = ""  # the request id, for logs
    abandoned: str = "client_gone"  # why, if its future is cancelled before it runs
    started: float = 0.0
    run_seconds: float = 0.0

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.length, self.seq)


@dataclass(frozen=True)
class _Batch(Generic[PayloadT, OutputT]):
    """A formed batch: its items and the runner's padded arrays for them."""

    items: list[_Pending[PayloadT, OutputT]]
    padded: Any


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


class DynamicBatcher(Generic[PayloadT, OutputT]):
    """One per model: queues items, forms batches, hands them to runner threads.

    Runner threads take padded batches from a hand-off queue themselves, so a batch starts the
    moment the previous one ends, however busy the event loop is with HTTP at that moment.

    Supervised: a batch that fails to pad or run fails only its own items (`BatchFailed`); if the
    loop or a runner thread dies anyway, the observer hears `on_crash`, and the component is
    restarted after a backoff that grows while crashes repeat (queued items wait for it).
    """

    def __init__(
        self,
        name: str,
        runner: BatchRunner[PayloadT, Any, OutputT],
        limits: BatchLimits,
        *,
        observer: BatchObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        restart_backoff_s: tuple[float, float] = (0.1, 10.0),
    ) -> None:
        self.name = name
        self.limits = limits
        self._runner = runner
        self._observer = observer
        self._clock = clock
        self._queue: _Queue[PayloadT, OutputT] = _Queue()
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        # One padded batch may wait per runner thread: it starts as soon as a thread is free.
        self._handoff: queue.Queue[_Batch[PayloadT, OutputT] | None] = queue.Queue(
            maxsize=limits.max_concurrent_batches
        )
        self._threads: dict[int, threading.Thread] = {}
        self._in_flight = 0  # batches handed off and not yet delivered
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._accepting = True
        self._closing = False
        self._backoff = restart_backoff_s
        self._crashes: list[float] = []  # times of recent crashes, for the backoff
        self.restarts = 0
        self.tokens_per_second = 0.0  # padded tokens the model runs per second (EWMA), 0 = unknown
        self._oldest_enqueued = 0.0  # when the oldest queued item arrived (kept by the loop)
        self.arrivals = ArrivalRate()

    # -- public API ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the batching loop on the running event loop, and the runner threads."""
        if self._loop_task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._start_loop_task()
        for index in range(self.limits.max_concurrent_batches):
            self._start_thread(index)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def expected_wait(self, extra_tokens: int = 0) -> float:
        """Seconds the queued work (plus `extra_tokens`) should take to start; 0 while unmeasured."""
        if self.tokens_per_second <= 0:
            return 0.0
        return (self._queue.tokens + extra_tokens) / self.tokens_per_second

    def check_admission(self, items: int = 0, tokens: int = 0) -> None:
        """Raise QueueFull if `items` more items of `tokens` tokens would overfill the queue."""
        if len(self._queue) + items > self.limits.max_queue_items:
            raise QueueFull(
                f"model {self.name!r} has {len(self._queue)} items queued"
                f" (limit {self.limits.max_queue_items})"
            )
        if not self._queue:
            return
        limit = self.limits.max_queue_wait_s
        wait = self.expected_wait(tokens)
        if wait > limit:
            raise QueueFull(f"model {self.name!r} has {wait:.1f} s of queued work (limit {limit:g} s)")
        # The estimate is one model's; models that share the cores slow each other down, so the age
        # of the oldest queued item is the check that cannot be fooled.
        age = self._clock() - self._oldest_enqueued
        if age > limit:
            raise QueueFull(f"model {self.name!r} has had work queued for {age:.1f} s (limit {limit:g} s)")

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._in_flight > 0

    async def submit(
        self, items: Sequence[tuple[PayloadT, int]], timeout_s: float, *, tag: str = ""
    ) -> Completed[OutputT]:
        """Queue all items of one request (or none: admission is all-or-nothing) and await them.

        Raises NeverFits, QueueFull, BatcherClosed, DeadlineExceeded, BatchFailed. If the caller is
        cancelled (its client went away), its items still queued are dropped before they run.
        """
        if not self._accepting:
            raise BatcherClosed(f"model {self.name!r} is shutting down")
        if len(items) > self.limits.max_queue_items:
            raise NeverFits(len(items), self.limits.max_queue_items)
        self.check_admission(len(items), sum(max(1, length) for _, length in items))
        loop = asyncio.get_running_loop()
        now = self._clock()
        deadline = now + timeout_s
        pending = [
            _Pending(payload, max(1, length), loop.create_future(), now, deadline, next(self._seq), tag)
            for payload, length in items
        ]
        if not self._queue:
            self._oldest_enqueued = now
        self.arrivals.arrive(now, busy=self.busy)
        for item in pending:
            self._queue.add(item)
        self._report_depth()
        self._wakeup.set()
        # The deadline fails the items still waiting (reason "deadline"); a client that goes away
        # cancels the gather, which cancels the futures at once (reason "client_gone").
        expiry = loop.call_later(timeout_s, self._expire, pending, timeout_s)
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
                    item.abandoned = "request_failed"
            raise
        finally:
            expiry.cancel()
            for item in pending:
                item.future.cancel()  # no-op on finished ones; marks queued ones to be dropped

    @staticmethod
    def _expire(pending: Sequence[_Pending[PayloadT, OutputT]], timeout_s: float) -> None:
        for item in pending:
            if not item.future.done():
                item.abandoned = "deadline"
                item.future.set_exception(DeadlineExceeded(f"no answer within {timeout_s:g} s"))

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
        self._closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for item in self._queue.by_length:
            if not item.future.done():
                item.future.set_exception(BatcherClosed(f"model {self.name!r} stopped"))
        self._queue = _Queue()
        threads = list(self._threads.values())
        for _ in threads:
            await asyncio.to_thread(self._handoff.put, None)
        for thread in threads:
            await asyncio.to_thread(thread.join, 5.0)

    # -- the loop (event loop side) -------------------------------------------------------------

    async def _batch_loop(self) -> None:
        while True:
            self._drop_dead_items()
            if not self.busy:
                self.arrivals.idle(self._clock())
            if not self._queue or self._handoff.full():
                await self._wait_for_change(None)
                continue
            if not self._is_full():
                wait_s = self._delay_left()
                if wait_s > 0 and self._waiting_pays(wait_s):
                    await self._wait_for_change(wait_s)
                    continue
            batch = self._take_batch()
            try:
                padded = self._runner.pad([item.payload for item in batch])
            except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
                raise
            except BaseException as error:  # only this batch's items learn of it
                self._fail_batch(batch, error, "pad")
                continue
            self._in_flight += 1
            self._handoff.put_nowait(_Batch(batch, padded))

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

    def _waiting_pays(self, wait_s: float) -> bool:
        """Wait for companions only while the batch could not start anyway (every runner busy, or
        the runner's shared engine saturated by other models), or if one should come in `wait_s`."""
        if self.limits.always_wait or self._in_flight >= self.limits.max_concurrent_batches:
            return True
        saturated = getattr(self._runner, "saturated", None)
        if saturated is not None and saturated():
            return True
        return self.arrivals.per_second(self._clock()) * wait_s >= 1.0

    def _delay_left(self) -> float:
        oldest = self._queue.by_length[self._queue.oldest_index()]
        return oldest.enqueued + self.limits.max_delay_ms / 1000.0 - self._clock()

    def _drop_dead_items(self) -> None:
        now = self._clock()
        dead: list[int] = []
        reasons: dict[str, int] = {}
        for index, item in enumerate(self._queue.by_length):
            if item.future.done():
                reason = item.abandoned
            elif item.deadline <= now:
                reason = "deadline"
                item.future.set_exception(DeadlineExceeded("deadline passed while queued"))
            else:
                continue
            dead.append(index)
            reasons[reason] = reasons.get(reason, 0) + 1
        if dead:
            self._queue.remove_indices(dead)
            self._refresh_oldest()
            self._report_depth()
            for reason, count in reasons.items():
                self._report_drop(reason, count)

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
        self._refresh_oldest()
        self._report_depth()
        return batch

    def _refresh_oldest(self) -> None:
        if self._queue:
            self._oldest_enqueued = self._queue.by_length[self._queue.oldest_index()].enqueued

    def _fail_batch(
        self, batch: Sequence[_Pending[PayloadT, OutputT]], error: BaseException, stage: str
    ) -> None:
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
        if self._observer is not None:
            self._observer.on_batch_failed(len(batch))

    # -- runner threads -------------------------------------------------------------------------

    def _runner_thread(self, index: int) -> None:
        """Take batches and run them until told to stop; dying any other way is reported."""
        assert self._loop is not None
        loop = self._loop
        handed: _Batch[PayloadT, OutputT] | None = None
        try:
            while True:
                handed = None
                handed = self._handoff.get()
                if handed is None:
                    return
                loop.call_soon_threadsafe(self._wakeup.set)  # room for the next padded batch
                outcome = self._run_one(handed)
                try:
                    loop.call_soon_threadsafe(self._deliver, handed, *outcome)
                except RuntimeError:  # the event loop is closed: nobody is waiting any more
                    return
        except BaseException as error:
            with contextlib.suppress(RuntimeError):
                if handed is not None:  # the batch in hand fails with the thread
                    now = self._clock()
                    loop.call_soon_threadsafe(self._deliver, handed, None, error, now, now)
                loop.call_soon_threadsafe(self._on_crash, f"runner-{index}", error)

    def _run_one(
        self, handed: _Batch[PayloadT, OutputT]
    ) -> tuple[Sequence[OutputT] | None, BaseException | None, float, float]:
        """Run one batch; any failure, or an output count that does not match, is the batch's."""
        started = self._clock()
        outputs: Sequence[OutputT] | None = None
        error: BaseException | None = None
        if any(not item.future.done() for item in handed.items):
            try:
                outputs = self._runner.run(handed.padded)
                if len(outputs) != len(handed.items):
                    error = RuntimeError(
                        f"runner returned {len(outputs)} outputs for {len(handed.items)} items"
                    )
                    outputs = None
            except BaseException as failure:  # every item of the batch learns why; the thread goes on
                error = failure
        return outputs, error, started, self._clock()

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
        if not self.busy:
            self.arrivals.idle(self._clock())
        batch = handed.items
        if outputs is None:
            reasons: dict[str, int] = {}
            for item in batch:
                if item.future.done():
                    reasons[item.abandoned] = reasons.get(item.abandoned, 0) + 1
            for reason, count in reasons.items():
                self._report_drop(reason, count)
            if error is not None:
                self._fail_batch(batch, error, "run")
            return
        self._measure(handed.padded.padded_tokens, finished - started)
        for item, output in zip(batch, outputs, strict=True):
            item.started, item.run_seconds = started, finished - started
            if not item.future.done():
                item.future.set_result(output)
        if self._observer is not None:
            self._observer.on_batch(
                BatchReport(
                    size=len(batch),
                    real_tokens=sum(item.length for item in batch),
                    padded_tokens=handed.padded.padded_tokens,
                    queue_waits=[started - item.enqueued for item in batch],
                    run_seconds=finished - started,
                )
            )

    def _measure(self, padded_tokens: int, seconds: float) -> None:
        """Fold one batch into the throughput estimate (all runner threads together)."""
        if seconds <= 0:
            return
        rate = padded_tokens / seconds * self.limits.max_concurrent_batches
        weight = 0.2 if self.tokens_per_second else 1.0
        self.tokens_per_second += weight * (rate - self.tokens_per_second)

    # -- supervision ----------------------------------------------------------------------------

    def _start_loop_task(self) -> None:
        assert self._loop is not None
        self._loop_task = self._loop.create_task(self._batch_loop(), name=f"batcher-{self.name}")
        self._loop_task.add_done_callback(self._loop_ended)

    def _start_thread(self, index: int) -> None:
        thread = threading.Thread(
            target=self._runner_thread, args=(index,), name=f"run-{self.name}-{index}", daemon=True
        )
        self._threads[index] = thread
        thread.start()

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._closing:
            return
        error = task.exception()
        self._on_crash("loop", error or RuntimeError("the batching loop returned"))

    def _on_crash(self, component: str, error: BaseException) -> None:
        """On the event loop: report the crash, then restart the component after a backoff."""
        if self._closing:
            return
        now = self._clock()
        self._crashes = [t for t in self._crashes if now - t < 60.0] + [now]
        first, cap = self._backoff
        delay = min(cap, first * 2 ** (len(self._crashes) - 1))
        reason = f"{component} crashed: {type(error).__name__}: {error}"
        log.error(
            "model %s: %s; restarting in %.1f s",
            self.name,
            reason,
            delay,
            exc_info=(type(error), error, error.__traceback__),
        )
        if self._observer is not None:
            self._observer.on_crash(component, reason)
        assert self._loop is not None
        self._loop.call_later(delay, self._restart, component)

    def _restart(self, component: str) -> None:
        if self._closing:
            return
        if component == "loop":
            self._start_loop_task()
        else:
            index = int(component.rpartition("-")[2])
            self._start_thread(index)
        self.restarts += 1
        log.warning("model %s: %s restarted", self.name, component)
        if self._observer is not None:
            self._observer.on_recovered(component)
        self._wakeup.set()

    def _report_depth(self) -> None:
        if self._observer is not None:
            self._observer.on_queue_depth(len(self._queue))

    def _report_drop(self, reason: str, count: int) -> None:
        if self._observer is not None:
            self._observer.on_drop(DropReport(reason, count))
