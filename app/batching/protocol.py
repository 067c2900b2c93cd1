"""What the batcher's callers and plug-ins see: its errors, the runner and observer protocols, and
the reports it gives. (QueueFull and DeadlineExceeded are app.errors': the server answers them.)"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

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


@dataclass(frozen=True, slots=True)
class BatchShape:
    """The size of one batch run, for its trace span."""

    size: int
    real_tokens: int
    padded_tokens: int

    @property
    def padding(self) -> float:
        """The share of the batch's tokens that are padding."""
        return 1.0 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0


class RunTrace(Protocol):
    """A request's trace, handed to the batcher with its items (None: the request is not traced).

    In the runner thread, the batch is run inside `batch_span` of one of its traced requests, given
    them all: one span per batch run, linked to each of them."""

    def batch_span(self, requests: Sequence[RunTrace], shape: BatchShape) -> AbstractContextManager[Any]: ...


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


class DropReason(StrEnum):
    """Why an item was dropped before it ran (the `reason` label of bertserve_rejected_total)."""

    CLIENT_GONE = "client_gone"
    DEADLINE = "deadline"
    REQUEST_FAILED = "request_failed"  # another item of its request failed: its answer is moot
    MODEL_NOT_READY = "model_not_ready"


@dataclass(frozen=True)
class DropReport:
    """Items dropped before running: their client went away, or their deadline passed."""

    reason: DropReason
    count: int


class Component(StrEnum):
    """The kinds of batcher part the supervisor restarts (the crash counter's `component` label)."""

    LOOP = "loop"
    RUNNER = "runner"


@dataclass(frozen=True)
class Part:
    """One restartable part of a batcher: its loop, or runner thread `index`; reads "loop", "runner-2"."""

    component: Component
    index: int | None = None

    def __str__(self) -> str:
        return self.component if self.index is None else f"{self.component}-{self.index}"


LOOP = Part(Component.LOOP)


class BatchObserver(Protocol):
    def on_batch(self, report: BatchReport) -> None: ...

    def on_drop(self, report: DropReport) -> None: ...

    def on_queue_depth(self, depth: int) -> None: ...

    def on_batch_failed(self, size: int, error: BaseException) -> None: ...

    def on_crash(self, part: Part, reason: str) -> None:
        """The batching loop or a runner thread died; the supervisor restarts it after a backoff."""

    def on_recovered(self, part: Part) -> None:
        """The component that died runs again."""
