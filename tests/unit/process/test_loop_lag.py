"""The event-loop lag monitor records how late the loop woke: a loop blocked on purpose shows."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Histogram

from app.metrics import LATENCY_BUCKETS
from app.process.loop_lag import watch_loop_lag


def lag_histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("lag_seconds", "lag", buckets=LATENCY_BUCKETS, registry=registry)


def late_wakeups(registry: CollectorRegistry, over: str) -> float:
    """Wake-ups later than `over` seconds (a bucket bound)."""
    count = registry.get_sample_value("lag_seconds_count") or 0.0
    return count - (registry.get_sample_value("lag_seconds_bucket", {"le": over}) or 0.0)


async def test_a_blocked_loop_is_recorded_as_lag() -> None:
    registry, lag = lag_histogram()
    watching = asyncio.create_task(watch_loop_lag(lag, 0.01))
    await asyncio.sleep(0.05)
    time.sleep(0.4)  # blocks the event loop, as a costly request handled on it would
    await asyncio.sleep(0.05)
    watching.cancel()
    assert late_wakeups(registry, "0.25") >= 1
    assert (registry.get_sample_value("lag_seconds_sum") or 0.0) >= 0.3


async def test_an_interval_of_zero_measures_nothing() -> None:
    registry, lag = lag_histogram()
    await asyncio.wait_for(watch_loop_lag(lag, 0.0), timeout=1)
    assert registry.get_sample_value("lag_seconds_count") == 0
