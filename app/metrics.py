"""Every Prometheus metric of the server, declared once, on a registry per app."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256)
TOKEN_BUCKETS = (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
RATIO_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Outcome(StrEnum):
    """The `outcome` label of the load and reload counters."""

    OK = "ok"
    FAILED = "failed"


@dataclass
class Metrics:
    """The metric families; one instance per app, on its own registry (tests build many apps)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "bertserve_requests", "Requests answered, by status code", ["model", "task", "code"], registry=r
        )
        self.request_duration = Histogram(
            "bertserve_request_duration_seconds",
            "Whole request latency",
            ["model", "task"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokenize = Histogram(
            "bertserve_tokenize_seconds",
            "Tokenization time per request",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "bertserve_queue_wait_seconds",
            "Time an item waits before its batch runs, its batch's wait for a turn on shared cores included",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "bertserve_inference_seconds",
            "ONNX Runtime time per batch, from when its turn came",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "bertserve_batch_size", "Items per batch", ["model"], buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "bertserve_batch_tokens", "Padded tokens per batch", ["model"], buckets=TOKEN_BUCKETS, registry=r
        )
        self.padding_ratio = Histogram(
            "bertserve_padding_ratio",
            "Share of a batch's tokens that are padding",
            ["model"],
            buckets=RATIO_BUCKETS,
            registry=r,
        )
        self.queue_items = Gauge("bertserve_queue_items", "Items waiting in the queue", ["model"], registry=r)
        self.inflight = Gauge("bertserve_inflight_requests", "Requests in progress", registry=r)
        self.truncated = Counter(
            "bertserve_truncated_inputs", "Inputs cut to the model's maximum length", ["model"], registry=r
        )
        self.rejected = Counter(
            "bertserve_rejected", "Requests or items refused, by reason", ["model", "reason"], registry=r
        )
        self.failed_batches = Counter(
            "bertserve_failed_batches",
            "Batches that failed to pad or run (their items got 500)",
            ["model"],
            registry=r,
        )
        self.batcher_crashes = Counter(
            "bertserve_batcher_crashes",
            "Times a model's batching loop or runner thread died and was restarted",
            ["model", "component"],
            registry=r,
        )
        self.internal_errors = Counter(
            "bertserve_internal_errors",
            "Unexpected errors answered with 500 internal_error",
            registry=r,
        )
        self.model_info = Gauge(
            "bertserve_model_info",
            "Loaded models: 1 per model with its task, precision and provider",
            ["model", "task", "precision", "provider"],
            registry=r,
        )
        self.model_ready = Gauge(
            "bertserve_model_ready", "1 when the model is loaded and warmed up", ["model"], registry=r
        )
        self.ready = Gauge(
            "bertserve_ready", "1 when every model is ready and the server is not draining", registry=r
        )
        self.model_reloads = Counter(
            "bertserve_model_reloads",
            "Tries to re-open the session of a model whose batches kept failing, by outcome (ok, failed)",
            ["model", "outcome"],
            registry=r,
        )
        self.model_loads = Counter(
            "bertserve_model_loads",
            "Loads of a model folder after startup (load endpoint or poll), by outcome (ok, failed)",
            ["model", "outcome"],
            registry=r,
        )
        self.model_unloads = Counter(
            "bertserve_model_unloads",
            "Models taken out of service after startup (unload endpoint, or folder removed under the poll)",
            ["model"],
            registry=r,
        )
        self.discovery_errors = Gauge(
            "bertserve_discovery_errors",
            "Entries of the model directory that could not be read at startup (skipped): 1 per entry",
            ["entry"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "bertserve_event_loop_lag_seconds",
            "How much later than asked the event loop woke from a short sleep (it was busy or blocked)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
