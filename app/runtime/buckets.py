"""Shape buckets: pad a batch up to one of a few (batch, length) shapes, so each shape is warmed
up (and, on CUDA, graph-captured) once."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ShapeBuckets:
    """Sorted batch sizes and sequence lengths that batches are padded up to."""

    batch_sizes: tuple[int, ...]
    lengths: tuple[int, ...]

    @classmethod
    def build(
        cls, batch_sizes: Sequence[int], lengths: Sequence[int], *, max_batch: int, max_length: int
    ) -> ShapeBuckets:
        """Buckets clipped to the model's limits; the limits themselves are always buckets."""
        sizes = sorted({size for size in batch_sizes if 0 < size < max_batch} | {max_batch})
        lens = sorted({length for length in lengths if 0 < length < max_length} | {max_length})
        return cls(tuple(sizes), tuple(lens))

    @staticmethod
    def _round_up(value: int, buckets: tuple[int, ...]) -> int:
        index = bisect.bisect_left(buckets, value)
        return buckets[index] if index < len(buckets) else value

    def shape_for(self, rows: int, longest: int) -> tuple[int, int]:
        """The bucket shape a batch of `rows` items, the longest `longest` tokens, is padded to."""
        return self._round_up(rows, self.batch_sizes), self._round_up(longest, self.lengths)

    def shapes(self, max_tokens: int | None = None) -> Iterator[tuple[int, int]]:
        """Every bucket shape (within a padded-token budget, when given), smallest first."""
        for length in self.lengths:
            for size in self.batch_sizes:
                if max_tokens is None or size * length <= max_tokens or size == 1:
                    yield size, length

    def index(self, shape: tuple[int, int]) -> int:
        """A stable small integer per bucket shape (the CUDA graph id)."""
        size, length = shape
        return self.lengths.index(length) * len(self.batch_sizes) + self.batch_sizes.index(size) + 1
