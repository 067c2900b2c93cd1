"""Models changed without a restart: loads, unloads and swaps, asked for through the Open Inference
Protocol's repository extension (app.api.repository) or found by the repository poll (`model_poll_s`).

A load prepares the folder (manifest, checksum, session, warm-up) in a worker thread beside the model
that serves its name, starts its batcher, and puts it in the registry in one assignment: new requests
resolve to it, requests that already hold the old slot finish on the old batcher, which is stopped once
they are answered, and its session is released. A load that fails leaves the serving model as it is and
says why (the log, `load_errors` in /v1/models, bertserve_model_loads_total{outcome="failed"}). An unload
takes the name out of the registry at once (new requests get 404) and retires its slot the same way.
Changes happen one at a time; readiness does not turn false for a swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from app.contract.manifest import MANIFEST_FILE
from app.errors import Draining, ModelLoadError, ModelLoadFailed, ModelNotFound
from app.lifecycle.loading import RunGate, load_all, prepare_off_loop, start_serving
from app.lifecycle.registry import ModelRegistry, ModelSlot, ModelState
from app.metrics import Outcome
from app.process.collector import collect_frozen
from app.process.heap import malloc_trim
from app.settings import Settings

log = logging.getLogger("bertserve.models")

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A model name that can be loaded: a folder right under the model directory, no path, not hidden."""


# -- what a folder looks like ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """A model folder as the poll sees it: its manifest (which pins every variant's sha256) decides
    whether it is another model; its files' sizes and times whether it is still being written."""

    manifest_sha256: str
    files: tuple[tuple[str, int, int], ...]  # (name, size, mtime_ns), sorted


def fingerprint(folder: Path) -> Fingerprint | None:
    """The folder's fingerprint; None while it holds no readable manifest (not a model, or not yet)."""
    try:
        manifest = (folder / MANIFEST_FILE).read_bytes()
        files = tuple(sorted(file_stats(folder)))
    except OSError:
        return None
    return Fingerprint(hashlib.sha256(manifest).hexdigest(), files)


def file_stats(folder: Path) -> Iterator[tuple[str, int, int]]:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file():
                status = entry.stat()
                yield entry.name, status.st_size, status.st_mtime_ns


def scan(settings: Settings) -> dict[str, Fingerprint]:
    """Blocking (run it in a thread): the model folders, by name, with a manifest: the configured
    models, or every entry of the model directory that is not hidden. Quiet: it runs every poll, and
    startup's discovery has reported what cannot be read."""
    names = settings.models if settings.models is not None else listed(settings.model_dir)
    found: dict[str, Fingerprint] = {}
    for name in names:
        if (seen := fingerprint(settings.model_dir / name)) is not None:
            found[name] = seen
    return found


def listed(directory: Path) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return sorted(entry.name for entry in entries if not entry.name.startswith("."))
    except OSError:
        return []


@dataclass(frozen=True)
class Attempt:
    """The latest load of a folder: what it looked like then, and whether the load worked."""

    fingerprint: Fingerprint
    ok: bool


@dataclass(frozen=True)
class Changes:
    load: list[str]
    unload: list[str]


def plan_changes(
    found: Mapping[str, Fingerprint],
    previous: Mapping[str, Fingerprint],
    attempts: Mapping[str, Attempt],
    served: Collection[str],
    held_out: Collection[str],
) -> Changes:
    """What a poll does with the folders it `found`: load one that is new, whose manifest changed since
    it last loaded, or that changed at all since its last load failed; unload a served model whose
    folder, once seen, is gone. A folder acts only once two polls in a row saw it the same (so one being
    written is left alone), and a model unloaded through the API (`held_out`) is left alone."""
    load = []
    for name, now in sorted(found.items()):
        if name in held_out or previous.get(name) != now:
            continue
        attempt = attempts.get(name)
        if (
            attempt is None
            or (attempt.ok and attempt.fingerprint.manifest_sha256 != now.manifest_sha256)
            or (not attempt.ok and attempt.fingerprint != now)
        ):
            load.append(name)
    unload = sorted(
        name for name in served if name in attempts and name not in found and name not in previous
    )
    return Changes(load, unload)


# -- the repository index ----------------------------------------------------------------------------


class IndexState(StrEnum):
    """A model's state in the repository index (the protocol's names)."""

    READY = "READY"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"


class IndexEntry(BaseModel):
    """One model of the repository index (the protocol's shape)."""

    name: str
    version: str | None = Field(None, description='"1" for a model that is served (its only version)')
    state: IndexState
    reason: str = Field(description="why it is in that state; empty when READY")


