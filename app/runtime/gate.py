"""One gate for every model's runs: on CPU, models that share the cores take turns.

Each ONNX Runtime session has its own intra-op threads. Four models running at once with two
threads each on two cores means eight busy threads, each run four times slower, and the event
loop (HTTP, tokenizing, refusing) starved. The gate lets at most `permits` runs proceed at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_permits(intra_op_threads: int) -> int:
    """Runs that fit the cores at once: cores // threads per run (at least one)."""
    cores = usable_cores()
    per_run = intra_op_threads or cores
    return max(1, cores // per_run)


class GatedRunner:
    """Delegates to a runner; `run` holds one of the shared permits while it runs."""

    def __init__(self, runner: Any, gate: threading.Semaphore) -> None:
        self._runner = runner
        self._gate = gate

    def pad(self, payloads: Sequence[Any]) -> Any:
        return self._runner.pad(payloads)

    def saturated(self) -> bool:
        """Every permit is held (another model is running): a batch formed now would wait anyway."""
        if self._gate.acquire(blocking=False):
            self._gate.release()
            return False
        return True

    def run(self, batch: Any) -> Sequence[Any]:
        with self._gate:
            result: Sequence[Any] = self._runner.run(batch)
            return result
