"""The event loop's lag: how much later than asked a short sleep wakes. Everything on the loop (HTTP,
parsing, refusing, health probes) waits as long, so it shows a loop blocked by one costly request."""

from __future__ import annotations

import asyncio

from prometheus_client import Histogram


async def watch_loop_lag(lag: Histogram, interval_s: float) -> None:
    """Sleep `interval_s` again and again, and record how late each wake-up came; runs until cancelled
    (at once returns for an interval of 0: lag is not measured)."""
    if interval_s <= 0:
        return
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        lag.observe(max(0.0, loop.time() - due))
