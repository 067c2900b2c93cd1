"""Open-loop (fixed arrival rate) and closed-loop (N clients) HTTP load that records every outcome.

An outcome is an HTTP status, or how the request was lost: `refused` (no connection: never
accepted), `reset` (the connection died after the request was sent), `timeout` (the client gave up).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from tools.bench.stress.traffic import Request

# A long open-loop run must not measure its own garbage collector: it keeps only the outcomes (not
# 100,000 finished tasks) and moves what it has kept out of the collector's reach every so often,
# so a full collection stays as cheap at the last request as at the first (with every task kept,
# one took 103 ms at 100,000 requests against 32 ms at 10,000, in the middle of the run's timing).
FREEZE_EVERY = 1000


@dataclass(frozen=True)
class Outcome:
    sent: float  # seconds since the run began
    latency: float  # seconds
    status: int  # 0 when no HTTP answer came
    lost: str = ""  # refused | reset | timeout, when status is 0
    retry_after: bool = False
    error_type: str = ""
    path: str = ""


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def statuses(self) -> dict[str, int]:
        """Outcomes by HTTP status, or by how the request was lost."""
        counted = Counter(str(o.status) if o.status else o.lost for o in self.outcomes)
        return dict(sorted(counted.items()))

    def refusals(self) -> dict[str, int]:
        """Answers other than 200, by status and error type (e.g. "429 queue_full")."""
        counted = Counter(
            f"{o.status} {o.error_type}".strip() for o in self.outcomes if o.status and o.status != 200
        )
        return dict(sorted(counted.items()))

    def answered(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 200]

    def percentile_ms(self, q: float, outcomes: list[Outcome] | None = None) -> float:
        latencies = [
            o.latency for o in (self.answered() if outcomes is None else outcomes) if o.status == 200
        ]
        return float(np.percentile(latencies, q) * 1000) if latencies else float("nan")


def _classify(error: BaseException) -> str:
    if isinstance(error, aiohttp.ClientConnectorError):
        return "refused"
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    return "reset"


async def send(session: aiohttp.ClientSession, request: Request, began: float) -> Outcome:
    sent = time.perf_counter()
    try:
        async with session.post(request.path, json=request.body) as response:
            body = await response.read()
            error_type = ""
            if response.status != 200 and body[:1] == b"{":
                error_type = str((await response.json(content_type=None)).get("error", {}).get("type", ""))
            return Outcome(
                sent - began,
                time.perf_counter() - sent,
                response.status,
                retry_after="Retry-After" in response.headers,
                error_type=error_type,
                path=request.path,
            )
    except (aiohttp.ClientError, TimeoutError) as error:
        return Outcome(sent - began, time.perf_counter() - sent, 0, _classify(error), path=request.path)


def session_for(
    url: str, timeout_s: float = 60.0, connections: int = 0, headers: Mapping[str, str] | None = None
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    return aiohttp.ClientSession(
        url, connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s), headers=headers
    )


async def open_loop(
    url: str,
    next_request: Callable[[], Request],
    rate: float,
    *,
    seconds: float | None = None,
    count: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    timeout_s: float = 60.0,
) -> Run:
    """Send requests at `rate` per second, whatever the answers, for `seconds` or `count` requests."""
    assert seconds is not None or count is not None
    total = count if count is not None else int(rate * (seconds or 0))
    run = Run()
    pending: set[asyncio.Task[Outcome]] = set()
    failed: list[asyncio.Task[Outcome]] = []

    def finished(task: asyncio.Task[Outcome]) -> None:
        pending.discard(task)
        if task.cancelled() or task.exception() is not None:
            failed.append(task)
        else:
            run.outcomes.append(task.result())

    async with session_for(url, timeout_s) as session:
        began = time.perf_counter()
        for index in range(total):
            due = began + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(send(session, next_request(), began))
            pending.add(task)
            task.add_done_callback(finished)
            if index % FREEZE_EVERY == FREEZE_EVERY - 1:
                gc.freeze()
            if on_progress is not None:
                on_progress(index)
        while pending:
            await asyncio.wait(set(pending))
        run.seconds = time.perf_counter() - began
    gc.unfreeze()
    for task in failed:
        task.result()  # a bug in the load generator itself: raise it, as gather did
    run.outcomes.sort(key=lambda outcome: outcome.sent)
    return run


async def closed_loop(
    url: str, next_request: Callable[[], Request], clients: int, seconds: float, timeout_s: float = 60.0
) -> Run:
    """`clients` clients, each sending its next request when the last one is answered."""
    run = Run()
    async with session_for(url, timeout_s, connections=clients) as session:
        began = time.perf_counter()
        stop = began + seconds

        async def client() -> None:
            while time.perf_counter() < stop:
                run.outcomes.append(await send(session, next_request(), began))

        await asyncio.gather(*(client() for _ in range(clients)))
        run.seconds = time.perf_counter() - began
    return run
