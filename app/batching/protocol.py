"""What the batcher's callers and plug-ins see: its errors, the runner and observer protocols, and
the reports it gives. (QueueFull and DeadlineExceeded are app.errors': the server answers them.)"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

OutputT = TypeVar("OutputT")


class BatcherClosed(Exception):
    """The batcher is draining or stopped and takes no new work (503)."""


class NeverFits(Exception):
    """A request needs more items than the queue can ever hold: retrying cannot help (413)."""

    def __init__(self, needed: int, limit: int) -> None:
        super().__init__(f"the request needs {needed} items (windows); a queue holds at most {limit}")
        self.needed = needed
        self.limit = limit


class BatchFailed(Exception):
    """The batch an item was in failed to pad or run; only that batch's items get it (500)."""


class PaddedArrays(Protocol):
    """What a runner's `pad` returns: opaque to the batcher but for its padded size."""

    @property
    def padded_tokens(self) -> int: ...


PayloadT_contra = TypeVar("PayloadT_contra", contravariant=True)
OutputT_co = TypeVar("OutputT_co", covariant=True)
PaddedT = TypeVar("PaddedT", bound=PaddedArrays)


class BatchRunner(Protocol[PayloadT_contra, PaddedT, OutputT_co]):
    """Pads and runs batches: `pad` on the event loop (cheap), `run` in a runner thread."""

    def pad(self, payloads: Sequence[PayloadT_contra]) -> PaddedT: ...

    def run(self, batch: PaddedT) -> Sequence[OutputT_co]: ...


# A runner may also offer `saturated() -> bool`: True while a batch formed now could not start
# (e.g. a run gate shared with other models is full); the batcher then waits for companions.
# And `turn() -> ContextManager`: the runner thread holds it around `run`, after waiting for it
# (e.g. that gate's permit); the wait counts as the items' queue wait, not as their run.


def turn_of(runner: object) -> AbstractContextManager[object]:
    """The runner's `turn()` where it has one; a turn that never waits otherwise."""
    turn = getattr(runner, "turn", None)
    return turn() if turn is not None else nullcontext()


@dataclass(frozen=True)
class BatchReport:
    """What happened to one batch, for metrics."""

    size: int
    real_tokens: int
    padded_tokens: int
    queue_waits: list[float]
    run_seconds: float


@dataclass(frozen=True)
class Completed(Generic[OutputT]):
    """A request's outputs, in item order, with how long its items queued and ran."""

    outputs: list[OutputT]
    queue_seconds: float
    inference_seconds: float


@dataclass(frozen=True)
class DropReport:
    """Items dropped before running: their client went away, or their deadline passed."""

    reason: str
    count: int


class BatchObserver(Protocol):
    def on_batch(self, report: BatchReport) -> None: ...

    def on_drop(self, report: DropReport) -> None: ...

    def on_queue_depth(self, depth: int) -> None: ...

    def on_batch_failed(self, size: int, error: BaseException) -> None: ...

    def on_crash(self, component: str, reason: str) -> None:
        """The batching loop or a runner thread died; the supervisor restarts it after a backoff."""

    def on_recovered(self, component: str) -> None:
        """The component that died runs again."""
