"""Stage-by-stage progress lines with timings, sent to a caller-supplied callback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Report = Callable[[str], None]


def _silent(_: str) -> None:
    return None


class Progress:
    """`with progress.stage("fuse"): ...` reports the stage's start and its duration."""

    def __init__(self, report: Report | None) -> None:
        self._report = report or _silent
        self._started = time.perf_counter()

    def __call__(self, message: str) -> None:
        self._report(f"[{time.perf_counter() - self._started:6.1f}s] {message}")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        self(f"{name} ...")
        yield
        self(f"{name}: done in {time.perf_counter() - began:.1f}s")
