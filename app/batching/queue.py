"""The pending items of one model, sorted by length: admission, the throughput estimate, and the
choice of the next batch (grouped by length around the oldest item, within a padding budget)."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app.batching.backlog import Backlog
from app.batching.limits import BatchLimits
from app.batching.protocol import DropReason, RunTrace
from app.errors import DeadlineExceeded, QueueFull

PayloadT = TypeVar("PayloadT")
OutputT = TypeVar("OutputT")


@dataclass(eq=False)
class Pending(Generic[PayloadT, OutputT]):
    """One queued item and the future its request awaits."""

    payload: PayloadT
    length: int
    future: asyncio.Future[OutputT]
    enqueued: float
    deadline: float
    seq: int
    tag: str = ""  # the request id, for logs
    trace: RunTrace | None = None  # the request's trace, None when it is not traced
    abandoned: DropReason = DropReason.CLIENT_GONE  # why, if its future is cancelled before it runs
    started: float = 0.0
    run_seconds: float = 0.0

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.length, self.seq)


@dataclass(frozen=True)
class FormedBatch(Generic[PayloadT, OutputT]):
    """A formed batch: its items and the runner's padded arrays for them."""

    items: list[Pending[PayloadT, OutputT]]
    padded: Any


def expire(pending: Sequence[Pending[PayloadT, OutputT]], timeout_s: float) -> None:
    """A request's deadline passed: fail its items still unanswered (reason DEADLINE)."""
    for item in pending:
        if not item.future.done():
            item.abandoned = DropReason.DEADLINE
            item.future.set_exception(DeadlineExceeded(f"no answer within {timeout_s:g} s"))


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


class Reservation:
    """Tokens a request is expected to queue, counted from `reserve` until the `with` block ends."""

    def __init__(self, queue: PendingQueue[Any, Any], tokens: int) -> None:
        if queue.tokens_per_second > 0:  # a guess alone never fills the wait limit for the others
            tokens = min(tokens, int(queue.tokens_per_second * queue.limits.max_queue_wait_s / 2))
        self._queue, self._tokens = queue, tokens
        queue.incoming_tokens += tokens

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        self._queue.incoming_tokens -= self._tokens
        self._tokens = 0


