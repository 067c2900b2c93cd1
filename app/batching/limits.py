"""How one model's batcher closes batches and sheds load: its settings, owned here so batching
needs nothing of the server's settings (app.settings nests them per model)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BatchLimits(BaseModel):
    """How one model's batcher closes batches and sheds load."""

    max_batch_size: int = Field(64, ge=1, description="most items in one batch")
    max_batch_tokens: int = Field(
        16384,
        ge=1,
        description="padded token budget of a batch: longest item x items "
        "(on CPU 2048 unless set: big batches are no faster there and hold the cores)",
    )
    max_delay_ms: float = Field(
        5.0,
        ge=0,
        description="longest the oldest queued item waits for companions, when waiting pays: while "
        "the runners are busy, or when the observed arrival rate says one comes within the delay",
    )
    always_wait: bool = Field(
        False,
        description="wait max_delay_ms for companions even on an idle model with no arrivals expected "
        "(fixed-delay batching: more items per batch at low load, a lone request pays the delay)",
    )
    max_padding_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description="a batch stops growing before padding would exceed this share of its tokens; "
        "the items left out form the next batch",
    )
    max_queue_items: int = Field(4096, ge=1, description="queued items beyond which new requests get 429")
    max_queue_wait_s: float = Field(
        2.0,
        gt=0,
        description="new requests get 429 while their work is expected to finish later than this (the "
        "queued work of every model on the same cores, at each model's measured speed), or the oldest "
        "queued item has waited longer: accepted work finishes in time and the queue recovers quickly "
        "after a burst",
    )
    max_concurrent_batches: int = Field(
        1, ge=1, description="batches running on the model at once (2 overlaps copies with compute on CUDA)"
    )
