"""CPU speed of candidate graphs on the validation inputs, timed in turns: length-sorted batches,
or one sequence at a time for the graphs the server runs that way."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from export.validate import Batch

if TYPE_CHECKING:
    import onnxruntime as ort

Feeds = dict[str, npt.NDArray[np.int64]]
BATCH_SIZES = (8, 32)
LONGEST = 128  # tokens: serving lengths; the max-length validation input is there for parity only
ROWS = 32


def timing_batches(batches: Sequence[Batch], sizes: Sequence[int] = BATCH_SIZES) -> list[Feeds]:
    """The validation inputs of serving lengths, unpadded, repeated to `ROWS`, sorted by length and
    re-batched at each of `sizes`."""
    rows = timing_rows(batches)
    feeds = []
    for size in sizes:
        for start in range(0, len(rows), size):
            feeds.append(_pad(rows[start : start + size]))
    return feeds


def one_at_a_time(batches: Sequence[Batch], sizes: Sequence[int] = BATCH_SIZES) -> list[Feeds]:
    """The same sequences as `timing_batches`, each alone and unpadded: how the server runs a
    batch-dependent graph."""
    rows = timing_rows(batches)
    return [{name: value[None, :] for name, value in row.items()} for row in rows for _ in sizes]


def timing_rows(batches: Sequence[Batch]) -> list[Feeds]:
    """The validation inputs of serving lengths, unpadded, repeated to `ROWS`, sorted by length."""
    every: list[Feeds] = []
    for batch in batches:
        for index, length in enumerate(batch.real.sum(axis=1)):
            every.append({name: value[index, : int(length)] for name, value in batch.feeds.items()})
    rows = [row for row in every if len(row["input_ids"]) <= LONGEST] or every
    rows = [rows[index % len(rows)] for index in range(max(ROWS, len(rows)))]
    rows.sort(key=lambda row: len(row["input_ids"]))
    return rows


def _pad(rows: Sequence[Feeds]) -> Feeds:
    longest = max(len(row["input_ids"]) for row in rows)
    padded = {}
    for name in rows[0]:
        array = np.zeros((len(rows), longest), dtype=np.int64)
        for index, row in enumerate(rows):
            array[index, : len(row[name])] = row[name]
        padded[name] = array
    return padded


def sequences_per_second(
    sessions: Mapping[str, tuple[ort.InferenceSession, Sequence[Feeds]]],
    *,
    rounds: int = 3,
    warm_up: bool = True,
) -> dict[str, float]:
    """Sequences per second of each session in its fastest of `rounds`, the sessions taking turns
    in each round, after one warm-up pass (`warm_up=False`: the sessions have already run inputs
    at least as long, e.g. the validation set). The fastest round is the one a noisy neighbour on
    the machine disturbed least (a median lets small differences flip on a loaded machine)."""
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for round_index in range(rounds + int(warm_up)):
        for name, (session, feeds) in sessions.items():
            started = time.perf_counter()
            for batch in feeds:
                session.run(None, batch)
            if round_index or not warm_up:
                times[name].append(time.perf_counter() - started)
    return {
        name: sum(len(batch["input_ids"]) for batch in sessions[name][1]) / min(spent)
        for name, spent in times.items()
    }
