"""The Open Inference Protocol (v2, KServe / Triton) over REST.

Every model is served under its own name with one version, "1". Inference maps the input
tensors to the task request the task routes build (each task's `tensors`, app.tasks.tensors), with
the pipeline's options as request parameters, and runs it through the same service, batcher
and metrics as the task routes (`run_task`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from app.api.auth import ServiceDep, require_api_key
from app.api.error_response import V2_PREFIX, is_v2_path
from app.api.huggingface import parameters_model
from app.api.inference import run_task
from app.api.v2_tensors import (
    PROTOCOL_PARAMETERS,
    BadTensorRequest,
    InferRequest,
    InferResponse,
    inline_schema,
    input_texts,
    parse_body,
    select_outputs,
)
from app.errors import ModelNotFound
from app.lifecycle.registry import ModelState
from app.service import Service
from app.tasks import TASKS
from app.tasks.base import Task

VERSION = "1"
INFER_PATH_PARTS = 4  # models/{name}/infer or models/{name}/versions/{v}/infer after /v2

DEMO_MODELS = {"classify": "sst2-minilm", "pair": "mrpc-minilm", "qa": "squad-minilm", "ner": "conll-minilm"}
"""The demo's heads (`make models`): the examples of a model name."""

ModelName = Annotated[
    str,
    Path(
        description="a model name (see GET /v1/models)",
        examples=list(DEMO_MODELS.values()),
        openapi_examples={
            name: {"summary": f"the demo's {task} head", "value": name} for task, name in DEMO_MODELS.items()
        },
    ),
]
ModelVersion = Annotated[
    str,
    Path(
        description='the model version: every model has one, "1" (another is 404)',
        examples=[VERSION],
        openapi_examples={"only": {"summary": "the only version", "value": VERSION}},
        json_schema_extra={"enum": [VERSION]},
    ),
]
INFER_EXAMPLE = {
    "id": "42",
    "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["I loved it."]}],
}
"""A request for a classify model (e.g. the demo's sst2-minilm)."""


def is_infer_path(path: str) -> bool:
    """/v2/models/{name}/infer or /v2/models/{name}/versions/{v}/infer (for the middleware)."""
    if not is_v2_path(path) or not path.endswith("/infer"):
        return False
    parts = path[len(V2_PREFIX) + 1 :].split("/")
    return parts[0] == "models" and len(parts) in (3, 5)


def model_task(service: Service, name: str, version: str | None) -> Task[Any, Any]:
    """The task of a loaded model; the service's own errors for unknown, failed or loading ones."""
    if version is not None and version != VERSION:
        raise ModelNotFound(f"model {name!r} has no version {version!r}; its only version is {VERSION!r}")
    slot = service.registry.slots.get(name)
    if slot is not None and slot.context is not None:
        return TASKS[slot.context.manifest.task]
    service.registry.resolve(next(iter(TASKS.values())), name)  # raises: unknown, failed or still loading
    raise ModelNotFound(f"unknown model {name!r}")  # unreachable unless the service changes


def _field_error(task: Task[Any, Any], error: ValidationError) -> str:
    """Validation problems named by tensor and element (the inputs are always a list here)."""
    problems = error.errors()
    listed = [p for p in problems if any(str(part).startswith("list[") for part in p["loc"])]
    parts = []
    for problem in (listed or problems)[:5]:
        loc = [part for part in problem["loc"] if isinstance(part, int) or "[" not in part]
        if loc[:1] == ["inputs"] and len(loc) >= 2:
            tensor = str(loc[2]) if len(loc) > 2 else task.tensors.inputs[0]
            parts.append(f"input {tensor!r} element {loc[1]}: {problem['msg']}")
        else:
            parts.append(f"parameters.{'.'.join(str(p) for p in loc)}: {problem['msg']}")
    return "; ".join(parts)


def build_request(
    task: Task[Any, Any], name: str, inputs: list[Any], parameters: dict[str, Any]
) -> BaseModel:
    """The task request, validated like the task routes' (same options, same text rules)."""
    options = {key: value for key, value in parameters.items() if key not in PROTOCOL_PARAMETERS}
    try:
        checked = parameters_model(task).model_validate(options)
        request: BaseModel = task.request_model.model_validate(
            {"inputs": inputs, "model": name, **checked.model_dump()}
        )
    except ValidationError as error:
        raise BadTensorRequest(_field_error(task, error)) from None
    return request


def metadata(service: Service, name: str, version: str | None) -> dict[str, Any]:
    task = model_task(service, name, version)
    return {
        "name": name,
        "versions": [VERSION],
        "platform": "bertserve_onnxruntime",
        "inputs": [{"name": n, "datatype": "BYTES", "shape": [-1]} for n in task.tensors.inputs],
        "outputs": [spec.metadata() for spec in task.tensors.outputs],
        "parameters": {"task": task.name},
    }


def model_ready(service: Service, name: str, version: str | None) -> JSONResponse:
    model_task(service, name, version)
    slot = service.registry.slots[name]
    ready = slot.state == ModelState.READY
    headers = {} if ready else {"Retry-After": str(service.settings.retry_after_s)}
    return JSONResponse({"name": name, "ready": ready}, status_code=200 if ready else 503, headers=headers)


