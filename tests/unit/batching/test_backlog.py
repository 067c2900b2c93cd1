"""The shared backlog's wait estimate, on hand-made work."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from app.batching import Backlog, DynamicBatcher
from app.errors import QueueFull
from tests.unit.batching.test_batching import FakeRunner, item, limits


@dataclass
class Work:
    seconds: float
    parallel_runs: int = 1

    def work_seconds(self) -> float:
        return self.seconds


def backlog_of(permits: int, *sources: Work) -> Backlog:
    backlog = Backlog(permits)
    for source in sources:
        backlog.join(source)
    return backlog


def test_a_model_alone_waits_for_its_own_work_over_its_runs() -> None:
    alone = Work(3.0, parallel_runs=2)
    assert backlog_of(2, alone).wait_seconds(alone) == pytest.approx(1.5)
    assert backlog_of(2, alone).wait_seconds(alone, 1.0) == pytest.approx(2.0)


def test_models_with_equal_work_share_the_permits() -> None:
    models = [Work(1.0) for _ in range(4)]
    assert backlog_of(2, *models).wait_seconds(models[0]) == pytest.approx(2.0)  # 4 s over 2 runs


def test_a_flood_on_one_model_does_not_hold_a_quiet_one() -> None:
    flooded, quiet, idle = Work(4.0), Work(0.1), Work(0.0)
    backlog = backlog_of(2, flooded, quiet, idle)
    assert backlog.wait_seconds(quiet) == pytest.approx(0.1)  # 0.1 of each, over two runs, >= its own
    assert backlog.wait_seconds(idle, 0.05) == pytest.approx(0.075)  # three busy on two runs


def test_a_model_that_runs_one_batch_at_a_time_cannot_use_both_permits() -> None:
    flooded, quiet = Work(4.0), Work(0.1)
    assert backlog_of(2, flooded, quiet).wait_seconds(flooded) == pytest.approx(4.0)


def test_unmeasured_work_waits_for_nothing() -> None:
    unmeasured = Work(0.0)
    assert backlog_of(1, unmeasured, Work(5.0)).wait_seconds(unmeasured) == 0.0


def test_a_backlog_needs_a_run() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Backlog(0)


async def test_a_model_is_refused_for_the_work_queued_on_the_model_it_shares_the_cores_with() -> None:
    """Two models on one run at a time: each sees the other's queue the moment it fills."""
    shared = Backlog(1)
    lim = limits(max_queue_wait_s=1.0, max_delay_ms=0, max_batch_size=1)
    runners = {name: FakeRunner() for name in ("a", "b")}
    batchers: dict[str, DynamicBatcher[tuple[str, int], str]] = {
        name: DynamicBatcher(name, runner, lim, backlog=shared) for name, runner in runners.items()
    }
    for batcher in batchers.values():
        batcher.start()
        batcher.tokens_per_second = 100.0
        runner = runners[batcher.name]
        runner.gate.clear()
    held = [
        asyncio.ensure_future(batchers[name].submit(item(f"{name}{i}", 20), 10.0))
        for name in "ab"
        for i in range(2)
    ]
    await asyncio.sleep(0.05)
    # a: 0.4 s queued; b: 0.4 s; one run at a time: a new 30-token item on a waits 0.7 + 0.4
    assert batchers["a"].expected_wait(30) == pytest.approx(1.1)
    with pytest.raises(QueueFull, match="s of queued work"):
        await batchers["a"].submit(item("late", 30), 5.0)
    assert batchers["a"].expected_wait(10) == pytest.approx(0.9)
    for runner in runners.values():
        runner.gate.set()
    await asyncio.wait_for(asyncio.gather(*held), timeout=3.0)
    for batcher in batchers.values():
        await batcher.close()


async def test_requests_still_tokenizing_count_as_queued_work() -> None:
    """A burst whose requests all tokenize at once is admitted as the queue can take it: each
    reservation counts until its request queues its items (or fails), then it is gone. A guess
    counts for at most half the wait limit, so one request alone never refuses the others."""
    batcher: DynamicBatcher[tuple[str, int], str] = DynamicBatcher(
        "m", FakeRunner(), limits(max_queue_wait_s=1.0)
    )
    batcher.tokens_per_second = 100.0
    with batcher.reserve(800):  # nothing ahead: admitted however big; counted as 50 tokens
        assert batcher.expected_wait() == pytest.approx(0.5)
        with batcher.reserve(30):
            assert batcher.expected_wait() == pytest.approx(0.8)
            with pytest.raises(QueueFull, match="s of queued work"):
                batcher.reserve(30)  # 0.8 s tokenizing ahead + 0.3 s of its own > 1 s
    assert batcher.expected_wait() == 0.0
    with batcher.reserve(90):
        pass


async def test_a_stopped_model_leaves_the_backlog_it_shared() -> None:
    """An unloaded or swapped-out model's queue is no longer counted (nor kept alive) by the backlog."""
    shared = Backlog(1)
    stopped = DynamicBatcher("old", FakeRunner(), limits(), backlog=shared)
    DynamicBatcher("new", FakeRunner(), limits(), backlog=shared)
    stopped.start()
    await stopped.close()
    assert len(shared._sources) == 1
