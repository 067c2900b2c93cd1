"""What a model runs on and gives back, per item: shared by the tasks (which make and read them) and
the runtime (which pads and runs them), so neither imports the other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class EncodedItem:
    """One sequence for the model: right-padded by the runtime; attention mask implied by length."""

    input_ids: np.ndarray  # int64, shape [length]
    token_type_ids: np.ndarray  # int64, shape [length]

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])

    @classmethod
    def from_encoding(cls, ids: Sequence[int], type_ids: Sequence[int]) -> EncodedItem:
        return cls(np.asarray(ids, dtype=np.int64), np.asarray(type_ids, dtype=np.int64))


ItemOutputs = dict[str, np.ndarray]
"""One item's outputs by output name, float32; token-level outputs are cut to the item's length
(logits [length, labels] for ner, [length] for qa start/end), sequence-level ones are [labels]."""
