"""How many inference requests may be in progress at once: a fixed cap, lowered to what the server
answers in a few seconds (Little's law) while it answers slowly.

Refusing at this door is the cheapest refusal there is (no body read, no JSON parsed), and it keeps
the requests that do get in from waiting behind more work than the server can do in that time.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable

from prometheus_client import Gauge


class InflightLimit:
    """The cap, or `answered per second x horizon_s` when that is lower (never below `floor`)."""

    def __init__(
        self,
        cap: int,
        horizon_s: float,
        *,
        floor: int = 128,
        window_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cap = cap
        self.horizon_s = horizon_s
        self.floor = floor
        self.window_s = window_s
        self._clock = clock
        self._answered: collections.deque[float] = collections.deque()

    def answered(self) -> None:
        """One inference request was answered (not refused)."""
        self._answered.append(self._clock())

    def limit(self) -> int:
        if self.horizon_s <= 0:
            return self.cap
        now = self._clock()
        while self._answered and self._answered[0] < now - self.window_s:
            self._answered.popleft()
        rate = len(self._answered) / self.window_s
        return min(self.cap, max(self.floor, math.ceil(rate * self.horizon_s)))


class InflightPlaces:
    """The requests in progress against the limit: a request takes a place once its body is in and
    gives it back when it ends or, sooner, when its client leaves."""

    def __init__(self, limit: InflightLimit, gauge: Gauge) -> None:
        self.limit = limit
        self.gauge = gauge
        self.count = 0

    async def refusal(self) -> str | None:
        """Why a new request cannot start now (None: it can), once the loop has handed out the
        disconnects the server already read: a departed client's place is freed a loop turn after
        the server reads the close, so a request read in the same turn waits for it."""
        for _ in range(DEPARTURE_TURNS):
            if self.count < self.limit.limit():
                return None
            await asyncio.sleep(0)
        if self.count >= (limit := self.limit.limit()):
            return f"{self.count} requests in progress; the limit is {limit} now"
        return None

    def take(self) -> Callable[[], None]:
        """Count one request in progress; the returned call gives the place back (only once)."""
        self.count += 1
        self.gauge.inc()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.count -= 1
                self.gauge.dec()

        return release


DEPARTURE_TURNS = 2
"""Loop turns a request at the limit yields before its refusal: the close is read in one turn and
reaches its watcher in the next, and a request read in the same turn may run before either."""
