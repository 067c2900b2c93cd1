"""The work waiting for an engine: how long new work can expect to wait before it starts.

Models that share the cores (the CPU run gate) share one backlog: it sees every model's queued
work the moment it is queued, each at the speed of its model's runs alone, which the others' load
does not change. A model's own speed cannot stand in for it: timed from its runs alone it counts on
the whole machine; timed with its wait for the gate, it follows the others' load seconds late.
"""

from __future__ import annotations

from typing import Protocol


class WorkSource(Protocol):
    """A model's queue, as the backlog sees it."""

    @property
    def parallel_runs(self) -> int:
        """Batches of this model that may run at once."""
        ...

    def work_seconds(self) -> float:
        """Seconds of one run that its queued and unfinished work takes; 0 while unmeasured."""
        ...


class Backlog:
    """The queues of every model on one engine, which runs at most `parallel_runs` batches at once
    (the gate's permits; a model alone: its own runner threads)."""

    def __init__(self, parallel_runs: int) -> None:
        if parallel_runs < 1:
            raise ValueError(f"a backlog needs at least one parallel run, not {parallel_runs}")
        self.parallel_runs = parallel_runs
        self._sources: list[WorkSource] = []

    def join(self, source: WorkSource) -> None:
        self._sources.append(source)

    def leave(self, source: WorkSource) -> None:
        """`source`'s model was stopped (unloaded or swapped out): it is no longer counted."""
        if source in self._sources:
            self._sources.remove(source)

    def wait_seconds(self, source: WorkSource, extra_seconds: float = 0.0) -> float:
        """Seconds until `source`'s queued work, with `extra_seconds` more, is done.

        The gate serves the models' batches in turn, so the engine is shared as in processor
        sharing: while `source` works through its `own` seconds, every other model runs as much of
        its own work, up to as much: sum(min(work, own)) over the models, over the runs at once.
        A model with little queued is not held to another's backlog (a flood on one model does not
        refuse calm traffic to the others), and one that can run only so many batches at once is
        never expected to finish sooner than that allows."""
        own = source.work_seconds() + extra_seconds
        if own <= 0:
            return 0.0
        shared, runs = 0.0, 0
        for member in self._sources:
            work = own if member is source else member.work_seconds()
            if work > 0:
                shared += min(work, own)
                runs += member.parallel_runs
        return max(own / source.parallel_runs, shared / max(1, min(self.parallel_runs, runs)))
