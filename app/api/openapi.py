"""The OpenAPI document as this server enforces it: its own request limits and model names.

The request models carry static ceilings (they keep validation cheap whatever the settings); the
settings `max_items_per_request` and `max_text_chars` are lower, and a request over them gets 413.
The document states the configured values instead, as `maxItems` on every list of inputs and
`maxLength` on every text. A task route's `model` lists the loaded models that serve its task (a
model of another task is refused): the document is rebuilt when the loaded models change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from app.api.huggingface import hf_request_model
from app.lifecycle.registry import ModelRegistry
from app.settings import Settings
from app.tasks import TASKS
from app.tasks.common import MAX_INPUTS_CEILING, NON_BLANK


def with_request_limits(node: Any, settings: Settings) -> None:
    """Every list of inputs and every text in a schema (in place) bounded as `settings` bound them."""
    if isinstance(node, dict):
        if node.get("type") == "array" and node.get("maxItems") == MAX_INPUTS_CEILING:
            node["maxItems"] = settings.max_items_per_request
        if node.get("type") == "string" and node.get("pattern") == NON_BLANK:
            node["maxLength"] = settings.max_text_chars
        for value in node.values():
            with_request_limits(value, settings)
    elif isinstance(node, list):
        for value in node:
            with_request_limits(value, settings)


def with_model_names(document: dict[str, Any], served: dict[str, list[str]]) -> None:
    """Each task route's `model` (both body formats) as the names of the models serving its task."""
    schemas = document.get("components", {}).get("schemas", {})
    for task in TASKS.values():
        names = served.get(task.name, [])
        named: dict[str, Any] = {"type": "string", "enum": names} if names else {"not": {}}
        for component in (task.request_model.__name__, hf_request_model(task).__name__):
            field = schemas.get(component, {}).get("properties", {}).get("model")
            if field is not None:
                field.pop("type", None)
                field["anyOf"] = [named, {"type": "null"}]
                field["description"] = MODEL_DESCRIPTION.format(task=task.name)


MODEL_DESCRIPTION = (
    "the model to use: one of the loaded models serving {task} (GET /v1/models lists them; "
    "another name is 404, a model of another task 422); null: the task's default model"
)


def served_models(registry: ModelRegistry) -> dict[str, list[str]]:
    """task -> the names of the loaded models that serve it, sorted."""
    served: dict[str, list[str]] = {}
    for name, slot in sorted(registry.slots.items()):
        if slot.context is not None:
            served.setdefault(slot.context.manifest.task, []).append(name)
    return served


def contract_openapi(
    app: FastAPI, settings: Settings, registry: ModelRegistry
) -> Callable[[], dict[str, Any]]:
    """`app.openapi` for `app`: FastAPI's document with the configured limits and the loaded models,
    built again only when the loaded models change."""
    build = app.openapi
    built_for: dict[str, list[str]] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal built_for
        served = served_models(registry)
        if app.openapi_schema is None or built_for != served:
            app.openapi_schema = None
            document = build()  # build() keeps its document in app.openapi_schema
            with_request_limits(document, settings)
            with_model_names(document, served)
            built_for = served
        assert app.openapi_schema is not None
        return app.openapi_schema

    return openapi
