"""The app factory: settings -> service (models, batchers) -> routes. No import-time state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app.api.handlers import install_handlers
from app.api.inference import inference_router
from app.api.openapi import contract_openapi
from app.api.repository import repository_router
from app.api.system import system_router
from app.api.v2 import is_infer_path, v2_router
from app.edge.http_methods import HeadAsGet
from app.edge.inflight import InflightLimit
from app.edge.middleware import RequestLedger, ServingMiddleware
from app.lifecycle.loading import RunGate
from app.lifecycle.model_control import ModelControl
from app.metrics import Metrics
from app.process.collector import freeze_startup_objects
from app.process.heap import trim_heap_every
from app.process.loop_lag import watch_loop_lag
from app.process.worker_threads import use_worker_threads
from app.service import Service
from app.settings import Settings
from app.tasks import TASKS
from app.tracing import Tracing

log = logging.getLogger("bertserve")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the server. Models load in the background after start: live at once, ready when warm."""
    settings = settings or Settings()
    metrics = Metrics()
    service = Service(settings, metrics)
    ledger = RequestLedger()
    tracing = Tracing.from_environment()
    models = ModelControl(service.registry, RunGate(settings))

    async def load_models() -> None:
        await models.start()
        log.info("%d startup objects frozen out of the garbage collector", freeze_startup_objects())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        workers = use_worker_threads(asyncio.get_running_loop(), settings.worker_threads)
        loading = asyncio.create_task(load_models(), name="load-models")
        trimming = asyncio.create_task(trim_heap_every(settings.heap_trim_interval_s), name="trim-heap")
        lag = watch_loop_lag(metrics.loop_lag, settings.loop_lag_interval_s)
        watching = asyncio.create_task(lag, name="loop-lag")
        try:
            yield
        finally:
            trimming.cancel()
            watching.cancel()
            if not loading.done():
                loading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loading
            await models.stop_polling()
            await service.registry.shutdown()
            await models.close()
            await asyncio.to_thread(tracing.shutdown)  # the spans still buffered are exported
            workers.shutdown(wait=False, cancel_futures=True)
            log.log(logging.WARNING if ledger.unanswered else logging.INFO, "shutdown: %s", ledger.summary())

    # /docs and /redoc from assets served here (under /static/docs): they work offline.
    app = FastAPIOffline(
        static_url="/static/docs",
        title="bertserve",
        version="0.1.0",
        summary="Fine-tuned BERT heads over HTTP: classify, pair, QA and NER, "
        "dynamically batched on ONNX Runtime",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.models = models
    app.state.settings = settings
    install_handlers(app, settings.retry_after_s)
    app.openapi = contract_openapi(app, settings, service.registry)  # type: ignore[method-assign]
    app.include_router(inference_router())
    app.include_router(system_router(protect_metadata=settings.protect_metadata))
    app.include_router(v2_router(protect_metadata=settings.protect_metadata))
    app.include_router(repository_router())
    app.add_middleware(HeadAsGet)
    app.add_middleware(
        ServingMiddleware,
        metrics=metrics,
        task_paths={f"/{name}": name for name in TASKS},
        max_body_bytes=settings.max_body_bytes,
        inflight_limit=InflightLimit(settings.max_inflight_requests, settings.inflight_horizon_s),
        retry_after_s=settings.retry_after_s,
        ledger=ledger,
        max_request_id_chars=settings.max_request_id_chars,
        is_inference_path=is_infer_path,
        api_key=settings.api_key.get_secret_value() if settings.api_key is not None else None,
        body_read_timeout_s=settings.body_read_timeout_s,
        max_uploading_requests=settings.max_uploading_requests,
        tracing=tracing,
    )
    return app