async def infer(service: Service, request: Request, name: str, version: str | None) -> Response:
    task = model_task(service, name, version)
    body, binary = parse_body(await request.body(), request.headers.get("inference-header-content-length"))
    texts = input_texts(body, binary, task.tensors.inputs)
    task_request = build_request(task, name, task.tensors.request_inputs(texts), body.parameters)
    _, answer, headers = await run_task(service, task, task_request, request)
    results = answer.model_dump(mode="json")["results"]
    outputs = select_outputs(task.tensors.output_tensors(results, task_request), body.outputs)
    reply = {
        "model_name": name,
        "model_version": VERSION,
        "id": body.id or str(request.state.request_id),
        "outputs": outputs,
    }
    return Response(to_json(reply), media_type="application/json", headers=headers)


def infer_doc() -> str:
    """The inference route's description: each task's input and output tensors."""
    inputs = "; ".join(
        f"{name} " + " + ".join(f"`{tensor}`" for tensor in task.tensors.inputs)
        for name, task in TASKS.items()
    )
    outputs = "; ".join(
        f"{name} " + ", ".join(f"`{spec.name}` {spec.datatype}" for spec in task.tensors.outputs)
        for name, task in TASKS.items()
    )
    return (
        f"Input tensors (BYTES, N strings each): {inputs}. Request `parameters` are the task's options "
        f"(as on the task routes). Outputs: {outputs}; rows of several per input (QA answers, entities) are "
        "flattened in input order and the `*_count` tensor says how many belong to each input. JSON data, "
        "or JSON followed by binary input data (Inference-Header-Content-Length); answers are JSON."
    )


class V2Error(BaseModel):
    """The protocol's error body."""

    error: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a v2 route answers with."""
    reasons = {
        400: "Invalid request: tensors, parameters or JSON",
        401: "Missing or wrong API key",
        404: "Unknown model or version",
        413: "Body, input count, text or windows needed over its limit",
        429: "Queue full: retry after Retry-After seconds",
        500: "The batch this request was in failed",
        503: "Not ready, overloaded or shutting down: retry after Retry-After",
        504: "No answer within the request timeout",
    }
    return {code: {"model": V2Error, "description": reasons[code]} for code in codes}


def v2_router(*, protect_metadata: bool = False) -> APIRouter:
    """With `protect_metadata`, server and model metadata need the API key, as /v1/models does; the
    protocol's health routes (server, and model readiness) stay open: probes send no key."""
    router = APIRouter(prefix=V2_PREFIX, tags=["open inference protocol (v2)"])
    model_errors = _errors(404, 503)
    key_for_metadata = [Depends(require_api_key)] if protect_metadata else []
    infer_route: dict[str, Any] = {
        "description": infer_doc(),
        "dependencies": [Depends(require_api_key)],
        "responses": {
            200: {"model": InferResponse, "description": "The output tensors"},
            **_errors(400, 401, 404, 413, 429, 500, 503, 504),
        },
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": inline_schema(InferRequest), "example": INFER_EXAMPLE}
                },
            }
        },
    }

    @router.get("", summary="Server metadata", dependencies=key_for_metadata)
    async def server_metadata(request: Request) -> dict[str, Any]:
        return {"name": "bertserve", "version": request.app.version, "extensions": ["model_repository"]}

    @router.get("/health/live", summary="The server is live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/health/ready", summary="Every model is ready (503 otherwise)", responses=_errors(503))
    async def ready(service: ServiceDep) -> JSONResponse:
        if service.registry.ready:
            return JSONResponse({"ready": True})
        return JSONResponse(
            {"ready": False}, status_code=503, headers={"Retry-After": str(service.settings.retry_after_s)}
        )

    @router.get(
        "/models/{name}",
        summary="Model metadata: input and output tensors",
        operation_id="v2_model_metadata",
        responses=model_errors,
        dependencies=key_for_metadata,
    )
    async def model_metadata(name: ModelName, service: ServiceDep) -> dict[str, Any]:
        return metadata(service, name, None)

    @router.get(
        "/models/{name}/versions/{version}",
        summary="Model metadata (version 1)",
        operation_id="v2_model_version_metadata",
        responses=model_errors,
        dependencies=key_for_metadata,
    )
    async def version_metadata(name: ModelName, version: ModelVersion, service: ServiceDep) -> dict[str, Any]:
        return metadata(service, name, version)

    @router.get(
        "/models/{name}/ready",
        summary="The model is loaded and warmed up (503 otherwise)",
        operation_id="v2_model_ready",
        responses=model_errors,
    )
    async def ready_model(name: ModelName, service: ServiceDep) -> JSONResponse:
        return model_ready(service, name, None)

    @router.get(
        "/models/{name}/versions/{version}/ready",
        summary="Model readiness (version 1)",
        operation_id="v2_model_version_ready",
        responses=model_errors,
    )
    async def ready_version(name: ModelName, version: ModelVersion, service: ServiceDep) -> JSONResponse:
        return model_ready(service, name, version)

    @router.post("/models/{name}/infer", summary="Inference", operation_id="v2_model_infer", **infer_route)
    async def infer_model(name: ModelName, request: Request, service: ServiceDep) -> Response:
        return await infer(service, request, name, None)

    @router.post(
        "/models/{name}/versions/{version}/infer",
        summary="Inference (version 1)",
        operation_id="v2_model_version_infer",
        **infer_route,
    )
    async def infer_version(
        name: ModelName, version: ModelVersion, request: Request, service: ServiceDep
    ) -> Response:
        return await infer(service, request, name, version)

    return router
