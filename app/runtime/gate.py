"""One gate for every model's runs: on CPU, models that share the cores take turns.

Each ONNX Runtime session has its own intra-op threads: several models running at once would
oversubscribe the cores, slow every run and starve the event loop (HTTP, tokenizing, refusing).
The gate lets at most `permits` runs proceed at once, in the order they asked.

The order matters: a runner thread that finishes a run asks again at once, still holding the GIL,
before the thread it woke is scheduled, so a plain semaphore lets one model keep the cores while
the others' queues age. `FairGate` hands a released permit straight to the longest waiter.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Any


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_permits(intra_op_threads: int) -> int:
    """Runs that fit the cores at once: cores // threads per run (at least one)."""
    cores = usable_cores()
    per_run = intra_op_threads or cores
    return max(1, cores // per_run)


class FairGate:
    """A counting semaphore that serves waiters first come, first served: `release` passes the
    permit to the longest waiter directly, so nobody can take it in between."""

    def __init__(self, permits: int) -> None:
        if permits < 1:
            raise ValueError(f"a gate needs at least one permit, not {permits}")
        self.permits = permits
        self._lock = threading.Lock()
        self._free = permits
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by `release`, which gave this thread the permit

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()
            elif self._free < self.permits:
                self._free += 1
            else:
                raise ValueError("FairGate released more often than acquired")

    def saturated(self) -> bool:
        """Every permit is held: whoever asks now waits."""
        with self._lock:
            return self._free == 0

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiters)

    def __enter__(self) -> FairGate:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


class GatedRunner:
    """Delegates to a runner; its `turn()` is one of the shared permits, which the runner thread
    holds around `run` (so the wait for it is queueing, and `run` is timed alone)."""

    def __init__(self, runner: Any, gate: FairGate) -> None:
        self._runner = runner
        self._gate = gate

    def pad(self, payloads: Sequence[Any]) -> Any:
        return self._runner.pad(payloads)

    def saturated(self) -> bool:
        """Every permit is held (another model is running): a batch formed now would wait anyway."""
        return self._gate.saturated()

    def turn(self) -> FairGate:
        return self._gate

    def run(self, batch: Any) -> Sequence[Any]:
        """Run the batch; the caller holds `turn()` around it."""
        result: Sequence[Any] = self._runner.run(batch)
        return result
