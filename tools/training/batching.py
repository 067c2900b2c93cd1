"""Length-bucketed batch order and dynamic padding (each batch padded to its longest item)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

Feature = dict[str, Any]
PAD_LABEL = -100
SEQUENCE_KEYS = ("input_ids", "token_type_ids")


def batch_order(
    lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int = 0, bucket_factor: int = 50
) -> list[list[int]]:
    """Shuffle, sort by length inside chunks of `batch_size * bucket_factor`, cut batches, shuffle them.

    Batches hold items of similar length, so dynamic padding wastes little; deterministic per seed/epoch.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = max(batch_size * bucket_factor, batch_size)
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def collate(features: Sequence[Feature], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Right-pad `input_ids`/`token_type_ids` (and list `labels`) to the batch's longest item.

    Scalar targets (`labels` as int, `start_positions`, `end_positions`) are stacked as they are.
    """
    width = max(len(f["input_ids"]) for f in features)
    batch: dict[str, torch.Tensor] = {}
    for key in SEQUENCE_KEYS:
        fill = pad_id if key == "input_ids" else 0
        batch[key] = torch.tensor([f[key] + [fill] * (width - len(f[key])) for f in features])
    batch["attention_mask"] = torch.tensor(
        [[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features]
    )
    for key in ("labels", "start_positions", "end_positions"):
        if key not in features[0]:
            continue
        values = [f[key] for f in features]
        if isinstance(values[0], list):
            values = [v + [PAD_LABEL] * (width - len(v)) for v in values]
        batch[key] = torch.tensor(values)
    return batch
