"""Supervision: the batching loop's task is watched; a crashed loop or runner thread is reported and
restarted after a backoff that grows while crashes repeat (queued items wait for it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from app.batching.protocol import LOOP, BatchObserver, Component, Part

log = logging.getLogger("bertserve.batching")


class Supervisor:
    """Runs the batching loop as a task and restarts it if it dies; other parts (runner threads)
    restart through `restart(part)`, which is also told of a restarted loop."""

    def __init__(
        self,
        name: str,
        restart: Callable[[Part], None],
        observer: BatchObserver | None,
        clock: Callable[[], float],
        backoff_s: tuple[float, float],
    ) -> None:
        self.name = name
        self._restart_part = restart
        self._observer = observer
        self._clock = clock
        self._backoff = backoff_s
        self._crashes: list[float] = []  # times of recent crashes, for the backoff
        self._loop: asyncio.AbstractEventLoop | None = None
        self._run_loop: Callable[[], Coroutine[Any, Any, None]] | None = None
        self.loop_task: asyncio.Task[None] | None = None
        self.closing = False
        self.restarts = 0

    def start_loop(
        self, loop: asyncio.AbstractEventLoop, run: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        """Run `run()` as the batching loop's task on `loop`, watched."""
        self._loop, self._run_loop = loop, run
        self._start_loop_task()

    def _start_loop_task(self) -> None:
        assert self._loop is not None and self._run_loop is not None
        self.loop_task = self._loop.create_task(self._run_loop(), name=f"batcher-{self.name}")
        self.loop_task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.closing:
            return
        self.crashed(LOOP, task.exception() or RuntimeError("the batching loop returned"))

    async def stop_loop(self) -> None:
        """No more restarts; cancel the loop and wait for it."""
        self.closing = True
        if self.loop_task is not None:
            self.loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.loop_task

    def crashed(self, part: Part, error: BaseException) -> None:
        """On the event loop: report the crash, then restart the component after a backoff."""
        if self.closing:
            return
        now = self._clock()
        self._crashes = [t for t in self._crashes if now - t < 60.0] + [now]
        first, cap = self._backoff
        delay = min(cap, first * 2 ** (len(self._crashes) - 1))
        reason = f"{part} crashed: {type(error).__name__}: {error}"
        log.error(
            "model %s: %s; restarting in %.1f s",
            self.name,
            reason,
            delay,
            exc_info=(type(error), error, error.__traceback__),
        )
        if self._observer is not None:
            self._observer.on_crash(part, reason)
        assert self._loop is not None
        self._loop.call_later(delay, self._restart, part)

    def _restart(self, part: Part) -> None:
        if self.closing:
            return
        if part.component == Component.LOOP:
            self._start_loop_task()
        self._restart_part(part)
        self.restarts += 1
        log.warning("model %s: %s restarted", self.name, part)
        if self._observer is not None:
            self._observer.on_recovered(part)
