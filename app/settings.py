"""Every knob of the server, read from `BERTSERVE_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.batching.limits import BatchLimits
from app.faults import FaultSpec
from app.logs import LogFormat
from app.tasks.common import MAX_INPUTS_CEILING


class RuntimeOptions(BaseModel):
    """Where and how ONNX Runtime runs the models (part of Settings: flat `BERTSERVE_*` names)."""

    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="auto: CUDA when onnxruntime offers it and it works, else CPU"
    )
    allow_cpu_fallback: bool = Field(
        False,
        description="when CUDA is wanted (device=cuda, or auto on a GPU build) but a session cannot use it, "
        "run on CPU instead of failing the model (logged loudly)",
    )
    precision: Literal["auto", "fp32", "fp16", "int8"] = Field(
        "auto",
        description="auto: fp16 on CUDA; on CPU int8 where the export found it within its accuracy budget "
        "(`default` in the manifest), else fp32; or one precision by name",
    )
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads; 0 = one per core")
    inter_op_threads: int = Field(1, ge=1, description="ONNX Runtime inter-op threads")
    max_concurrent_runs: int = Field(
        0,
        ge=0,
        description="batches of all models running at once; 0 = auto: on CPU cores // intra_op_threads "
        "(models take turns instead of oversubscribing the cores), on CUDA no limit",
    )
    thread_spinning: bool = Field(
        False, description="let ONNX Runtime worker threads spin between runs (faster runs, busier cores)"
    )
    cpu_arena: Literal["shared", "per-model", "off"] = Field(
        "shared",
        description="ONNX Runtime's CPU memory arena: one for all models (holds the peak of the batches "
        "running at once; stays flat under mixed traffic), one per model (the sum of every model's peak, "
        "grows in steps) or none (least memory at rest, slower allocation, heap fragmentation)",
    )
    cpu_arena_initial_mb: int = Field(
        256,
        ge=1,
        le=65536,
        description="first region of the shared CPU arena (resident only once touched): big enough for the "
        "costliest batch, so the arena does not grow new regions under traffic",
    )
    worker_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="threads for the event loop's blocking work (tokenizing long texts, QA post-processing), "
        "all started at boot so the thread count stays flat; 0 = cores + 4 (at most 32)",
    )
    heap_trim_interval_s: float = Field(
        30.0,
        ge=0,
        description="every so many seconds give freed heap pages back to the OS (glibc malloc_trim); "
        "0 = never. Without it resident memory creeps up under mixed traffic although nothing leaks",
    )
    cuda_tf32: bool = Field(
        False, description="allow TF32 matmuls on CUDA (faster, drifts from PyTorch fp32)"
    )
    io_binding: Literal["auto", "on", "off"] = Field(
        "auto", description="bind inputs and outputs to device buffers; auto = on with CUDA"
    )
    shape_buckets: Literal["auto", "on", "off"] = Field(
        "auto", description="pad batches to a fixed set of (batch, length) shapes; auto = on with CUDA"
    )
    batch_buckets: list[int] = Field(
        [1, 2, 4, 8, 16, 32, 64, 128, 256], description="batch sizes a bucketed batch is padded up to"
    )
    length_buckets: list[int] = Field(
        [16, 32, 64, 128, 256, 384, 512], description="sequence lengths a bucketed batch is padded up to"
    )
    cuda_graphs: bool = Field(
        False, description="capture a CUDA graph per shape bucket at warm-up (needs shape_buckets)"
    )
    warmup: bool = Field(True, description="run representative shapes before reporting ready")


class RequestHandling(BaseModel):
    """What one request may cost, how long it may wait, who may send it, and how a model that keeps
    failing is taken out and re-opened (part of Settings: flat `BERTSERVE_*` names)."""

    request_timeout_s: float = Field(30.0, gt=0, description="a request still waiting after this gets 504")
    max_body_bytes: int = Field(2_000_000, ge=1, description="largest accepted request body")
    max_items_per_request: int = Field(
        256, ge=1, le=MAX_INPUTS_CEILING, description="most texts (or pairs, questions) per request (<= 4096)"
    )
    max_text_chars: int = Field(50_000, ge=1, description="longest accepted text, in characters")
    max_windows_per_request: int = Field(
        512,
        ge=1,
        description="most windows one request may need (QA and NER split long texts into windows); "
        "counted from the token counts before any window is built, more get 413",
    )
    inline_tokenize_chars: int = Field(
        2000,
        ge=0,
        description="requests of fewer characters are tokenized on the event loop, and post-processed "
        "there when their items hold few tokens (and few QA spans); larger ones in a worker thread",
    )
    max_inflight_requests: int = Field(
        1024, ge=1, description="requests in progress beyond which new ones get 503"
    )
    body_read_timeout_s: float = Field(
        10.0, gt=0, description="an inference body not fully in this long after reading began: 408, closed"
    )
    max_uploading_requests: int = Field(
        256, ge=1, description="inference bodies still arriving beyond which another slow one gets 503"
    )
    inflight_horizon_s: float = Field(
        2.0,
        ge=0,
        description="while the server answers slowly, in-flight requests are capped at what it answered "
        "per second (last 5 s) x this (at least 128): new ones get 503 before their body is read; 0 = off",
    )
    api_key: SecretStr | None = Field(
        None, description="when set, inference endpoints require `Authorization: Bearer <key>`"
    )
    protect_metadata: bool = Field(
        False,
        description="with api_key set, /v1/models, /metrics, GET /v2 and the v2 model metadata need the key "
        "too (health probes stay open, the v2 ones included; Prometheus then scrapes with the key)",
    )
    max_request_id_chars: int = Field(
        128, ge=8, description="a longer or non-printable x-request-id is replaced by a generated one"
    )
    retry_after_s: int = Field(1, ge=1, description="Retry-After sent with 429 and 503")
    max_consecutive_failures: int = Field(
        5, ge=0, description="failed batches in a row that fail a model and re-open its session; 0 = never"
    )
    reload_backoff_s: tuple[PositiveFloat, PositiveFloat] = Field(
        (1.0, 60.0), description="first and longest wait before re-opening a failed model's session"
    )
    loop_lag_interval_s: float = Field(0.1, ge=0, description="event-loop lag sampling period; 0 = off")

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, value: object) -> object:
        """`BERTSERVE_API_KEY=` (empty, as compose and Helm often pass it) means no key."""
        return None if value == "" else value


class Settings(BaseSettings, RuntimeOptions, RequestHandling):
    """Server settings. Nested fields use `__`, e.g. BERTSERVE_BATCH__MAX_BATCH_SIZE=32."""

    model_config = SettingsConfigDict(env_prefix="BERTSERVE_", env_nested_delimiter="__", extra="ignore")

    model_dir: Path = Field(Path("models"), description="the model repository: one folder per model")
    models: list[str] | None = Field(
        None, description="names of the models to load (JSON list); all folders in model_dir when unset"
    )
    model_poll_s: float = Field(
        0.0,
        ge=0,
        description="every so many seconds rescan model_dir: a new or changed folder (its manifest) is "
        "loaded beside the serving one and swapped in, a removed one unloaded; 0 = off",
    )
    default_models: dict[str, str] = Field(
        default_factory=dict,
        description='model per task when a request names none, e.g. {"classify": "sst2"}; '
        "else the first model of that task by name",
    )

    batch: BatchLimits = Field(default_factory=BatchLimits, description="batching defaults for every model")
    model_batch: dict[str, BatchLimits] = Field(
        default_factory=dict, description="per-model batching overrides, by model name (JSON)"
    )

    faults: dict[str, FaultSpec] = Field(
        default_factory=dict,
        description="TEST ONLY: per-model injected batch failures, e.g. "
        '{"sst2": {"fail_run_every": 10}}; never set in production',
    )

    host: str = Field("0.0.0.0", description="address the server listens on")
    port: int = Field(8000, ge=1, le=65535, description="port the server listens on")
    log_level: str = Field("info", description="log level")
    log_format: LogFormat = Field(
        LogFormat.text,
        description="text, or json: one object per line (time, level, logger, message, request_id, "
        "trace_id and span_id, model), uvicorn's lines and access log included",
    )
    access_log: bool = Field(
        False, description="log one line per HTTP request (uvicorn's access log, with its request id)"
    )
    keep_alive_s: float = Field(
        75.0,
        gt=0,
        description="how long an idle keep-alive connection stays open; longer than load balancers' "
        "idle timeouts (60 s on most), so the server never closes one a client is about to reuse",
    )
    drain_timeout_s: float = Field(
        25.0, ge=0, description="on shutdown, how long accepted work may take to finish"
    )

    def limits_for(self, model: str) -> BatchLimits:
        """Batching limits of one model: its override, or the defaults."""
        return self.model_batch.get(model, self.batch)