class PendingQueue(Generic[PayloadT, OutputT]):
    """Pending items kept sorted by (length, arrival), with the admission rules and the measured
    speed that the admission's wait estimate uses (through the backlog it shares with the models
    on the same engine; its own when none is given)."""

    def __init__(
        self, name: str, limits: BatchLimits, clock: Callable[[], float], backlog: Backlog | None = None
    ) -> None:
        self.name = name
        self.limits = limits
        self._clock = clock
        self.by_length: list[Pending[PayloadT, OutputT]] = []
        self._keys: list[tuple[int, int]] = []
        self.tokens = 0
        self.unfinished_tokens = 0  # of the batches taken and not yet run
        self.incoming_tokens = 0  # estimated, of the admitted requests still being tokenized
        self.oldest_enqueued = 0.0  # when the oldest queued item arrived
        self.tokens_per_second = 0.0  # padded tokens one run does per second (EWMA), 0 = unknown
        self.refusal: Callable[[], BaseException] | None = None  # admission fails so while suspended
        self.backlog = backlog or Backlog(limits.max_concurrent_batches)
        self.backlog.join(self)

    @property
    def parallel_runs(self) -> int:
        return self.limits.max_concurrent_batches

    def work_seconds(self) -> float:
        """Seconds of one run that the queued, taken but unfinished, and incoming work takes."""
        if self.tokens_per_second <= 0:
            return 0.0
        return (self.tokens + self.unfinished_tokens + self.incoming_tokens) / self.tokens_per_second

    def __len__(self) -> int:
        return len(self.by_length)

    def add(self, items: Sequence[Pending[PayloadT, OutputT]]) -> None:
        if not self.by_length and items:
            self.oldest_enqueued = items[0].enqueued
        for item in items:
            index = bisect.bisect(self._keys, item.sort_key)
            self._keys.insert(index, item.sort_key)
            self.by_length.insert(index, item)
            self.tokens += item.length

    def _remove_indices(self, indices: Sequence[int]) -> None:
        for index in sorted(indices, reverse=True):
            self.tokens -= self.by_length[index].length
            del self.by_length[index]
            del self._keys[index]
        if self.by_length:
            self.oldest_enqueued = self.by_length[self._oldest_index()].enqueued

    def _oldest_index(self) -> int:
        return min(range(len(self.by_length)), key=lambda i: self.by_length[i].seq)

    def clear(self) -> list[Pending[PayloadT, OutputT]]:
        """Empty the queue; returns what was in it."""
        items = self.by_length
        self.by_length, self._keys, self.tokens = [], [], 0
        return items

    def expected_wait(self, extra_tokens: int = 0) -> float:
        """Seconds until the queued work (plus `extra_tokens`) is done, on an engine that the other
        models of the backlog share; 0 while unmeasured."""
        extra = extra_tokens / self.tokens_per_second if self.tokens_per_second > 0 else 0.0
        return self.backlog.wait_seconds(self, extra)

    def check_admission(self, items: int = 0, tokens: int = 0) -> None:
        """Raise QueueFull if `items` more items of `tokens` tokens would overfill the queue."""
        if self.refusal is not None:
            raise self.refusal()
        if len(self) + items > self.limits.max_queue_items:
            raise QueueFull(
                f"model {self.name!r} has {len(self)} items queued (limit {self.limits.max_queue_items})"
            )
        if not self.by_length and not self.unfinished_tokens and not self.incoming_tokens:
            return  # nothing of this model's is ahead: however big, the request may start now
        limit = self.limits.max_queue_wait_s
        wait = self.expected_wait(tokens)
        if wait > limit:
            raise QueueFull(
                f"model {self.name!r}: {wait:.1f} s of queued work on its engine (limit {limit:g} s)"
            )
        if not self.by_length:
            return
        # The estimate is from measured speeds, which can be wrong (a slower machine, a new length
        # mix), so the age of the oldest queued item is the check that cannot be fooled.
        age = self._clock() - self.oldest_enqueued
        if age > limit:
            raise QueueFull(f"model {self.name!r} has had work queued for {age:.1f} s (limit {limit:g} s)")

    def reserve(self, tokens: int) -> Reservation:
        """Admit a request whose items are not made yet (about `tokens` tokens) or raise QueueFull:
        until the reservation is left its work counts as queued, so a burst of requests that all
        tokenize at once is admitted as the queue can take it, not as if the queue were empty."""
        self.check_admission(0, tokens)
        return Reservation(self, tokens)

    def measure(self, padded_tokens: int, seconds: float) -> None:
        """Fold one batch's run (timed alone, not its wait for a turn) into the speed estimate."""
        if seconds <= 0:
            return
        rate = padded_tokens / seconds
        weight = 0.2 if self.tokens_per_second else 1.0
        self.tokens_per_second += weight * (rate - self.tokens_per_second)

    def settle(self, batch: Sequence[Pending[PayloadT, OutputT]]) -> None:
        """A batch taken from the queue ran, failed or was dropped: its work is no longer ahead."""
        self.unfinished_tokens -= sum(item.length for item in batch)

    def is_full(self) -> bool:
        return len(self) >= self.limits.max_batch_size or self.tokens >= self.limits.max_batch_tokens

    def delay_left(self) -> float:
        """Seconds until the oldest item has waited `max_delay_ms`."""
        oldest = self.by_length[self._oldest_index()]
        return oldest.enqueued + self.limits.max_delay_ms / 1000.0 - self._clock()

    def drop_dead(self) -> dict[DropReason, int]:
        """Remove items whose future is done (cancelled) or whose deadline passed; count by reason."""
        now = self._clock()
        dead: list[int] = []
        reasons: dict[DropReason, int] = {}
        for index, item in enumerate(self.by_length):
            if item.future.done():
                reason = item.abandoned
            elif item.deadline <= now:
                reason = DropReason.DEADLINE
                item.future.set_exception(DeadlineExceeded("deadline passed while queued"))
            else:
                continue
            dead.append(index)
            reasons[reason] = reasons.get(reason, 0) + 1
        if dead:
            self._remove_indices(dead)
        return reasons

    def take_batch(self) -> list[Pending[PayloadT, OutputT]]:
        """The next batch: the oldest item and its length neighbours, within the limits."""
        lo, hi = choose_window(
            [item.length for item in self.by_length],
            self._oldest_index(),
            self.limits.max_batch_size,
            self.limits.max_batch_tokens,
            self.limits.max_padding_ratio,
        )
        batch = self.by_length[lo : hi + 1]
        self._remove_indices(range(lo, hi + 1))
        self.unfinished_tokens += sum(item.length for item in batch)
        return batch
