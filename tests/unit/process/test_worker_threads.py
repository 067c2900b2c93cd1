"""The event loop's worker threads: a fixed count, all running from the start."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

from app.process.worker_threads import default_count, started_executor, use_worker_threads
from tools.bench.stress.probe import thread_names


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("bertserve-worker")]


def test_every_thread_runs_before_the_pool_is_handed_out() -> None:
    executor = started_executor(5)
    try:
        assert len(_workers()) == 5
        if sys.platform.startswith("linux"):  # named for the OS too, as top -H and /proc show them
            names = thread_names(os.getpid())
            assert sorted(n for n in names if n.startswith("worker-")) == [f"worker-{i}" for i in range(5)]
    finally:
        executor.shutdown(wait=True)
    assert _workers() == []


def test_a_burst_of_blocking_calls_never_adds_a_thread() -> None:
    async def burst() -> list[int]:
        executor = use_worker_threads(asyncio.get_running_loop(), 3)
        counts: list[int] = []

        def block() -> None:
            time.sleep(0.02)
            counts.append(len(_workers()))

        try:
            await asyncio.gather(*(asyncio.to_thread(block) for _ in range(40)))
        finally:
            executor.shutdown(wait=True)
        return counts

    counts = asyncio.run(burst())
    assert len(counts) == 40 and set(counts) == {3}


def test_the_default_count_follows_the_cores() -> None:
    assert 5 <= default_count() <= 32
