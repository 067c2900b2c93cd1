"""A failure fails only its own batch; a dead loop or runner thread is reported and restarted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from app.batching import BatchFailed, DynamicBatcher, NeverFits
from app.errors import DeadlineExceeded, QueueFull
from tests.unit.batching.test_batching import FakeBatch, FakeRunner, RecordingObserver, item, limits


@dataclass
class FlakyRunner(FakeRunner):
    """Fails the batches whose first payload name is listed, in pad or in run."""

    bad_pad: set[str] = field(default_factory=set)
    bad_run: set[str] = field(default_factory=set)
    run_error: type[BaseException] = RuntimeError
    short_output: set[str] = field(default_factory=set)

    def pad(self, payloads: Sequence[tuple[str, int]]) -> FakeBatch:
        if payloads[0][0] in self.bad_pad:
            raise ValueError("cannot pad")
        return super().pad(payloads)

    def run(self, batch: FakeBatch) -> list[str]:  # type: ignore[override]
        first = batch.payloads[0][0]
        if first in self.bad_run:
            raise self.run_error("cannot run")
        outputs = super().run(batch)
        return outputs[:-1] if first in self.short_output else outputs


async def make(runner: FakeRunner, observer: RecordingObserver | None = None, **lim: float):
    batcher: DynamicBatcher[tuple[str, int], str] = DynamicBatcher(
        "m",
        runner,
        limits(**{"max_batch_size": 1, "max_delay_ms": 0, **lim}),
        observer=observer,
        restart_backoff_s=(0.01, 0.05),
    )
    batcher.start()
    return batcher


class Fatal(BaseException):
    """Not an Exception: what used to end a runner thread."""


@pytest.mark.parametrize(
    "runner",
    [
        FlakyRunner(bad_pad={"bad"}),
        FlakyRunner(bad_run={"bad"}),
        FlakyRunner(bad_run={"bad"}, run_error=Fatal),
        FlakyRunner(short_output={"bad"}),
    ],
    ids=["pad-raises", "run-raises", "run-raises-base-exception", "wrong-output-count"],
)
async def test_a_failing_batch_fails_only_its_items_and_the_model_goes_on(runner: FlakyRunner) -> None:
    observer = RecordingObserver()
    batcher = await make(runner, observer)
    bad, good = await asyncio.wait_for(
        asyncio.gather(
            batcher.submit(item("bad"), 5.0), batcher.submit(item("good"), 5.0), return_exceptions=True
        ),
        timeout=3.0,
    )
    assert isinstance(bad, BatchFailed), bad
    assert not isinstance(good, BaseException) and good.outputs == ["out-good"]
    after = await asyncio.wait_for(batcher.submit(item("later"), 5.0), timeout=3.0)
    assert after.outputs == ["out-later"]
    assert observer.failed == [1]
    assert observer.health == []  # nothing died
    await batcher.close()


async def test_a_request_that_can_never_fit_is_refused_as_such() -> None:
    batcher = await make(FakeRunner(), max_queue_items=3)
    with pytest.raises(NeverFits) as refused:
        await batcher.submit([(("x", 10), 10)] * 4, 5.0)
    assert (refused.value.needed, refused.value.limit) == (4, 3)
    await batcher.close()


async def test_items_dropped_at_their_deadline_are_reported_as_deadline_not_client_gone() -> None:
    runner = FakeRunner()
    runner.gate.clear()
    observer = RecordingObserver()
    batcher = await make(runner, observer)
    blocker = asyncio.ensure_future(batcher.submit(item("blocker"), 5.0))
    await asyncio.sleep(0.05)
    with pytest.raises(DeadlineExceeded):
        await batcher.submit([(("late", 10), 10)] * 2, 0.05)
    runner.gate.set()
    await asyncio.wait_for(blocker, timeout=3.0)
    await asyncio.sleep(0.05)
    reasons = {d.reason for d in observer.drops}
    assert reasons == {"deadline"}, observer.drops
    assert sum(d.count for d in observer.drops) == 2
    await batcher.close()


def crash_once(owner: object, method: str, error: BaseException) -> None:
    """Make `owner.method` raise `error` on its first call, then behave."""
    original = getattr(owner, method)
    crashes_left = [1]

    def crashing(*args: object) -> object:
        if crashes_left[0]:
            crashes_left[0] -= 1
            raise error
        return original(*args)

    setattr(owner, method, crashing)


@pytest.mark.parametrize("component", ["loop", "runner-0"])
async def test_a_dead_component_is_reported_and_restarted(component: str) -> None:
    observer = RecordingObserver()
    batcher: DynamicBatcher[tuple[str, int], str] = DynamicBatcher(
        "m",
        FakeRunner(),
        limits(max_batch_size=1, max_delay_ms=0),
        observer=observer,
        restart_backoff_s=(0.05, 0.1),
    )
    if component == "loop":  # the loop dies once, outside any batch's guard (a bug in forming a batch)
        crash_once(batcher._queue, "take_batch", KeyError("bug in the batch loop"))
    else:  # the runner thread dies once, outside the run guard, holding a batch
        crash_once(batcher._scheduler.pool, "_run_one", Fatal("runner thread bug"))
    batcher.start()
    first = await asyncio.gather(batcher.submit(item("first"), 2.0), return_exceptions=True)
    # the loop's crash leaves the item queued (served after the restart); the thread's fails its batch
    assert isinstance(first[0], BatchFailed) or first[0].outputs == ["out-first"], first
    again = await asyncio.wait_for(batcher.submit(item("again"), 5.0), timeout=3.0)
    assert again.outputs == ["out-again"]
    assert observer.health[0].startswith(f"crash {component}: ")
    assert observer.health[1] == f"recovered {component}"
    assert batcher.restarts == 1
    await batcher.close()


async def test_requests_are_refused_while_the_queued_work_would_outlast_the_wait_limit() -> None:
    runner = FakeRunner()
    batcher = await make(runner, max_queue_wait_s=1.5, max_delay_ms=0)
    await asyncio.wait_for(batcher.submit(item("measure", 100), 5.0), timeout=3.0)
    assert batcher.tokens_per_second > 0  # measured from the batch that ran
    runner.gate.clear()
    batcher.tokens_per_second = 100.0  # a slow model: 100 padded tokens a second
    held = [asyncio.ensure_future(batcher.submit(item(f"h{i}", 30), 10.0)) for i in range(3)]
    await asyncio.sleep(0.05)  # one runs (held at the gate), one waits in the hand-off, one is queued
    assert batcher.expected_wait() == pytest.approx(0.9)  # all three are ahead of a new item
    with pytest.raises(QueueFull, match="s of queued work"):
        await batcher.submit(item("late", 100), 5.0)  # 0.9 s + 1.0 s > 1.5 s
    small = asyncio.ensure_future(batcher.submit(item("small", 10), 5.0))  # 1.0 s: admitted
    runner.gate.set()
    await asyncio.wait_for(asyncio.gather(*held, small), timeout=3.0)
    assert batcher.expected_wait() == 0.0  # nothing ahead any more
    await batcher.close()
