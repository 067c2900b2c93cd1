"""The inference routes: one per task, all built by the same factory.

No `from __future__ import annotations` here: FastAPI reads the request model from the
endpoint's annotations at runtime, and those are per-task closures.
"""

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from app.api.auth import ServiceDep, require_api_key
from app.errors import ClientClosed
from app.service import Timings
from app.tasks import TASKS
from app.tasks.base import Task


async def wait_for_disconnect(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def task_route(task: Task[Any, Any]) -> Any:
    """The endpoint for one task: resolve the model, check limits, infer, add timing headers."""
    request_model = task.request_model

    async def endpoint(body: request_model, request: Request, response: Response, service: ServiceDep) -> Any:  # type: ignore[valid-type]
        slot = service.resolve(task, getattr(body, "model", None))
        request.state.model = slot.name
        service.check_limits(task, body)
        timings = Timings(received=getattr(request.state, "received", 0.0))
        work = asyncio.ensure_future(service.infer(task, slot, body, timings, request.state.request_id))
        watcher = asyncio.ensure_future(wait_for_disconnect(request))
        try:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if not work.done():
            work.cancel()
            raise ClientClosed("the client closed the connection")
        result = work.result()
        response.headers["x-tokenize-time"] = f"{timings.tokenize * 1000:.3f}ms"
        response.headers["x-queue-time"] = f"{timings.queue * 1000:.3f}ms"
        response.headers["x-inference-time"] = f"{timings.inference * 1000:.3f}ms"
        return result

    endpoint.__name__ = f"{task.name}_endpoint"
    return endpoint


def inference_router() -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_api_key)], tags=["inference"])
    for name, task in TASKS.items():
        router.add_api_route(
            f"/{name}",
            task_route(task),
            methods=["POST"],
            response_model=task.response_model,
            summary=task.summary,
            name=name,
            responses={
                400: {"description": "Body is not valid JSON"},
                401: {"description": "Missing or wrong API key"},
                404: {"description": "Unknown model"},
                413: {"description": "Body, input count, text or windows needed over its limit"},
                422: {"description": "Invalid input, or a model of another task"},
                500: {"description": "The batch this request was in failed (inference_failed)"},
                429: {"description": "Queue full: retry after Retry-After seconds"},
                503: {"description": "Not ready, overloaded or shutting down: retry after Retry-After"},
                504: {"description": "No answer within the request timeout"},
            },
        )
    return router