def index_entry(
    registry: ModelRegistry, name: str, *, loading: set[str], retiring: set[str], held_out: set[str]
) -> IndexEntry:
    """`name`'s state: its slot's, else loading, being retired, or why it is not served."""
    slot = registry.slots.get(name)
    if slot is None:
        if name in retiring:
            return IndexEntry(name=name, state=IndexState.UNLOADING, reason="finishing the requests it holds")
        reason = registry.load_errors.get(name) or ("unloaded" if name in held_out else "not loaded")
        state = IndexState.LOADING if name in loading else IndexState.UNAVAILABLE
        return IndexEntry(name=name, state=state, reason=reason)
    if slot.state == ModelState.READY:
        reason = "a new version is loading beside it" if name in loading else ""
        return IndexEntry(name=name, version="1", state=IndexState.READY, reason=reason)
    if slot.state == ModelState.LOADING:
        return IndexEntry(name=name, state=IndexState.LOADING, reason="loading")
    reason = slot.error or slot.state.value
    return IndexEntry(name=name, version="1", state=IndexState.UNAVAILABLE, reason=reason)


# -- serving and retiring slots -------------------------------------------------------------------------


def swap_in(registry: ModelRegistry, slot: ModelSlot) -> ModelSlot | None:
    """Serve `slot` under its name from now on; the slot it replaced, if any (to be retired)."""
    old = registry.slots.get(slot.name)
    registry.slots[slot.name] = slot
    if old is not None:
        forget_info(registry, old)
    registry.mark_ready(slot)
    registry.update_ready()
    return old


def take_out(registry: ModelRegistry, name: str) -> ModelSlot:
    """Stop routing requests to `name` (they get 404 from now on); its slot, to be retired."""
    slot = registry.slots.pop(name)
    forget_info(registry, slot)
    with contextlib.suppress(KeyError):
        registry.metrics.model_ready.remove(name)
    registry.update_ready()
    registry.load_errors.pop(name, None)
    registry.metrics.model_unloads.labels(name).inc()
    log.info("model %s unloaded: new requests get 404; %d in flight finish on it", name, slot.users)
    return slot


def forget_info(registry: ModelRegistry, slot: ModelSlot) -> None:
    """Drop the bertserve_model_info series of a slot that no longer serves."""
    if slot.loaded is not None:
        loaded = slot.loaded
        labels = (slot.name, loaded.manifest.task, loaded.variant.precision, loaded.provider)
        with contextlib.suppress(KeyError):
            registry.metrics.model_info.remove(*labels)


def note_loaded(registry: ModelRegistry, slot: ModelSlot, *, swapped: bool) -> None:
    registry.load_errors.pop(slot.name, None)
    registry.metrics.model_loads.labels(slot.name, Outcome.OK).inc()
    log.info(
        "model %s %s in %.1f s (%d warm-up shapes)",
        slot.name,
        "swapped in" if swapped else "loaded",
        slot.load_seconds,
        slot.warmup_shapes,
    )


def note_failure(registry: ModelRegistry, name: str, reason: str) -> None:
    """A load failed: say why (log, /v1/models, metric); what served before serves on."""
    registry.load_errors[name] = reason
    registry.metrics.model_loads.labels(name, Outcome.FAILED).inc()
    serving = name in registry.slots and registry.slots[name].state == ModelState.READY
    log.error(
        "model %s: loading its folder failed: %s; %s",
        name,
        reason,
        "the version loaded before still serves" if serving else "it is not served",
    )


