"""Test-only fault injection: a runner wrapper that fails chosen batches (BERTSERVE_FAULTS).

It exists so the stress harness and the end-to-end tests can show, on a real server process,
that a failing batch fails only its own items and the model keeps serving. Never set in production.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # app.settings imports this module, and app.batching imports app.settings
    from app.batching import BatchRunner


class InjectedFault(RuntimeError):
    """The error a faulty runner raises."""


class FaultSpec(BaseModel):
    """Which batches of one model fail on purpose (0 = never)."""

    fail_run_every: int = Field(0, ge=0, description="every Nth batch raises in run")
    fail_pad_every: int = Field(0, ge=0, description="every Nth batch raises while being padded")
    fail_runs: int = Field(0, ge=0, description="the first N batches raise in run (a session that heals)")


class FaultyRunner:
    """Delegates to a real runner, raising InjectedFault on the chosen batches."""

    def __init__(self, runner: BatchRunner[Any, Any, Any], spec: FaultSpec) -> None:
        self._runner = runner
        self._spec = spec
        self._padded = itertools.count(1)
        self._runs = itertools.count(1)
        self._lock = threading.Lock()

    def around(self, runner: BatchRunner[Any, Any, Any]) -> FaultyRunner:
        """The same faults around a new runner (a re-opened session): the batch counts carry on."""
        faulty = FaultyRunner(runner, self._spec)
        faulty._padded, faulty._runs, faulty._lock = self._padded, self._runs, self._lock
        return faulty

    def pad(self, payloads: Sequence[Any]) -> Any:
        if self._spec.fail_pad_every and next(self._padded) % self._spec.fail_pad_every == 0:
            raise InjectedFault("injected fault while padding (BERTSERVE_FAULTS)")
        return self._runner.pad(payloads)

    def saturated(self) -> bool:
        saturated = getattr(self._runner, "saturated", None)
        return bool(saturated()) if saturated is not None else False

    def turn(self) -> AbstractContextManager[object]:
        from app.batching.protocol import turn_of  # here: importing app.batching at load time is a cycle

        return turn_of(self._runner)

    def run(self, batch: Any) -> Sequence[Any]:
        with self._lock:
            number = next(self._runs)
        every = self._spec.fail_run_every
        if (every and number % every == 0) or number <= self._spec.fail_runs:
            raise InjectedFault("injected fault while running (BERTSERVE_FAULTS)")
        return self._runner.run(batch)


def with_faults(runner: BatchRunner[Any, Any, Any], spec: FaultSpec | None) -> BatchRunner[Any, Any, Any]:
    """The runner itself, or a faulty wrapper when a spec asks for faults."""
    if spec is None or not (spec.fail_run_every or spec.fail_pad_every or spec.fail_runs):
        return runner
    return FaultyRunner(runner, spec)


def rewrapped(current: object, runner: BatchRunner[Any, Any, Any]) -> BatchRunner[Any, Any, Any]:
    """`runner` in place of the one `current` wraps: behind the same faults if `current` has them."""
    return current.around(runner) if isinstance(current, FaultyRunner) else runner
