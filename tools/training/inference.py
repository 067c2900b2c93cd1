"""Batched no-grad forward passes over encoded features, in length order, results in input order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from tools.training.batching import Feature, collate

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


@torch.inference_mode()
def forward_all(
    model: PreTrainedModel, features: Sequence[Feature], batch_size: int
) -> list[dict[str, np.ndarray]]:
    """Run `model` over every feature; per-token outputs are trimmed to the feature's own length."""
    model.eval()
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    results: list[dict[str, np.ndarray]] = [{} for _ in features]
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = collate([features[i] for i in indices])
        outputs = model(**{k: batch[k] for k in MODEL_INPUTS})
        for name in ("logits", "start_logits", "end_logits"):
            value = getattr(outputs, name, None)
            if value is None:
                continue
            array = value.float().numpy()
            per_token = name != "logits" or array.ndim == 3  # [B, T] spans, [B, T, C] tags
            for row, i in enumerate(indices):
                item = array[row]
                results[i][name] = item[: len(features[i]["input_ids"])] if per_token else item
    return results
