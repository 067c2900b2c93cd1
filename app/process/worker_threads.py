"""The event loop's worker threads (tokenizing long texts, QA post-processing, the heap trim): a fixed
number, all started up front, so the server's thread count stays flat under any load.

Python's default executor starts a thread only when none is idle, up to min(32, cores + 4), so its
count grows with every burst that finds every thread busy.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from app.process.thread_names import name_this_os_thread
from app.runtime.gate import usable_cores

START_TIMEOUT_S = 10.0


def default_count() -> int:
    """As Python's default executor's ceiling: cores + 4, at most 32."""
    return min(32, usable_cores() + 4)


def started_executor(count: int) -> ThreadPoolExecutor:
    """A pool of exactly `count` threads, every one of them running before this returns."""
    executor = ThreadPoolExecutor(
        max_workers=count, thread_name_prefix="bertserve-worker", initializer=_name_os_thread
    )
    # The pool starts a thread for each task that finds none idle: `count` tasks that wait for each
    # other occupy `count` threads at once.
    everyone = threading.Barrier(count)
    for started in [executor.submit(everyone.wait, START_TIMEOUT_S) for _ in range(count)]:
        started.result()
    return executor


def _name_os_thread() -> None:
    """The OS name `worker-N` (Python's `bertserve-worker_N` is longer than Linux keeps)."""
    name_this_os_thread(f"worker-{threading.current_thread().name.rpartition('_')[2]}")


def use_worker_threads(loop: asyncio.AbstractEventLoop, count: int = 0) -> ThreadPoolExecutor:
    """Make a started pool of `count` threads (0 = default_count()) the loop's default executor,
    which `asyncio.to_thread` uses; the caller shuts it down."""
    executor = started_executor(count or default_count())
    loop.set_default_executor(executor)
    return executor
