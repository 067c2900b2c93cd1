"""The CPU run gate: at most `permits` runs at once, served first come, first served."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from app.runtime.gate import FairGate, GatedRunner


def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


def test_a_released_permit_goes_to_the_waiter_not_back_to_the_releaser() -> None:
    """With threading.Semaphore the releasing thread, still running, takes the permit back."""
    gate = FairGate(1)
    order: list[str] = []
    gate.acquire()
    waiter = threading.Thread(target=lambda: (gate.acquire(), order.append("waiter"), gate.release()))
    waiter.start()
    wait_for(lambda: gate.waiting() == 1)
    gate.release()
    gate.acquire()  # at once, as a runner thread with its next batch does
    order.append("releaser")
    gate.release()
    waiter.join(5)
    assert order == ["waiter", "releaser"]


def test_waiters_are_served_in_the_order_they_came() -> None:
    gate = FairGate(1)
    order: list[int] = []
    gate.acquire()
    threads = []
    for index in range(4):
        thread = threading.Thread(target=lambda i=index: (gate.acquire(), order.append(i), gate.release()))
        thread.start()
        threads.append(thread)
        wait_for(lambda n=index + 1: gate.waiting() == n)
    gate.release()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3]


def test_permits_are_counted() -> None:
    gate = FairGate(2)
    gate.acquire()
    assert not gate.saturated()
    gate.acquire()
    assert gate.saturated()
    gate.release()
    gate.release()
    assert not gate.saturated()
    with pytest.raises(ValueError, match="more often"):
        gate.release()
    with pytest.raises(ValueError, match="at least one"):
        FairGate(0)


class HeldRunner:
    """Runs a batch while the test holds it; records whether the gate was held meanwhile."""

    def __init__(self, gate: FairGate) -> None:
        self.gate = gate
        self.running = threading.Event()
        self.finish = threading.Event()

    def pad(self, payloads: Sequence[int]) -> list[int]:
        return list(payloads)

    def run(self, batch: list[int]) -> list[int]:
        self.running.set()
        self.finish.wait(5)
        return [value * 2 for value in batch]


def test_a_gated_runners_turn_is_a_permit_held_while_it_runs() -> None:
    gate = FairGate(1)
    inner = HeldRunner(gate)
    runner = GatedRunner(inner, gate)
    result: list[int] = []

    def run_in_turn() -> None:
        with runner.turn():
            result.extend(runner.run(runner.pad([1, 2])))

    thread = threading.Thread(target=run_in_turn)
    thread.start()
    inner.running.wait(5)
    assert runner.saturated()
    inner.finish.set()
    thread.join(5)
    assert result == [2, 4] and not runner.saturated()
