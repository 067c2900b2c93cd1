"""Health probes, model listing and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.auth import require_api_key
from app.lifecycle.model_info import ModelsResponse, describe
from app.service import Service


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


MODEL_LINKS = {
    link: {
        "operationId": operation,
        "parameters": {"name": "$response.body#/models/0/name", **({"version": "1"} if versioned else {})},
        "description": f"{what} of the first model listed",
    }
    for link, operation, what, versioned in (
        ("ModelMetadata", "v2_model_metadata", "Open Inference Protocol metadata", False),
        ("ModelVersionMetadata", "v2_model_version_metadata", "Metadata of version 1", True),
        ("ModelReady", "v2_model_ready", "Readiness", False),
        ("ModelVersionReady", "v2_model_version_ready", "Readiness of version 1", True),
        ("ModelInfer", "v2_model_infer", "Inference", False),
        ("ModelVersionInfer", "v2_model_version_infer", "Inference with version 1", True),
        ("ModelLoad", "v2_repository_load", "Loading again (repository extension)", False),
        ("ModelUnload", "v2_repository_unload", "Unloading (repository extension)", False),
    )
}
"""OpenAPI links from /v1/models to the routes that take a model name (their operation ids are set
in app.api.v2): what clients and contract testers follow to reach a served model."""


def system_router(*, protect_metadata: bool = False) -> APIRouter:
    """Probes are always open (kubelets send no key); /v1/models and /metrics need the API key
    when `protect_metadata` is set."""
    router = APIRouter(tags=["system"])
    metadata = [Depends(require_api_key)] if protect_metadata else []

    @router.get("/health/live", summary="The process is up and serving HTTP")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @router.get(
        "/health/ready", summary="Every model is loaded and warmed up, and the server is not draining"
    )
    async def ready(request: Request) -> JSONResponse:
        service = _service(request)
        body = service.registry.readiness()
        if body["ready"]:
            return JSONResponse(body)
        return JSONResponse(
            body, status_code=503, headers={"Retry-After": str(service.settings.retry_after_s)}
        )

    @router.get(
        "/v1/models",
        summary="The models served: task, labels, precision, provider, parity, and the request limits",
        dependencies=metadata,
        response_model_exclude_unset=True,
        responses={200: {"description": "Every model, by name", "links": MODEL_LINKS}},
    )
    async def models(request: Request) -> ModelsResponse:
        return describe(_service(request).registry)

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False, dependencies=metadata)
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(_service(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
