"""Supervision: a crashed batching loop or runner thread is reported and restarted after a backoff
that grows while crashes repeat (queued items wait for it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from app.batching.protocol import BatchObserver

log = logging.getLogger("bertserve.batching")


class Supervisor:
    """Restarts components by name ("loop", "runner-N") through `restart(component)`."""

    def __init__(
        self,
        name: str,
        restart: Callable[[str], None],
        observer: BatchObserver | None,
        clock: Callable[[], float],
        backoff_s: tuple[float, float],
    ) -> None:
        self.name = name
        self._restart_component = restart
        self._observer = observer
        self._clock = clock
        self._backoff = backoff_s
        self._crashes: list[float] = []  # times of recent crashes, for the backoff
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False
        self.restarts = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def crashed(self, component: str, error: BaseException) -> None:
        """On the event loop: report the crash, then restart the component after a backoff."""
        if self.closing:
            return
        now = self._clock()
        self._crashes = [t for t in self._crashes if now - t < 60.0] + [now]
        first, cap = self._backoff
        delay = min(cap, first * 2 ** (len(self._crashes) - 1))
        reason = f"{component} crashed: {type(error).__name__}: {error}"
        log.error(
            "model %s: %s; restarting in %.1f s",
            self.name,
            reason,
            delay,
            exc_info=(type(error), error, error.__traceback__),
        )
        if self._observer is not None:
            self._observer.on_crash(component, reason)
        assert self._loop is not None
        self._loop.call_later(delay, self._restart, component)

    def _restart(self, component: str) -> None:
        if self.closing:
            return
        self._restart_component(component)
        self.restarts += 1
        log.warning("model %s: %s restarted", self.name, component)
        if self._observer is not None:
            self._observer.on_recovered(component)
