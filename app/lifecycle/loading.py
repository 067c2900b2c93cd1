"""Loading the models into the registry's slots: open each, check it fits its task, settle its batch
limits, warm it up, put its runner behind the CPU run gate and start its batcher. A model that
fails is marked failed with the reason; it never stops the others from loading. A model whose
batches keep failing later has its session re-opened the same way, with a backoff, until it works."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.batching import Backlog, BatchRunner, DynamicBatcher
from app.batching.limits import BatchLimits
from app.errors import ModelLoadError
from app.faults import rewrapped, with_faults
from app.lifecycle.observer import MetricsObserver
from app.lifecycle.registry import ModelRegistry, ModelSlot
from app.metrics import Outcome
from app.runtime.gate import FairGate, GatedRunner, cpu_permits
from app.runtime.repository import LoadedModel, discover, load_model
from app.runtime.session import SessionRunner
from app.settings import Settings
from app.tasks import TASKS
from app.tasks.base import ModelContext, Task

log = logging.getLogger("bertserve.service")

CPU_BATCH_TOKENS = 2048
"""The padded-token budget of a CPU batch when none is configured (16384 is the CUDA default)."""


@dataclass(frozen=True)
class ReadyModel:
    """A loaded, checked and warmed-up model with the limits its batcher gets."""

    loaded: LoadedModel
    limits: BatchLimits
    warmup_shapes: int


def check_outputs(name: str, task: Task[Any, Any], outputs: Sequence[str]) -> None:
    """A model must give every output its task reads; say which are missing at load, not per request."""
    missing = [output for output in task.output_names if output not in outputs]
    if missing:
        raise ModelLoadError(
            f"{name}: the {task.name} task reads outputs {missing} the model does not have"
            f" (its outputs: {list(outputs)})"
        )


def batch_limits(name: str, loaded: LoadedModel, settings: Settings) -> BatchLimits:
    limits = settings.limits_for(name)
    if loaded.onnx.device == "cpu" and "max_batch_tokens" not in limits.model_fields_set:
        # On CPU a big batch is no faster per token, and it holds the cores (the run gate)
        # while every other model's queue ages: keep batches short unless told otherwise.
        limits = limits.model_copy(update={"max_batch_tokens": CPU_BATCH_TOKENS})
    if loaded.onnx.cuda_graphs and limits.max_concurrent_batches != 1:
        limits = limits.model_copy(update={"max_concurrent_batches": 1})
    return limits


def prepare_model(name: str, settings: Settings) -> ReadyModel:
    """Blocking (run it in a thread): load, check and warm up."""
    loaded = load_model(name, settings)
    task = TASKS.get(loaded.manifest.task)
    if task is None:
        raise ModelLoadError(
            f"{name}: task {loaded.manifest.task!r} is not served here (tasks: {', '.join(TASKS)})"
        )
    check_outputs(name, task, loaded.onnx.output_names)
    limits = batch_limits(name, loaded, settings)
    shapes = 0
    if settings.warmup:
        shapes = loaded.onnx.warmup(limits.max_batch_size, limits.max_batch_tokens)
    return ReadyModel(loaded, limits, shapes)


class RunGate:
    """One fair gate shared by every CPU model, so concurrent batches do not oversubscribe the cores,
    and the backlog of their queues, which admission reads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._gate: FairGate | None = None
        self._backlog: Backlog | None = None

    def _gated(self, onnx: SessionRunner) -> bool:
        return self._settings.max_concurrent_runs > 0 or onnx.device == "cpu"

    def wrap(self, onnx: SessionRunner) -> BatchRunner[Any, Any, Any]:
        """The model's runner behind the shared gate (CPU), or as it is (CUDA, or a gate of 0)."""
        if not self._gated(onnx):
            return onnx
        if self._gate is None:
            permits = self._settings.max_concurrent_runs or cpu_permits(self._settings.intra_op_threads)
            self._gate = FairGate(permits)
            self._backlog = Backlog(permits)
        return GatedRunner(onnx, self._gate)

    def backlog(self, onnx: SessionRunner) -> Backlog | None:
        """The gated models' shared backlog (after `wrap`); None for a model that runs on its own."""
        return self._backlog if self._gated(onnx) else None


@dataclass(frozen=True)
class Backoff:
    """Waits that double from `first_s` up to `max_s`."""

    first_s: float
    max_s: float

    def delay(self, tries: int) -> float:
        """The wait before try number `tries` + 1 (`tries` have failed)."""
        return min(self.max_s, self.first_s * 2.0 ** min(tries, 64))


async def load_all(registry: ModelRegistry, gate: RunGate | None = None) -> None:
    """Load, warm up and start every model; failures are recorded, not raised. `gate`: the one that
    models loaded later share (app.lifecycle.model_control), else a new one."""
    settings = registry.settings
    found = discover(settings)
    for entry, reason in found.errors.items():
        log.warning("model directory entry %s skipped: %s", entry, reason)
        registry.metrics.discovery_errors.labels(entry).set(1)
    registry.discovery_errors = dict(found.errors)
    names = found.names
    if not names:
        log.error("no models found in %s", settings.model_dir.resolve())
    for name in names:
        registry.slots[name] = ModelSlot(name)
    gate = gate or RunGate(settings)
    backoff = Backoff(*settings.reload_backoff_s)
    registry.start_reload = lambda slot: start_reload(registry, slot, gate, backoff)
    for name in names:
        try:
            await load_one(registry, registry.slots[name], gate)
        except Exception as error:  # never let one model end the loading of the others
            registry.mark_failed(registry.slots[name], f"{type(error).__name__}: {error}")
            log.exception("model %s failed to load", name)
    registry.loading_done()