class Retirements:
    """Slots taken out of service: each is stopped once the requests that hold it are answered."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tasks: dict[asyncio.Task[None], str] = {}

    @property
    def names(self) -> set[str]:
        return set(self._tasks.values())

    def retire(self, slot: ModelSlot) -> None:
        task = asyncio.create_task(self._stop_when_answered(slot), name=f"retire-{slot.name}")
        self._tasks[task] = slot.name
        task.add_done_callback(self._tasks.pop)

    async def close(self) -> None:
        """Stop the batchers of the slots still being retired at once (shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _stop_when_answered(self, slot: ModelSlot) -> None:
        """Wait for the requests that hold the slot (up to their timeout and the drain timeout), stop
        its batcher, and release its session once the last of them is done."""
        settings = self._settings
        deadline = time.monotonic() + settings.request_timeout_s + settings.drain_timeout_s
        if slot.reloading is not None:
            slot.reloading.cancel()
        try:
            while slot.users and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if slot.batcher is not None:
                slot.batcher.stop_accepting()
                if not await slot.batcher.wait_idle(max(0.0, deadline - time.monotonic())):
                    log.error("model %s: the replaced version's queue did not drain in time", slot.name)
        finally:
            if slot.batcher is not None:
                await slot.batcher.close()
        while slot.users:  # its batcher answers them at once now (closed); their slot stays whole till then
            await asyncio.sleep(0.05)
        slot.batcher = slot.loaded = slot.context = None
        collect_frozen()  # the slot's cycles (batcher, observer, health) may have been frozen at startup
        if (trim := malloc_trim()) is not None:  # its pages back to the OS now, not at the next trim
            await asyncio.to_thread(trim, 0)
        log.info("model %s: its replaced or unloaded version is stopped and its session released", slot.name)


# -- the controller -----------------------------------------------------------------------------------


class ModelControl:
    """Loads, swaps and unloads models while the server runs, one change at a time."""

    def __init__(self, registry: ModelRegistry, gate: RunGate) -> None:
        self.registry = registry
        self.settings = registry.settings
        self._gate = gate
        self._lock = asyncio.Lock()
        self._attempts: dict[str, Attempt] = {}
        self._previous: dict[str, Fingerprint] = {}
        self._held_out: set[str] = set()  # unloaded through the API: the poll leaves them alone
        self._loading: set[str] = set()
        self._retirements = Retirements(self.settings)
        self._poll: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every model of the repository (app.lifecycle.loading), then poll it if `model_poll_s`
        is set."""
        async with self._lock:
            found = await asyncio.to_thread(scan, self.settings)
            await load_all(self.registry, self._gate)
            for name, seen in found.items():
                if (slot := self.registry.slots.get(name)) is not None:
                    self._attempts[name] = Attempt(seen, slot.state == ModelState.READY)
            self._previous = found
        if self.settings.model_poll_s > 0:
            log.info(
                "polling %s every %g s for model changes", self.settings.model_dir, self.settings.model_poll_s
            )
            self._poll = asyncio.create_task(self._poll_forever(), name="model-poll")

    async def stop_polling(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            await asyncio.gather(self._poll, return_exceptions=True)

    async def close(self) -> None:
        """Stop the slots still being retired (at shutdown, after the registry's)."""
        await self._retirements.close()

    # -- the repository extension -----------------------------------------------------------------

    async def load(self, name: str) -> None:
        """Load (or reload) the folder `name`; ModelLoadFailed says why it did not load."""
        if not MODEL_NAME.fullmatch(name):
            raise ModelLoadFailed(
                f"{name!r} is not a model name: letters, digits, '.', '_' or '-', at most 128"
            )
        if self.registry.draining:
            raise Draining("the server is shutting down", retry_after=self.settings.retry_after_s)
        async with self._lock:
            self._held_out.discard(name)
            reason = await self._load(name)
        if reason is not None:
            raise ModelLoadFailed(f"failed to load {name!r}: {reason}")

    async def unload(self, name: str) -> None:
        """Take `name` out of service; requests it is answering finish. A folder of the repository that
        is not loaded is unloaded already; any other name is ModelNotFound."""
        async with self._lock:
            if name in self.registry.slots:
                self._take_out(name)
            elif not await asyncio.to_thread(self._in_repository, name):
                raise ModelNotFound(f"unknown model {name!r}: neither loaded nor a folder of the repository")
            self._held_out.add(name)

    async def index(self, ready_only: bool = False) -> list[IndexEntry]:
        """Every model served or in the repository, with its state (the protocol's index)."""
        folders = await asyncio.to_thread(scan, self.settings)
        retiring = self._retirements.names
        entries = [
            index_entry(
                self.registry, name, loading=self._loading, retiring=retiring, held_out=self._held_out
            )
            for name in sorted({*folders, *self.registry.slots, *retiring})
        ]
        return [entry for entry in entries if entry.state == "READY" or not ready_only]

    def _in_repository(self, name: str) -> bool:
        valid = MODEL_NAME.fullmatch(name) is not None
        return valid and fingerprint(self.settings.model_dir / name) is not None

    # -- the poll -----------------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.model_poll_s)
            try:
                await self.poll_once()
            except Exception:  # one bad scan must not end the polling
                log.exception("model repository poll failed")

    async def poll_once(self) -> None:
        """Scan the repository and apply what changed (see plan_changes)."""
        async with self._lock:
            if self.registry.draining:
                return
            found = await asyncio.to_thread(scan, self.settings)
            changes = plan_changes(
                found, self._previous, self._attempts, list(self.registry.slots), self._held_out
            )
            self._previous = found
            for name in changes.unload:
                log.info("model %s: its folder is gone; unloading it", name)
                self._take_out(name)
            for name in changes.load:
                await self._load(name)
            for name in [
                n for n in self.registry.load_errors if n not in found and n not in self.registry.slots
            ]:
                del self.registry.load_errors[name]  # its folder is gone: nothing left to report

    # -- changes (under the lock) ---------------------------------------------------------------------

    async def _load(self, name: str) -> str | None:
        """Load `name` beside what serves it and swap it in; the reason it failed, or None."""
        seen = await asyncio.to_thread(fingerprint, self.settings.model_dir / name)
        started = time.perf_counter()
        self._loading.add(name)
        try:
            ready = await prepare_off_loop(name, self.settings)
        except Exception as error:  # every failure leaves the serving model as it is
            reason = (
                error.message if isinstance(error, ModelLoadError) else f"{type(error).__name__}: {error}"
            )
            if seen is not None:
                self._attempts[name] = Attempt(seen, False)
            note_failure(self.registry, name, reason)
            return reason
        finally:
            self._loading.discard(name)
        if self.registry.draining:  # shutting down: what is served now is what gets drained
            return "the server is shutting down"
        slot = ModelSlot(name)
        start_serving(self.registry, slot, ready, self._gate)
        slot.load_seconds = time.perf_counter() - started
        replaced = swap_in(self.registry, slot)
        if replaced is not None:
            self._retirements.retire(replaced)
        if seen is not None:
            self._attempts[name] = Attempt(seen, True)
        note_loaded(self.registry, slot, swapped=replaced is not None)
        return None

    def _take_out(self, name: str) -> None:
        self._attempts.pop(name, None)
        self._retirements.retire(take_out(self.registry, name))
