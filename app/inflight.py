"""How many inference requests may be in progress at once: a fixed cap, lowered to what the server
answers in a few seconds (Little's law) while it answers slowly.

Refusing at this door is the cheapest refusal there is (no body read, no JSON parsed), and it keeps
the requests that do get in from waiting behind more work than the server can do in that time.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable


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
