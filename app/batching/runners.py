"""Runner threads: each takes padded batches from a hand-off queue and runs them, so a batch starts
the moment the previous one ends, however busy the event loop is with HTTP at that moment."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from app.batching.protocol import BatchRunner, BatchShape, Component, Part, RunTrace, turn_of
from app.batching.queue import FormedBatch
from app.process.thread_names import name_this_os_thread

PayloadT = TypeVar("PayloadT")
OutputT = TypeVar("OutputT")

Outcome = tuple[Sequence[Any] | None, BaseException | None, float, float]
"""(outputs or None, error or None, started, finished) of one batch."""


class RunnerPool(Generic[PayloadT, OutputT]):
    """`size` threads over one runner; one padded batch may wait per thread.

    What a thread learns goes back through the event loop: `on_taken()` when it takes a batch
    (room for the next), `deliver(batch, *outcome)` when it ran, `on_crash(part, error)` if
    the thread itself dies (its batch in hand fails with it)."""

    def __init__(
        self,
        name: str,
        runner: BatchRunner[PayloadT, Any, OutputT],
        size: int,
        *,
        clock: Callable[[], float],
        on_taken: Callable[[], None],
        deliver: Callable[..., None],
        on_crash: Callable[[Part, BaseException], None],
    ) -> None:
        self.name = name
        self._runner = runner
        self._size = size
        self._clock = clock
        self._on_taken, self._deliver, self._on_crash = on_taken, deliver, on_crash
        self._handoff: queue.Queue[FormedBatch[PayloadT, OutputT] | None] = queue.Queue(maxsize=size)
        self._threads: dict[int, threading.Thread] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for index in range(self._size):
            self.start_thread(index)

    def start_thread(self, index: int) -> None:
        thread = threading.Thread(
            target=self._thread, args=(index,), name=f"run-{self.name}-{index}", daemon=True
        )
        self._threads[index] = thread
        thread.start()

    def use(self, runner: BatchRunner[PayloadT, Any, OutputT]) -> None:
        """Run the next batches with `runner` (a batch running now finishes on the old one)."""
        self._runner = runner

    def waiting(self) -> list[FormedBatch[PayloadT, OutputT]]:
        """The batches handed off that no thread has taken yet."""
        with self._handoff.mutex:
            return [batch for batch in self._handoff.queue if batch is not None]

    def full(self) -> bool:
        """Every thread has a batch waiting for it already."""
        return self._handoff.full()

    def hand_off(self, batch: FormedBatch[PayloadT, OutputT]) -> None:
        self._handoff.put_nowait(batch)

    async def stop(self) -> None:
        """Tell every thread to stop after its batch, and wait for them (5 s each at most)."""
        threads = list(self._threads.values())
        for _ in threads:
            await asyncio.to_thread(self._handoff.put, None)
        for thread in threads:
            await asyncio.to_thread(thread.join, 5.0)

    def _thread(self, index: int) -> None:
        """Take batches and run them until told to stop; dying any other way is reported."""
        assert self._loop is not None
        loop = self._loop
        name_this_os_thread(f"run{index}-{self.name}")
        handed: FormedBatch[PayloadT, OutputT] | None = None
        try:
            while True:
                handed = None
                handed = self._handoff.get()
                if handed is None:
                    return
                loop.call_soon_threadsafe(self._on_taken)  # room for the next padded batch
                outcome = self._run_one(handed)
                try:
                    loop.call_soon_threadsafe(self._deliver, handed, *outcome)
                except RuntimeError:  # the event loop is closed: nobody is waiting any more
                    return
        except BaseException as error:
            with contextlib.suppress(RuntimeError):
                if handed is not None:  # the batch in hand fails with the thread
                    now = self._clock()
                    loop.call_soon_threadsafe(self._deliver, handed, None, error, now, now)
                loop.call_soon_threadsafe(self._on_crash, Part(Component.RUNNER, index), error)

    def _run_one(self, handed: FormedBatch[PayloadT, OutputT]) -> Outcome:
        """Run one batch in the runner's turn; any failure, or an output count that does not match,
        is the batch's. The run is timed from when the turn came: waiting for it is queueing."""
        if all(item.future.done() for item in handed.items):  # every client gone: do not wait
            now = self._clock()
            return None, None, now, now
        runner = self._runner  # one runner for the whole batch, even if another takes over meanwhile
        try:
            with turn_of(runner):
                return self._run_in_turn(runner, handed)
        except BaseException as failure:  # the turn itself failed: the batch's too
            now = self._clock()
            return None, failure, now, now

    def _run_in_turn(
        self, runner: BatchRunner[PayloadT, Any, OutputT], handed: FormedBatch[PayloadT, OutputT]
    ) -> Outcome:
        started = self._clock()
        outputs: Sequence[OutputT] | None = None
        error: BaseException | None = None
        if any(not item.future.done() for item in handed.items):  # some may have left while it waited
            try:
                with traced_run(handed):
                    outputs = runner.run(handed.padded)
                if len(outputs) != len(handed.items):
                    error = RuntimeError(
                        f"runner returned {len(outputs)} outputs for {len(handed.items)} items"
                    )
                    outputs = None
            except BaseException as failure:  # every item of the batch learns why; the thread goes on
                error = failure
        return outputs, error, started, self._clock()


def traced_run(handed: FormedBatch[Any, Any]) -> contextlib.AbstractContextManager[Any]:
    """The span of one batch run, linked to the traced requests whose items are still awaited;
    a shared do-nothing context when none is traced."""
    traces: dict[int, RunTrace] = {}
    for item in handed.items:
        if item.trace is not None and not item.future.done():
            traces.setdefault(id(item.trace), item.trace)
    if not traces:
        return NOT_TRACED
    requests = list(traces.values())
    shape = BatchShape(
        len(handed.items), sum(item.length for item in handed.items), handed.padded.padded_tokens
    )
    return requests[0].batch_span(requests, shape)


NOT_TRACED = contextlib.nullcontext()
