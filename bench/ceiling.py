"""The ceiling: the same ONNX model in-process, ideal length-sorted full batches, no HTTP."""

from __future__ import annotations

import time
from pathlib import Path

from app.runtime.repository import load_model
from app.settings import Settings
from app.tasks.base import EncodedItem


def best_ceiling(
    model_dir: Path, name: str, texts: list[str], *, batch_sizes: list[int], seconds: float, precision: str
) -> tuple[float, int]:
    """The highest raw throughput over `batch_sizes` (ideal: the best batch for the engine), and that size."""
    rates = {
        size: ceiling_seq_per_s(model_dir, name, texts, batch_size=size, seconds=seconds, precision=precision)
        for size in batch_sizes
    }
    best = max(rates, key=lambda size: rates[size])
    return rates[best], best


def ceiling_seq_per_s(
    model_dir: Path, name: str, texts: list[str], *, batch_size: int, seconds: float, precision: str
) -> float:
    """Sequences per second of the raw runtime on pre-tokenized, length-sorted batches."""
    settings = Settings.model_validate({"model_dir": model_dir, "precision": precision, "warmup": False})
    model = load_model(name, settings)
    encodings = model.encoder.encode_batch(texts, max_length=model.manifest.max_length)
    items = sorted(
        (EncodedItem.from_encoding(e.ids, e.type_ids) for e in encodings), key=lambda item: item.length
    )
    batches = [model.onnx.prepare(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    for batch in batches[:2]:
        model.onnx.run(batch)
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for batch in batches:
            model.onnx.run(batch)
            done += batch.count
    return done / (time.perf_counter() - start)
