"""The dynamic batcher with a fake runner: flush rules, ordering, overload, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from app.batching import (
    BatcherClosed,
    BatchFailed,
    BatchReport,
    DropReport,
    DynamicBatcher,
    Part,
    choose_window,
)
from app.batching.limits import BatchLimits
from app.errors import DeadlineExceeded, QueueFull


@dataclass
class FakeBatch:
    payloads: list[tuple[str, int]]

    @property
    def padded_tokens(self) -> int:
        return max(length for _, length in self.payloads) * len(self.payloads)


@dataclass
class FakeRunner:
    """Echoes payload names; can be held closed to let a queue build up."""

    gate: threading.Event = field(default_factory=threading.Event)
    batches: list[list[str]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    fail: bool = False

    def __post_init__(self) -> None:
        self.gate.set()

    def pad(self, payloads: Sequence[tuple[str, int]]) -> FakeBatch:
        self.events.append(f"pad {len(payloads)}")
        return FakeBatch(list(payloads))

    def run(self, batch: FakeBatch) -> list[str]:  # type: ignore[override]
        self.events.append(f"run {len(batch.payloads)} start")
        self.gate.wait(5)
        self.batches.append([name for name, _ in batch.payloads])
        self.events.append(f"run {len(batch.payloads)} end")
        if self.fail:
            raise RuntimeError("boom")
        return [f"out-{name}" for name, _ in batch.payloads]


@dataclass
class RecordingObserver:
    batches: list[BatchReport] = field(default_factory=list)
    drops: list[DropReport] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    health: list[str] = field(default_factory=list)

    def on_batch(self, report: BatchReport) -> None:
        self.batches.append(report)

    def on_drop(self, report: DropReport) -> None:
        self.drops.append(report)

    def on_queue_depth(self, depth: int) -> None:
        self.depths.append(depth)

    def on_batch_failed(self, size: int, error: BaseException) -> None:
        self.failed.append(size)

    def on_crash(self, part: Part, reason: str) -> None:
        self.health.append(f"crash {part}: {reason}")

    def on_recovered(self, part: Part) -> None:
        self.health.append(f"recovered {part}")


def limits(**overrides: float) -> BatchLimits:
    base = {"max_batch_size": 4, "max_batch_tokens": 10_000, "max_delay_ms": 10_000, "max_queue_items": 100}
    return BatchLimits.model_validate(base | overrides)


def item(name: str, length: int = 10) -> list[tuple[tuple[str, int], int]]:
    return [((name, length), length)]


async def started(runner: FakeRunner, lim: BatchLimits, observer: RecordingObserver | None = None):
    batcher: DynamicBatcher[tuple[str, int], str] = DynamicBatcher("m", runner, lim, observer=observer)
    batcher.start()
    return batcher


# -- choose_window on hand-made lengths -----------------------------------------------------------


def test_window_grows_towards_similar_lengths() -> None:
    lengths = [5, 6, 7, 50, 51, 200]
    assert choose_window(lengths, anchor=3, max_size=2, max_tokens=10_000) == (3, 4)
    assert choose_window(lengths, anchor=0, max_size=3, max_tokens=10_000) == (0, 2)


def test_window_respects_token_budget() -> None:
    lengths = [30, 30, 30, 30, 30]
    lo, hi = choose_window(lengths, anchor=2, max_size=10, max_tokens=100)
    assert hi - lo + 1 == 3


def test_window_takes_an_oversized_anchor_alone() -> None:
    assert choose_window([10, 512, 600], anchor=1, max_size=8, max_tokens=100) == (1, 1)


# -- the batcher -------------------------------------------------------------------------------------


async def test_flushes_when_the_batch_is_full() -> None:
    runner = FakeRunner()
    batcher = await started(runner, limits(max_batch_size=4))
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(item(f"r{i}"), 5.0) for i in range(8))), timeout=3.0
    )
    assert [r.outputs for r in results] == [[f"out-r{i}"] for i in range(8)]
    assert sorted(len(b) for b in runner.batches) == [4, 4]
    await batcher.close()


async def test_flushes_on_the_token_budget() -> None:
    runner = FakeRunner()
    batcher = await started(runner, limits(max_batch_size=64, max_batch_tokens=100, max_delay_ms=50))
    await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(item(f"r{i}", 30), 5.0) for i in range(6))), timeout=3.0
    )
    assert [len(b) for b in runner.batches] == [3, 3]  # 4 x 30 padded tokens would be over 100
    await batcher.close()


async def test_a_lone_item_on_an_idle_model_runs_at_once() -> None:
    runner = FakeRunner()
    batcher = await started(runner, limits(max_batch_size=64, max_delay_ms=2_000))
    for name in ("a", "b", "c"):  # one client, one request after another: never a companion
        begin = time.monotonic()
        done = await asyncio.wait_for(batcher.submit(item(name), 5.0), timeout=3.0)
        assert done.outputs == [f"out-{name}"]
        assert time.monotonic() - begin < 0.5
    assert runner.batches == [["a"], ["b"], ["c"]]
    await batcher.close()


async def test_a_burst_while_a_batch_runs_waits_for_companions() -> None:
    runner = FakeRunner()
    runner.gate.clear()
    batcher = await started(runner, limits(max_batch_size=8, max_delay_ms=200))
    lone = asyncio.ensure_future(batcher.submit(item("lone"), 5.0))
    await asyncio.sleep(0.02)
    assert runner.events == ["pad 1", "run 1 start"]  # not held back by the delay
    burst = []
    for i in range(4):  # hand-made arrivals, 10 ms apart, while the runner is busy
        burst.append(asyncio.ensure_future(batcher.submit(item(f"b{i}"), 5.0)))
        await asyncio.sleep(0.01)
    runner.gate.set()
    await asyncio.wait_for(asyncio.gather(lone, *burst), timeout=3.0)
    assert runner.batches == [["lone"], ["b0", "b1", "b2", "b3"]]
    await batcher.close()


async def test_an_observed_arrival_rate_makes_the_idle_model_wait() -> None:
    runner = FakeRunner()
    runner.gate.clear()
    batcher = await started(runner, limits(max_batch_size=8, max_delay_ms=300))
    first = asyncio.ensure_future(batcher.submit(item("first"), 5.0))
    await asyncio.sleep(0.01)
    burst = []
    for i in range(8):  # 8 arrivals in ~40 ms of busy time: ~200 per second
        burst.append(asyncio.ensure_future(batcher.submit(item(f"b{i}"), 5.0)))
        await asyncio.sleep(0.005)
    runner.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *burst), timeout=3.0)
    assert batcher.arrivals.per_second(time.monotonic()) > 10
    # the model is idle now, but companions are expected within the delay: two arrivals 20 ms apart
    pair = [asyncio.ensure_future(batcher.submit(item("p0"), 5.0))]
    await asyncio.sleep(0.02)
    pair.append(asyncio.ensure_future(batcher.submit(item("p1"), 5.0)))
    await asyncio.wait_for(asyncio.gather(*pair), timeout=3.0)
    assert runner.batches[-1] == ["p0", "p1"]
    await batcher.close()


async def test_one_request_of_many_items_keeps_its_order() -> None:
    runner = FakeRunner()
    batcher = await started(runner, limits(max_batch_size=3, max_delay_ms=1))
    items = [((f"w{i}", 40 - i), 40 - i) for i in range(7)]
    done = await asyncio.wait_for(batcher.submit(items, 5.0), timeout=3.0)
    assert done.outputs == [f"out-w{i}" for i in range(7)]
    await batcher.close()


async def test_batches_group_similar_lengths_and_serve_the_oldest_first() -> None:
    runner = FakeRunner()
    runner.gate.clear()
    batcher = await started(runner, limits(max_batch_size=2, max_delay_ms=1))
    first = asyncio.ensure_future(batcher.submit(item("blocker", 5), 5.0))
    await asyncio.sleep(0.05)  # the blocker runs and holds the runner
    lengths = {"long-a": 300, "short-a": 8, "long-b": 310, "short-b": 9}
    pending = [asyncio.ensure_future(batcher.submit(item(n, n_len), 5.0)) for n, n_len in lengths.items()]
    await asyncio.sleep(0.05)
    runner.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *pending), timeout=3.0)
    # the oldest waiting item (long-a) goes first, with the other long one; then the short pair
    assert runner.batches[1:] == [["long-a", "long-b"], ["short-a", "short-b"]]
    await batcher.close()


async def test_next_batch_is_prepared_while_the_current_one_runs() -> None:
    runner = FakeRunner()
    runner.gate.clear()
    batcher = await started(runner, limits(max_batch_size=2))
    first = [asyncio.ensure_future(batcher.submit(item(f"a{i}"), 5.0)) for i in range(2)]
    await asyncio.sleep(0.05)
    second = [asyncio.ensure_future(batcher.submit(item(f"b{i}"), 5.0)) for i in range(2)]
    await asyncio.sleep(0.05)
    assert runner.events == ["pad 2", "run 2 start", "pad 2"]
    runner.gate.set()
    await asyncio.wait_for(asyncio.gather(*first, *second), timeout=3.0)
    await batcher.close()


async def test_a_full_queue_refuses_the_whole_request() -> None:
    runner = FakeRunner()
    runner.gate.clear()
    batcher = await started(runner, limits(max_batch_size=1, max_queue_items=3, max_delay_ms=0))
    running = asyncio.ensure_future(batcher.submit(item("running"), 5.0))
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(batcher.submit([(("q", 1), 1)] * 2, 5.0))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await batcher.submit([(("x", 1), 1)] * 3, 5.0)
    assert batcher.queue_depth <= 3
    runner.gate.set()
    await asyncio.wait_for(asyncio.gather(running, queued), timeout=3.0)
    assert all("x" not in batch for batch in runner.batches)
    await batcher.close()


async def test_a_request_past_its_deadline_is_answered_with_deadline_exceeded() -> None:
    runner = FakeRunner()
    runner.gate.clear()
    observer = RecordingObserver()
    batcher = await started(runner, limits(max_batch_size=1, max_delay_ms=0), observer)
    blocker = asyncio.ensure_future(batcher.submit(item("blocker"), 5.0))
    await asyncio.sleep(0.05)
    with pytest.raises(DeadlineExceeded):
        await batcher.submit(item("late"), 0.05)
    runner.gate.set()
    await asyncio.wait_for(blocker, timeout=3.0)
    await asyncio.sleep(0.05)
    assert "late" not in [name for batch in runner.batches for name in batch]
    await batcher.close()


async def test_items_of_a_client_that_went_away_are_dropped() -> None:
    runner = FakeRunner()
    runner.gate.clear()
    observer = RecordingObserver()
    batcher = await started(runner, limits(max_batch_size=1, max_delay_ms=0), observer)
    blocker = asyncio.ensure_future(batcher.submit(item("blocker"), 5.0))
    await asyncio.sleep(0.05)
    gone = asyncio.ensure_future(batcher.submit([(("gone", 3), 3)] * 3, 5.0))
    await asyncio.sleep(0.01)
    gone.cancel()
    runner.gate.set()
    await asyncio.wait_for(blocker, timeout=3.0)
    await asyncio.sleep(0.05)
    assert runner.batches == [["blocker"]]
    assert sum(d.count for d in observer.drops if d.reason == "client_gone") == 3
    await batcher.close()


async def test_a_runner_failure_reaches_every_item_of_the_batch() -> None:
    runner = FakeRunner(fail=True)
    batcher = await started(runner, limits(max_batch_size=2, max_delay_ms=1))
    results = await asyncio.gather(
        batcher.submit(item("a"), 5.0), batcher.submit(item("b"), 5.0), return_exceptions=True
    )
    assert all(isinstance(r, BatchFailed) for r in results), results
    runner.fail = False
    done = await asyncio.wait_for(batcher.submit(item("c"), 5.0), timeout=3.0)
    assert done.outputs == ["out-c"]
    await batcher.close()


async def test_draining_refuses_new_work_but_finishes_accepted_work() -> None:
    runner = FakeRunner()
    runner.gate.clear()
    batcher = await started(runner, limits(max_batch_size=1, max_delay_ms=0))
    accepted = [asyncio.ensure_future(batcher.submit(item(f"a{i}"), 5.0)) for i in range(3)]
    await asyncio.sleep(0.05)
    batcher.stop_accepting()
    with pytest.raises(BatcherClosed):
        await batcher.submit(item("late"), 5.0)
    runner.gate.set()
    assert await batcher.wait_idle(3.0)
    assert [r.outputs for r in await asyncio.gather(*accepted)] == [["out-a0"], ["out-a1"], ["out-a2"]]
    await batcher.close()


async def test_the_observer_sees_sizes_padding_and_queue_waits() -> None:
    runner = FakeRunner()
    observer = RecordingObserver()
    batcher = await started(runner, limits(max_batch_size=2, max_padding_ratio=1.0), observer)
    await asyncio.wait_for(
        asyncio.gather(batcher.submit(item("a", 10), 5.0), batcher.submit(item("b", 20), 5.0)), timeout=3.0
    )
    (report,) = observer.batches
    assert (report.size, report.real_tokens, report.padded_tokens) == (2, 30, 40)
    assert len(report.queue_waits) == 2 and all(w >= 0 for w in report.queue_waits)
    assert observer.depths[-1] == 0
    await batcher.close()


def test_window_stops_before_padding_gets_too_high() -> None:
    lengths = [10, 11, 12, 40, 41]
    assert choose_window(lengths, anchor=0, max_size=8, max_tokens=10_000, max_padding=0.25) == (0, 2)
    assert choose_window(lengths, anchor=4, max_size=8, max_tokens=10_000, max_padding=0.2) == (3, 4)
    assert choose_window(lengths, anchor=0, max_size=8, max_tokens=10_000, max_padding=1.0) == (0, 4)


async def test_always_wait_keeps_a_lone_item_for_the_delay() -> None:
    runner = FakeRunner()
    batcher = await started(runner, limits(max_batch_size=64, max_delay_ms=60, always_wait=True))
    begin = time.monotonic()
    done = await asyncio.wait_for(batcher.submit(item("a"), 5.0), timeout=3.0)
    assert done.outputs == ["out-a"]
    assert time.monotonic() - begin >= 0.05
    await batcher.close()


@dataclass
class SharedEngineRunner(FakeRunner):
    """A runner whose engine another model holds (a full shared run gate) until released."""

    held: bool = True

    def saturated(self) -> bool:
        return self.held


async def test_a_lone_item_waits_while_the_shared_engine_is_saturated() -> None:
    runner = SharedEngineRunner()
    batcher = await started(runner, limits(max_batch_size=8, max_delay_ms=100))
    first = asyncio.ensure_future(batcher.submit(item("a"), 5.0))
    await asyncio.sleep(0.03)
    second = asyncio.ensure_future(batcher.submit(item("b"), 5.0))
    await asyncio.wait_for(asyncio.gather(first, second), timeout=3.0)
    assert runner.batches == [["a", "b"]]  # the batch could not have started: it waited for "b"
    await batcher.close()


@dataclass
class TurnTakingRunner(FakeRunner):
    """A runner whose turn (a run gate shared with other models) comes only when released."""

    turn_free: threading.Event = field(default_factory=threading.Event)
    turns: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        self.turn_free.wait(5)
        self.turns.append("in")
        yield
        self.turns.append("out")


async def test_waiting_for_the_turn_is_queueing_not_running() -> None:
    """The wait for a shared gate counts as the items' queue wait; the run is timed alone."""
    runner, observer = TurnTakingRunner(), RecordingObserver()
    batcher = await started(runner, limits(max_batch_size=1, max_delay_ms=0), observer)
    waiting = asyncio.ensure_future(batcher.submit(item("a"), 5.0))
    await asyncio.sleep(0.3)
    assert not waiting.done() and runner.batches == []
    runner.turn_free.set()
    done = await asyncio.wait_for(waiting, timeout=3.0)
    assert done.outputs == ["out-a"] and runner.turns == ["in", "out"]
    [report] = observer.batches
    assert report.queue_waits[0] >= 0.25 and report.run_seconds < 0.1, report
    assert done.queue_seconds >= 0.25 and done.inference_seconds < 0.1, done
    await batcher.close()


async def test_a_batch_whose_clients_left_while_it_waited_for_its_turn_is_not_run() -> None:
    runner, observer = TurnTakingRunner(), RecordingObserver()
    batcher = await started(runner, limits(max_batch_size=1, max_delay_ms=0), observer)
    waiting = asyncio.ensure_future(batcher.submit(item("a"), 5.0))
    await asyncio.sleep(0.2)  # handed to the runner thread, which waits for its turn
    waiting.cancel()
    await asyncio.sleep(0.05)
    runner.turn_free.set()
    await asyncio.sleep(0.2)
    assert runner.turns == ["in", "out"] and runner.batches == []  # the turn came, nothing ran
    assert sum(drop.count for drop in observer.drops) == 1, observer.drops
    await batcher.close()
