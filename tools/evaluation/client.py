"""Score a running server over HTTP: inputs in requests of `batch`, `concurrency` requests in flight."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

RETRY_STATUSES = {429, 503}  # queue full, overloaded: back off and try again
RETRIES = 5


class ServiceError(RuntimeError):
    """The server answered a request with an error."""


async def _post(client: httpx.AsyncClient, endpoint: str, body: dict[str, Any]) -> list[Any]:
    for attempt in range(RETRIES + 1):
        response = await client.post(endpoint, json=body)
        if response.status_code in RETRY_STATUSES and attempt < RETRIES:
            await asyncio.sleep(float(response.headers.get("retry-after", 1)))
            continue
        if response.status_code != 200:
            raise ServiceError(f"POST {endpoint}: {response.status_code} {response.text[:500]}")
        results = response.json()["results"]
        assert isinstance(results, list), "a list of inputs gives a list of results"
        return results
    raise AssertionError("unreachable")


async def _post_all(
    url: str,
    endpoint: str,
    body: dict[str, Any],
    inputs: list[Any],
    *,
    batch: int,
    concurrency: int,
    timeout: float,
) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(chunk: list[Any]) -> list[Any]:
        async with gate:
            return await _post(client, endpoint, {**body, "inputs": chunk})

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        chunks = [inputs[i : i + batch] for i in range(0, len(inputs), batch)]
        answers = await asyncio.gather(*(one(chunk) for chunk in chunks))
    return [result for answer in answers for result in answer]


def serve_all(
    url: str,
    endpoint: str,
    model: str,
    inputs: list[Any],
    options: dict[str, Any],
    *,
    batch: int = 32,
    concurrency: int = 4,
    timeout: float = 600.0,
) -> tuple[list[Any], float]:
    """(one result per input, in input order; wall seconds)."""
    began = time.perf_counter()
    body = {**options, "model": model}
    results = asyncio.run(
        _post_all(url, endpoint, body, inputs, batch=batch, concurrency=concurrency, timeout=timeout)
    )
    seconds = time.perf_counter() - began
    if len(results) != len(inputs):
        raise ServiceError(f"{len(results)} results for {len(inputs)} inputs")
    return results, seconds


def served_variants(url: str) -> dict[str, dict[str, Any]]:
    """name -> the model's entry in GET /v1/models (precision and provider actually in use)."""
    models = httpx.get(f"{url}/v1/models", timeout=30).json()["models"]
    return {str(m["name"]): dict(m) for m in models}
