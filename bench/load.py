"""Closed-loop HTTP load: N concurrent clients, each sending its next request when the last returns.

aiohttp, not httpx: on two cores httpx's connection pool costs several milliseconds per request
at 64 connections and the client, not the server, becomes what is measured.
"""

from __future__ import annotations

import asyncio
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
) -> LoadResult:
    """Drive `url + path` for `seconds` (after `warmup_s` unmeasured) with `clients` concurrent clients."""
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
                async with session.post(path, json=body) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            done = time.perf_counter()
            if sent >= measure_from and done <= stop_at:
                counts["requests"] += 1
                if ok:
                    counts["sequences"] += texts_per_request
                    latencies.append((done - sent) * 1000)
                else:
                    counts["errors"] += 1

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client_loop(session) for _ in range(clients)))
    return LoadResult(counts["requests"], counts["sequences"], counts["errors"], seconds, latencies)
