"""What the server process holds (memory, open files, threads) and what its /metrics say."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp

T = TypeVar("T")


@dataclass(frozen=True)
class ProcessSample:
    at: float
    rss_mb: float
    open_files: int  # descriptors that are not sockets (connections come and go with the load)
    threads: int
    sockets: int
    host_steal: int = 0  # the machine's CPU time taken by its hypervisor so far (jiffies)
    host_cpu: int = 0  # the machine's CPU time so far, all states (jiffies)
    thread_names: tuple[str, ...] = ()  # every thread's name (/proc/PID/task/*/comm), sorted


def thread_names(pid: int) -> tuple[str, ...]:
    """The names of a process's threads, sorted: which ones came, when the count moves."""
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # the thread ended between the listing and the read
            names.append((task / "comm").read_text().strip())
    return tuple(sorted(names))


def threads_gained(before: ProcessSample, after: ProcessSample) -> dict[str, int]:
    """Thread names `after` has more of than `before`, with how many more."""
    gained = Counter(after.thread_names) - Counter(before.thread_names)
    return dict(sorted(gained.items()))


def sample_process(pid: int) -> ProcessSample:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:  # closed between the listing and the read
            continue
    sockets = sum(1 for target in targets if target.startswith("socket:"))
    steal, total = host_cpu_times()
    return ProcessSample(
        time.monotonic(),
        rss_kb / 1024,
        len(targets) - sockets,
        threads,
        sockets,
        steal,
        total,
        thread_names(pid),
    )


def host_cpu_times() -> tuple[int, int]:
    """(steal, all) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    steal = fields[7] if len(fields) > 7 else 0
    return steal, sum(fields)


def steal_percent(first: ProcessSample, last: ProcessSample) -> float:
    """Share of the machine's CPU time its hypervisor took between two samples: a virtual machine's
    cores run slower when the host is busy, which a latency trend must not blame on the server."""
    total = last.host_cpu - first.host_cpu
    return 100.0 * (last.host_steal - first.host_steal) / total if total > 0 else 0.0


def metric_values(text: str, name: str) -> dict[str, float]:
    """Every sample of one metric: labels text -> value."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key[len(name) :]] = float(value)
    return values


def metric_sum(text: str, name: str, contains: str = "") -> float:
    return sum(v for k, v in metric_values(text, name).items() if contains in k)


def tenth_spans(samples: Sequence[T]) -> list[tuple[T, T]]:
    """(first, last) sample of each tenth of a run sampled at a steady interval; [] under 2 samples."""
    if len(samples) < 2:
        return []
    ends = [samples[round(i * (len(samples) - 1) / 10)] for i in range(11)]
    return list(itertools.pairwise(ends))


def compute_totals(metrics: str) -> tuple[float, float]:
    """(seconds ONNX Runtime has run, padded tokens it has run) over every model, from /metrics."""
    return metric_sum(metrics, "bertserve_inference_seconds_sum"), metric_sum(
        metrics, "bertserve_batch_tokens_sum"
    )


def ms_per_1k_tokens(first: tuple[float, float, float], last: tuple[float, float, float]) -> float:
    """ONNX Runtime milliseconds per 1,000 padded tokens between two `Watcher.compute` samples: the
    machine's speed at this model size, which a latency trend must not blame on the server."""
    tokens = last[2] - first[2]
    return 1e6 * (last[1] - first[1]) / tokens if tokens > 0 else float("nan")


@dataclass
class Watcher:
    """Samples the process and the queue depth every `interval` seconds while a scenario runs."""

    url: str
    pid: int
    interval: float = 0.5
    samples: list[ProcessSample] = field(default_factory=list)
    queued: list[tuple[float, float]] = field(default_factory=list)  # (perf_counter, items queued)
    # (perf_counter, ONNX Runtime seconds so far, padded tokens so far): how fast the machine computes
    compute: list[tuple[float, float, float]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    @property
    def max_queue_items(self) -> float:
        return max((items for _, items in self.queued), default=0.0)

    async def _loop(self) -> None:
        async with aiohttp.ClientSession(self.url, timeout=aiohttp.ClientTimeout(total=5)) as session:
            while True:
                try:
                    self.samples.append(sample_process(self.pid))
                    async with session.get("/metrics") as response:
                        text = await response.text()
                    queued = metric_sum(text, "bertserve_queue_items")
                    now = time.perf_counter()
                    self.queued.append((now, queued))
                    self.compute.append((now, *compute_totals(text)))
                except (TimeoutError, OSError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
