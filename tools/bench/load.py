"""Closed-loop HTTP load: N concurrent clients, each sending its next request when the last returns.

aiohttp, not httpx: on two cores httpx's connection pool costs several milliseconds per request
at 64 connections and the client, not the server, becomes what is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass

import aiohttp
import numpy as np


@dataclass(frozen=True)
class LoadResult:
    requests: int
    sequences: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def seq_per_s(self) -> float:
        return self.sequences / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


async def drive(
    url: str,
    path: str,
    texts: list[str],
    *,
    clients: int,
    seconds: float,
    texts_per_request: int = 1,
    warmup_s: float = 2.0,
    get: bool = False,
) -> LoadResult:
    """Drive `url + path` for `seconds` (after `warmup_s` unmeasured) with `clients` concurrent clients;
    what completes within those seconds counts, however long ago it was sent.

    With `get`, each request is a GET of `path` (the HTTP floor: a route that does no work)."""
    cursor = itertools.count()
    latencies: list[float] = []
    counts = {"requests": 0, "sequences": 0, "errors": 0}
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + seconds

    async def client_loop(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < stop_at:
            first = next(cursor) * texts_per_request
            batch = [texts[(first + i) % len(texts)] for i in range(texts_per_request)]
            body = {"inputs": batch if texts_per_request > 1 else batch[0]}
            sent = time.perf_counter()
            try:
                request = session.get(path) if get else session.post(path, json=body)
                async with request as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            done = time.perf_counter()
            if measure_from <= done <= stop_at:  # completions in the window: steady-state throughput
                counts["requests"] += 1
                if ok:
                    counts["sequences"] += texts_per_request
                    latencies.append((done - sent) * 1000)
                else:
                    counts["errors"] += 1

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        clients_done = asyncio.gather(*(client_loop(session) for _ in range(clients)))
        # requests still out at the end are abandoned, not awaited (the server drops their items)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(clients_done, timeout=stop_at - time.perf_counter() + 0.1)
    return LoadResult(counts["requests"], counts["sequences"], counts["errors"], seconds, latencies)
