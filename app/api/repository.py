"""The Open Inference Protocol's model repository extension (as Triton and KServe define it): the
repository index, and loading or unloading a model while the server runs (app.lifecycle.model_control).

Every route needs the API key. A body is optional on each; it is small JSON, read up to
`MAX_CONTROL_BODY_BYTES` (413 beyond, before more is read). Errors are the protocol's `{"error": ...}`.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from app.api.auth import require_api_key
from app.api.json_body import InvalidJSON, parse_json
from app.api.v2 import DEMO_MODELS, V2Error
from app.api.v2_tensors import inline_schema
from app.errors import ErrorKind, ServiceError, describe_invalid
from app.lifecycle.model_control import IndexEntry, ModelControl

MAX_CONTROL_BODY_BYTES = 16_384
"""The largest body a repository route reads: its requests hold a flag or a few parameters."""


class BadControlRequest(ServiceError):
    """A repository request body that is not what the protocol allows here (400)."""

    kind = ErrorKind.INVALID_INPUT


class ControlBodyTooLarge(ServiceError):
    kind = ErrorKind.PAYLOAD_TOO_LARGE


class IndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ready: StrictBool = False


class LoadRequest(BaseModel):
    """The protocol's load request; a model loads from its folder only, so it takes no parameters."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = {}


class UnloadParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unload_dependents: StrictBool = False  # accepted: no model here has dependents


class UnloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: UnloadParameters = UnloadParameters()


Body = TypeVar("Body", bound=BaseModel)


class ChangeAnswer(BaseModel):
    """What a load or unload answers (KServe's shape; Triton's clients read only the status)."""

    name: str
    load: bool | None = None
    unload: bool | None = None


async def read_body(request: Request, model: type[Body]) -> Body:
    """The body as `model`, the empty body as its defaults; 413 past the limit, 400 if it does not fit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CONTROL_BODY_BYTES:
        raise ControlBodyTooLarge(f"a body of {declared} bytes; the limit here is {MAX_CONTROL_BODY_BYTES}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CONTROL_BODY_BYTES:
            raise ControlBodyTooLarge(f"a body over {MAX_CONTROL_BODY_BYTES} bytes")
    if not body.strip():
        return model()
    try:
        return model.model_validate(parse_json(bytes(body)))
    except InvalidJSON as error:
        raise BadControlRequest(f"the request body is not valid JSON: {error}") from None
    except ValidationError as error:
        raise BadControlRequest(f"not a {model.__name__}: {describe_invalid(error.errors())}") from None


def control(request: Request) -> ModelControl:
    models: ModelControl = request.app.state.models
    return models


ModelName = Annotated[
    str,
    Path(
        description="a model folder's name in the model directory",
        examples=list(DEMO_MODELS.values()),
        openapi_examples={
            name: {"summary": f"the demo's {task} head", "value": name} for task, name in DEMO_MODELS.items()
        },
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
    ),
]


def optional_body(model: type[BaseModel], example: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI for an optional JSON body of `model` (the route reads it itself)."""
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": inline_schema(model), "example": example}},
        }
    }


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    reasons = {
        400: "A body that is not the protocol's request, or (load) the folder failed to load: why",
        401: "Missing or wrong API key",
        404: "Neither a loaded model nor a folder of the repository",
        413: f"A body over {MAX_CONTROL_BODY_BYTES} bytes",
        503: "The server is shutting down",
    }
    return {code: {"model": V2Error, "description": reasons[code]} for code in codes}


LOAD_DOC = (
    "Load the folder `{name}` of the model directory, or load it again: it is checked (manifest, "
    "checksum, outputs) and warmed up beside the version that serves now, then swapped in; requests in "
    "flight finish on the old version. Answers once the new version serves; a failure (400) leaves the "
    "old version serving. Loading takes no parameters here."
)
UNLOAD_DOC = (
    "Take the model out of service: later requests to it get 404 `model_not_found`; requests in flight "
    "finish, then its session is released. The repository poll leaves it unloaded until it is loaded "
    "again here. Unloading the last model turns readiness false."
)


def repository_router() -> APIRouter:
    router = APIRouter(
        prefix="/v2/repository",
        tags=["open inference protocol (v2)"],
        dependencies=[Depends(require_api_key)],
    )

    @router.post(
        "/index",
        summary="Every model served or in the model directory, with its state",
        operation_id="v2_repository_index",
        response_model_exclude_none=True,
        responses=errors(400, 401, 413),
        openapi_extra=optional_body(IndexRequest, {"ready": False}),
    )
    async def index(request: Request) -> list[IndexEntry]:
        asked = await read_body(request, IndexRequest)
        return await control(request).index(ready_only=asked.ready)

    @router.post(
        "/models/{name}/load",
        summary="Load or reload a model from its folder",
        description=LOAD_DOC,
        operation_id="v2_repository_load",
        response_model_exclude_none=True,
        responses=errors(400, 401, 413, 503),
        openapi_extra=optional_body(LoadRequest, {}),
    )
    async def load(name: ModelName, request: Request) -> ChangeAnswer:
        asked = await read_body(request, LoadRequest)
        if asked.parameters:
            unknown = ", ".join(sorted(asked.parameters))
            raise BadControlRequest(
                f"a model loads from its folder only: parameters not supported: {unknown}"
            )
        await control(request).load(name)
        return ChangeAnswer(name=name, load=True)

    @router.post(
        "/models/{name}/unload",
        summary="Unload a model: later requests to it get 404",
        description=UNLOAD_DOC,
        operation_id="v2_repository_unload",
        response_model_exclude_none=True,
        responses=errors(400, 401, 404, 413),
        openapi_extra=optional_body(UnloadRequest, {"parameters": {"unload_dependents": False}}),
    )
    async def unload(name: ModelName, request: Request) -> ChangeAnswer:
        await read_body(request, UnloadRequest)
        await control(request).unload(name)
        return ChangeAnswer(name=name, unload=True)

    return router
