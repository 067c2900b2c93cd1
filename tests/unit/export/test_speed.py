"""The export's timing batches, on hand-made validation batches."""

from __future__ import annotations

import numpy as np

from export.speed import ROWS, timing_batches
from export.validate import Batch


def batch(lengths: list[int], width: int) -> Batch:
    real = np.array([[column < length for column in range(width)] for length in lengths])
    ids = np.where(real, 7, 0).astype(np.int64)
    return Batch({"input_ids": ids, "attention_mask": real.astype(np.int64)}, real, real, real)


def test_serving_length_inputs_are_repeated_sorted_and_rebatched() -> None:
    feeds = timing_batches([batch([3, 200, 5], 200), batch([4], 4)], sizes=(8, 32))
    assert sum(len(f["input_ids"]) for f in feeds) == 2 * ROWS  # ROWS rows at each batch size
    assert [len(f["input_ids"]) for f in feeds[: ROWS // 8]] == [8] * (ROWS // 8)
    widths = [f["input_ids"].shape[1] for f in feeds[: ROWS // 8]]
    assert widths == sorted(widths) and max(widths) == 5  # the 200-token input is left out
    assert all((f["attention_mask"].sum(axis=1) >= 3).all() for f in feeds)


def test_only_long_inputs_are_kept_rather_than_none() -> None:
    feeds = timing_batches([batch([300, 290], 300)], sizes=(8,))
    assert {f["input_ids"].shape[1] for f in feeds} == {290, 300}
