"""The inference routes: one per task, all built by the same factory.

No `from __future__ import annotations` here: FastAPI reads the request model from the
endpoint's annotations at runtime, and those are per-task closures.
"""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel
from pydantic_core import to_json

from app.api.auth import ServiceDep, require_api_key
from app.api.huggingface import HFRequest, bare_output, body_annotation, output_model, to_task_request
from app.api.json_body import StrictJSONRoute
from app.errors import ClientClosed
from app.lifecycle.registry import ModelSlot
from app.logs import model_var
from app.service import Service, Timings
from app.tasks import TASKS
from app.tasks.base import Task


async def wait_for_disconnect(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def run_task(
    service: Service, task: Task[Any, Any], body: BaseModel, request: Request
) -> tuple[ModelSlot, BaseModel, dict[str, str]]:
    """Resolve the model, check limits, infer (cancelled if the client goes away).

    Returns the slot, the answer and the response headers (model and stage timings). Every
    protocol (task routes in either format, Open Inference Protocol) comes through here.
    """
    slot = service.registry.resolve(task, getattr(body, "model", None))
    request.state.model = slot.name
    request.state.task = task.name
    model_var.set(slot.name)  # for the log lines of this request (the middleware resets it)
    service.check_limits(task, body)
    timings = Timings(received=getattr(request.state, "received", 0.0))
    trace = getattr(request.state, "trace", None)
    inference = service.infer(task, slot, body, timings, request.state.request_id, trace=trace)
    work = asyncio.ensure_future(inference)
    slot.hold(work)  # a swap or unload stops this slot's batcher only once `work` is done
    watcher = asyncio.ensure_future(wait_for_disconnect(request))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not work.done():
        work.cancel()
        raise ClientClosed("the client closed the connection")
    headers = {
        "x-model": slot.name,
        "x-tokenize-time": f"{timings.tokenize * 1000:.3f}ms",
        "x-queue-time": f"{timings.queue * 1000:.3f}ms",
        "x-inference-time": f"{timings.inference * 1000:.3f}ms",
    }
    return slot, work.result(), headers


def task_route(task: Task[Any, Any]) -> Any:
    """The endpoint for one task, in bertserve's format or the Hugging Face one."""
    body_type = body_annotation(task)

    async def endpoint(
        body: Annotated[body_type, Body()],  # type: ignore[valid-type]
        request: Request,
        service: ServiceDep,
    ) -> Any:
        hf_format = isinstance(body, HFRequest)
        task_request = to_task_request(task, body) if hf_format else body
        _, answer, headers = await run_task(service, task, task_request, request)
        # serialized in one pass by pydantic-core: far cheaper than FastAPI's jsonable_encoder + json.dumps
        content = to_json(bare_output(task, task_request, answer) if hf_format else answer)
        return Response(content, media_type="application/json", headers=headers)

    endpoint.__name__ = f"{task.name}_endpoint"
    return endpoint


ROUTE_DESCRIPTION = (
    "Two body formats. **bertserve**: `inputs` with the options at the top level, answered as "
    '`{"model", "results"}`. **Hugging Face task format**: `{"inputs": ..., "parameters": {...}}` '
    "(what `huggingface_hub.InferenceClient` sends), answered with the bare pipeline output. "
    "Both name the answering model in the `x-model` header."
)


def inference_router() -> APIRouter:
    router = APIRouter(
        dependencies=[Depends(require_api_key)], tags=["inference"], route_class=StrictJSONRoute
    )
    for name, task in TASKS.items():
        router.add_api_route(
            f"/{name}",
            task_route(task),
            methods=["POST"],
            response_model=None,
            summary=task.summary,
            description=ROUTE_DESCRIPTION,
            name=name,
            responses={
                200: {"model": output_model(task), "description": "The answer, in the request's format"},
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