async def prepare_off_loop(name: str, settings: Settings) -> ReadyModel:
    """`prepare_model` in a worker thread; raises what it raises."""
    ready = await asyncio.to_thread(prepare_model, name, settings)
    # this thread's tokenizer clone, built off the hot path (a broken tokenizer fails here)
    ready.loaded.encoder.encode("warm up", max_length=8)
    return ready


async def load_one(registry: ModelRegistry, slot: ModelSlot, gate: RunGate) -> None:
    started = time.perf_counter()
    settings = registry.settings
    try:
        ready = await prepare_off_loop(slot.name, settings)
    except ModelLoadError as error:
        registry.mark_failed(slot, error.message)
        log.error("model %s failed to load: %s", slot.name, error.message)
        return
    except Exception as error:  # an unexpected failure still must not take the others down
        registry.mark_failed(slot, f"{type(error).__name__}: {error}")
        log.exception("model %s failed to load", slot.name)
        return
    start_serving(registry, slot, ready, gate)
    slot.load_seconds = time.perf_counter() - started
    registry.mark_ready(slot)
    log.info("model %s ready in %.1f s (%d warm-up shapes)", slot.name, slot.load_seconds, slot.warmup_shapes)


def start_serving(registry: ModelRegistry, slot: ModelSlot, ready: ReadyModel, gate: RunGate) -> None:
    """Give the slot its prepared model and a started batcher (behind the gate and faults)."""
    loaded, settings = ready.loaded, registry.settings
    slot.loaded, slot.warmup_shapes = loaded, ready.warmup_shapes
    slot.context = ModelContext(slot.name, loaded.manifest, loaded.encoder)
    runner = with_faults(gate.wrap(loaded.onnx), settings.faults.get(slot.name))
    observer = MetricsObserver(registry.metrics, slot.name, health=registry.health(slot))
    slot.batcher = DynamicBatcher(
        slot.name, runner, ready.limits, observer=observer, backlog=gate.backlog(loaded.onnx)
    )
    slot.batcher.start()


def start_reload(
    registry: ModelRegistry, slot: ModelSlot, gate: RunGate, backoff: Backoff
) -> asyncio.Task[None]:
    """Start re-opening a failed model's session, in the background, until it works."""
    slot.next_reload = time.monotonic() + backoff.delay(slot.reload_tries)
    return asyncio.create_task(reload_until_ready(registry, slot, gate, backoff), name=f"reload-{slot.name}")


async def reload_until_ready(
    registry: ModelRegistry, slot: ModelSlot, gate: RunGate, backoff: Backoff
) -> None:
    """Re-open, re-check (the file's checksum as at load) and warm up the model's session, after a
    backoff that doubles with every re-open until a batch runs again (a session that opens but then
    fails its batches does not cycle at the first step); then its batcher runs on the new session."""
    failure = slot.error or "its batches failed"
    tries = 0
    while True:
        await asyncio.sleep(max(0.0, slot.next_reload - time.monotonic()))
        slot.reload_tries += 1
        try:
            fresh = await asyncio.to_thread(reopen_session, slot, registry.settings)
            use_session(slot, fresh, gate)
        except Exception as error:  # every kind of failure is retried; the reason is kept for /v1/models
            tries += 1
            reason = (
                error.message if isinstance(error, ModelLoadError) else f"{type(error).__name__}: {error}"
            )
            wait = backoff.delay(slot.reload_tries)
            slot.next_reload = time.monotonic() + wait
            slot.error = f"{failure}; {tries} tries failed, the last: {reason}"
            registry.metrics.model_reloads.labels(slot.name, Outcome.FAILED).inc()
            log.error(
                "model %s: re-opening its session failed (%s); next try in %.0f s", slot.name, reason, wait
            )
            continue
        registry.metrics.model_reloads.labels(slot.name, Outcome.OK).inc()
        registry.health(slot).reloaded()
        log.warning("model %s: its session was re-opened and warmed up; it serves again", slot.name)
        return


def reopen_session(slot: ModelSlot, settings: Settings) -> LoadedModel:
    """Blocking (run it in a thread): the model's folder loaded, checked and warmed up anew; it must
    be the model that was loaded (same manifest, so the same checksums)."""
    assert slot.loaded is not None
    fresh = prepare_model(slot.name, settings).loaded
    if fresh.manifest != slot.loaded.manifest:
        raise ModelLoadError(
            f"{slot.name}: its manifest changed since it was loaded; load the new one"
            f" (POST /v2/repository/models/{slot.name}/load, or the repository poll)"
        )
    return fresh


def use_session(slot: ModelSlot, fresh: LoadedModel, gate: RunGate) -> None:
    """The slot's batcher runs its next batches on `fresh`'s session (behind the same gate and faults)."""
    assert slot.loaded is not None and slot.batcher is not None
    slot.batcher.use_runner(lambda current: rewrapped(current, gate.wrap(fresh.onnx)))
    slot.loaded = dataclasses.replace(
        slot.loaded, variant=fresh.variant, onnx=fresh.onnx, fell_back_to_cpu=fresh.fell_back_to_cpu
    )
