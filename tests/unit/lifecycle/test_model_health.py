"""Readiness follows failure: failed batches in a row fail a model, its queue fails fast, and the
backoff between tries to re-open its session; on a real batcher with fake runners."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import pytest

from app.batching import BatchFailed, DynamicBatcher
from app.errors import ModelNotReady
from app.faults import FaultSpec, FaultyRunner, InjectedFault, rewrapped
from app.lifecycle.loading import Backoff, RunGate, start_reload
from app.lifecycle.observer import MetricsObserver
from app.lifecycle.registry import ModelRegistry, ModelSlot
from app.metrics import Metrics
from app.settings import Settings
from tests.unit.batching.test_batching import FakeBatch, FakeRunner, item, limits


@dataclass
class ScriptedRunner(FakeRunner):
    """Fails the batches whose first payload name starts with "bad"."""

    def run(self, batch: FakeBatch) -> list[str]:  # type: ignore[override]
        outputs = super().run(batch)
        if batch.payloads[0][0].startswith("bad"):
            raise RuntimeError("session broken")
        return outputs


@dataclass
class Served:
    registry: ModelRegistry
    slot: ModelSlot
    batcher: DynamicBatcher[tuple[str, int], str]
    reloads: list[str] = field(default_factory=list)

    async def send(self, name: str) -> str:
        """One request's outcome: its output, or the kind of error it got."""
        try:
            done = await self.batcher.submit(item(name), 5.0)
        except BatchFailed:
            return "failed"
        except ModelNotReady as error:
            return f"not ready (retry after {error.retry_after})"
        return str(done.outputs[0])


async def serve(runner: FakeRunner, failures: int, **lim: float) -> Served:
    """A ready model slot whose batcher reports to the registry as the server's does."""
    registry = ModelRegistry(Settings(max_consecutive_failures=failures, retry_after_s=1), Metrics())
    slot = ModelSlot("m", state="ready")
    registry.slots["m"] = slot
    registry.loaded = True
    observer = MetricsObserver(registry.metrics, "m", health=registry.health(slot))
    batcher: DynamicBatcher[tuple[str, int], str] = DynamicBatcher(
        "m", runner, limits(**{"max_batch_size": 1, "max_delay_ms": 0, **lim}), observer=observer
    )
    slot.batcher = batcher  # type: ignore[assignment]
    served = Served(registry, slot, batcher)

    def start_reload(failed: ModelSlot) -> asyncio.Task[None]:
        served.reloads.append(failed.name)
        return asyncio.create_task(asyncio.sleep(0))

    registry.start_reload = start_reload
    batcher.start()
    return served


async def test_failures_in_a_row_fail_the_model_and_start_one_reload() -> None:
    served = await serve(ScriptedRunner(), failures=3)
    outcomes = [await served.send(name) for name in ["bad1", "bad2", "ok", "bad3", "bad4"]]
    assert outcomes == ["failed", "failed", "out-ok", "failed", "failed"]
    assert served.slot.state == "ready" and served.registry.ready  # a batch that ran reset the count
    assert await served.send("bad5") == "failed"
    assert served.slot.state == "failed" and not served.registry.ready
    assert served.slot.error is not None and "3 batches in a row failed" in served.slot.error
    assert "RuntimeError: session broken" in served.slot.error
    assert served.registry.readiness()["errors"]["m"] == served.slot.error
    assert served.registry.metrics.registry.get_sample_value("bertserve_model_ready", {"model": "m"}) == 0
    assert served.reloads == ["m"]
    assert await served.send("ok") == "not ready (retry after 1)"
    await served.batcher.close()


async def test_alternating_failures_never_fail_the_model() -> None:
    served = await serve(ScriptedRunner(), failures=2)
    for index in range(10):
        await served.send(f"bad{index}")
        assert await served.send(f"ok{index}") == f"out-ok{index}"
    assert served.slot.state == "ready" and served.reloads == []
    await served.batcher.close()


async def test_zero_never_fails_the_model() -> None:
    served = await serve(ScriptedRunner(), failures=0)
    assert [await served.send(f"bad{i}") for i in range(20)] == ["failed"] * 20
    assert served.slot.state == "ready" and served.reloads == []
    await served.batcher.close()


async def test_a_failed_model_fails_its_queued_items_at_once_and_serves_again_after_reload() -> None:
    runner = ScriptedRunner()
    served = await serve(runner, failures=1)
    runner.gate.clear()  # hold the runner: the next requests queue behind the running batch
    running = asyncio.ensure_future(served.send("bad-running"))
    while not runner.events or runner.events[-1] != "run 1 start":
        await asyncio.sleep(0.001)
    queued = [asyncio.ensure_future(served.send(f"bad-queued{i}")) for i in range(4)]
    await asyncio.sleep(0.01)
    runner.gate.set()
    assert await running == "failed"
    # The queued requests do not wait for a runner known to fail: they are refused with the failure.
    # The oldest was padded already, handed to the runner thread, which may have started it.
    outcomes = await asyncio.gather(*queued)
    assert outcomes[0] in {"failed", "not ready (retry after 1)"}
    assert outcomes[1:] == ["not ready (retry after 1)"] * 3
    assert len(runner.batches) <= 2
    served.registry.health(served.slot).batch_ran()  # a reload succeeded (the slot's path, by hand)
    served.slot.state, served.slot.error = "ready", None
    served.batcher.suspend(None)
    assert await served.send("after") == "out-after"
    await served.batcher.close()


async def test_a_new_runner_takes_over_from_the_next_batch() -> None:
    old, new = ScriptedRunner(), FakeRunner()
    served = await serve(old, failures=0)
    assert await served.send("bad") == "failed"
    served.batcher.use_runner(lambda current: rewrapped(current, new))
    assert await served.send("bad-again") == "out-bad-again"
    assert new.batches == [["bad-again"]]
    await served.batcher.close()


def test_the_faults_carry_their_count_across_a_reopened_session() -> None:
    spec = FaultSpec(fail_runs=2)
    faulty = FaultyRunner(FakeRunner(), spec)
    with pytest.raises(InjectedFault):
        faulty.run(FakeBatch([("a", 1)]))
    reopened = rewrapped(faulty, FakeRunner())
    assert isinstance(reopened, FaultyRunner) and reopened is not faulty
    with pytest.raises(InjectedFault):
        reopened.run(FakeBatch([("b", 1)]))
    assert reopened.run(FakeBatch([("c", 1)])) == ["out-c"]


def test_the_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(1.0, 60.0)
    assert [backoff.delay(tries) for tries in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay(10_000) == 60.0


async def test_the_backoff_keeps_growing_until_a_batch_runs_again() -> None:
    """A session that re-opens fine but fails its batches again is re-opened later each time, not
    every first step; a batch that runs starts the backoff over."""
    served = await serve(ScriptedRunner(), failures=1)
    gate = RunGate(served.registry.settings)
    backoff = Backoff(1.0, 60.0)
    waits = []
    for tries in range(3):
        served.slot.reload_tries = tries  # as reload_until_ready counts the re-opens
        before = time.monotonic()
        start_reload(served.registry, served.slot, gate, backoff).cancel()
        waits.append(round(served.slot.next_reload - before))
    assert waits == [1, 2, 4]
    served.registry.health(served.slot).batch_ran()
    assert served.slot.reload_tries == 0
    await asyncio.sleep(0)
    await served.batcher.close()


def test_threads_are_not_left_running() -> None:
    assert not [t for t in threading.enumerate() if t.name.startswith("run-m-")]
