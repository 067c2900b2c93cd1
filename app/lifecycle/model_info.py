"""What /v1/models answers: each model's state and, once loaded, its task, labels, precision,
provider, limits and parity. Keys without a value for a model (no error, not loaded) are left out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.batching.limits import BatchLimits
from app.contract.manifest import Accuracy, AccuracyBudget, EvalData, Parity, Source
from app.lifecycle.registry import ModelRegistry, ModelSlot, ModelState


class BatchingInfo(BatchLimits):
    """The batcher's limits and how many items it has queued now."""

    queue_items: int


class ModelInfo(BaseModel):
    name: str
    state: ModelState
    error: str | None = Field(None, description="why the model failed or is restarting")
    crashes: int | None = Field(None, description="batcher crashes since start (only if any)")
    last_crash: str | None = None
    reloads: int | None = Field(
        None, description="times its session was re-opened after its batches kept failing (only if any)"
    )
    last_load_error: str | None = Field(
        None, description="why the latest load of its folder failed; the version loaded before serves"
    )
    task: str | None = None
    default: bool | None = Field(None, description="the model that serves its task when none is named")
    architecture: str | None = None
    model_type: str | None = None
    inputs: list[str] | None = None
    fusions: list[str] | None = None
    labels: list[str] | None = None
    problem_type: str | None = None
    max_length: int | None = Field(
        None,
        description="most tokens per input: the largest QA max_seq_len this model accepts, and its NER "
        "windows (stride at most half of it less the special tokens); longer inputs are truncated or "
        "split into windows",
    )
    precision: str | None = None
    provider: str | None = None
    fell_back_to_cpu: bool | None = None
    io_binding: bool | None = None
    shape_buckets: bool | None = None
    cuda_graphs: bool | None = None
    parity: Parity | None = None
    accuracy: Accuracy | None = Field(
        None,
        description="the served variant's answers on the labelled evaluation data beside PyTorch fp32's "
        "(null when the model was exported without --eval-data)",
    )
    evaluation: EvalData | None = Field(None, description="the labelled data `accuracy` was measured on")
    budget: AccuracyBudget | None = Field(None, description="the accuracy budget int8 was held to at export")
    one_sequence_per_run: bool | None = Field(
        None,
        description="the variant runs each sequence alone (dynamic int8): an answer never depends on what "
        "shares its batch",
    )
    fused_ops: dict[str, int] | None = None
    batching: BatchingInfo | None = None
    source: Source | None = None
    load_seconds: float | None = None


class RequestLimits(BaseModel):
    """What one request may hold on this server (its settings); over a limit is 413. The OpenAPI
    document states the first two as maxItems and maxLength."""

    max_items_per_request: int = Field(description="most inputs (texts, pairs, questions) per request")
    max_text_chars: int = Field(description="longest text, in characters")
    max_windows_per_request: int = Field(
        description="most windows a request may need after tokenization (QA and NER split long texts)"
    )
    max_body_bytes: int = Field(description="largest request body")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    limits: RequestLimits = Field(description="what one request may hold, the same for every model")
    discovery_errors: dict[str, str] | None = Field(
        None, description="entries of the model directory that could not be read, skipped (only if any)"
    )
    load_errors: dict[str, str] | None = Field(
        None,
        description="model folders whose latest load after startup (load endpoint or poll) failed: why "
        "(only if any); a model served before keeps serving",
    )


def describe(registry: ModelRegistry) -> ModelsResponse:
    """Every model, by name, and the model directory's unreadable entries."""
    settings = registry.settings
    listing: dict[str, Any] = {
        "models": [model_info(registry, slot) for _, slot in sorted(registry.slots.items())],
        "limits": RequestLimits(
            max_items_per_request=settings.max_items_per_request,
            max_text_chars=settings.max_text_chars,
            max_windows_per_request=settings.max_windows_per_request,
            max_body_bytes=settings.max_body_bytes,
        ),
    }
    if registry.discovery_errors:
        listing["discovery_errors"] = registry.discovery_errors
    if registry.load_errors:
        listing["load_errors"] = registry.load_errors
    return ModelsResponse(**listing)


def model_info(registry: ModelRegistry, slot: ModelSlot) -> ModelInfo:
    entry: dict[str, Any] = {"name": slot.name, "state": slot.state}
    if slot.error:
        entry["error"] = slot.error
    if slot.crashes:
        entry["crashes"] = slot.crashes
        entry["last_crash"] = slot.last_crash
    if slot.reloads:
        entry["reloads"] = slot.reloads
    if slot.name in registry.load_errors:
        entry["last_load_error"] = registry.load_errors[slot.name]
    if slot.loaded is not None and slot.batcher is not None:
        manifest, variant, onnx = slot.loaded.manifest, slot.loaded.variant, slot.loaded.onnx
        entry |= {
            "task": manifest.task,
            "default": registry.default_model(manifest.task) == slot.name,
            "architecture": manifest.architecture,
            "model_type": manifest.model_type,
            "inputs": manifest.input_names,
            "fusions": manifest.fusions,
            "labels": [manifest.id2label[i] for i in sorted(manifest.id2label)],
            "problem_type": manifest.problem_type,
            "max_length": manifest.max_length,
            "precision": variant.precision,
            "provider": slot.loaded.provider,
            "fell_back_to_cpu": slot.loaded.fell_back_to_cpu,
            "io_binding": onnx.io_binding,
            "shape_buckets": onnx.buckets is not None,
            "cuda_graphs": onnx.cuda_graphs,
            "parity": variant.parity.model_dump(),
            "accuracy": variant.accuracy.model_dump() if variant.accuracy else None,
            "evaluation": manifest.evaluation.model_dump() if manifest.evaluation else None,
            "budget": manifest.budget.model_dump() if manifest.budget else None,
            "one_sequence_per_run": onnx.per_sequence,
            "fused_ops": variant.fused_ops,
            "batching": {"queue_items": slot.batcher.queue_depth, **slot.batcher.limits.model_dump()},
            "source": manifest.source.model_dump(),
            "load_seconds": round(slot.load_seconds, 3),
        }
    # validated from plain values, so every nested field counts as set and is kept by exclude_unset
    return ModelInfo.model_validate(entry)
