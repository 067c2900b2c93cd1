"""One ONNX Runtime session over one model variant: pads items into arrays, runs, slices back.

Knows arrays and sessions, nothing of HTTP or tasks. On CUDA it binds inputs and outputs to
device buffers (IO binding), pads to shape buckets, reuses one set of buffers per bucket and can
replay a CUDA graph per bucket; on CPU the same code paths run when enabled, which is how they
are tested without a GPU.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from app.contract.items import EncodedItem, ItemOutputs
from app.contract.manifest import SEQUENCE_AXIS
from app.runtime.buckets import ShapeBuckets

log = logging.getLogger("bertserve.runtime")


@dataclass
class PaddedBatch:
    """Right-padded input arrays [rows, length] for `count` real items (rows >= count with buckets)."""

    arrays: dict[str, np.ndarray]
    lengths: list[int]
    shape: tuple[int, int]

    @property
    def count(self) -> int:
        return len(self.lengths)

    @property
    def padded_tokens(self) -> int:
        return self.shape[0] * self.shape[1]


def pad_items(
    items: Sequence[EncodedItem], shape: tuple[int, int], pad_token_id: int, input_names: Sequence[str]
) -> PaddedBatch:
    """Right-pad items into int64 arrays of `shape`; extra rows (bucket padding) are one pad token."""
    rows, length = shape
    input_ids = np.full((rows, length), pad_token_id, dtype=np.int64)
    token_type_ids = np.zeros((rows, length), dtype=np.int64)
    attention_mask = np.zeros((rows, length), dtype=np.int64)
    attention_mask[len(items) :, 0] = 1  # filler rows attend to one token, so softmax stays finite
    for row, item in enumerate(items):
        n = item.length
        input_ids[row, :n] = item.input_ids
        token_type_ids[row, :n] = item.token_type_ids
        attention_mask[row, :n] = 1
    arrays = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    return PaddedBatch({name: arrays[name] for name in input_names}, [item.length for item in items], shape)


def run_each_alone(
    session: ort.InferenceSession,
    output_names: Sequence[str],
    batch: PaddedBatch,
    pool: ThreadPoolExecutor | None = None,
) -> list[dict[str, np.ndarray]]:
    """Each item in a run of its own, unpadded (on `pool`'s threads when given): each row's raw
    outputs, with a batch axis of 1.

    For a graph whose answer for one sequence depends on the rest of its tensor (dynamic int8
    scales activations over all of it): an answer is then a function of its own input alone."""

    def run_row(row: int) -> dict[str, np.ndarray]:
        length = batch.lengths[row]
        feeds = {name: array[row : row + 1, :length] for name, array in batch.arrays.items()}
        return dict(zip(output_names, session.run(list(output_names), feeds), strict=True))

    rows = range(batch.count)
    return (
        list(pool.map(run_row, rows)) if pool is not None and batch.count > 1 else [run_row(r) for r in rows]
    )


def warmup_shapes(
    buckets: ShapeBuckets | None, max_length: int, max_batch: int, max_tokens: int
) -> list[tuple[int, int]]:
    """Shapes to run before ready: every bucket within budget, or a few representative ones."""
    if buckets is not None:
        return list(buckets.shapes(max_tokens))
    shapes = {(1, 16), (1, min(128, max_length)), (1, max_length)}
    rows = max(1, min(max_batch, max_tokens // 128))
    shapes.add((rows, min(128, max_length)))
    # The costliest batch the budget allows (longest sequences: attention grows with the square),
    # so the memory arena reaches its peak before ready, not hours later under traffic.
    shapes.add((max(1, min(max_batch, max_tokens // max_length)), max_length))
    return sorted(shapes)


@dataclass
class _BufferSet:
    """Device buffers bound once for one bucket shape, refilled in place on every run."""

    inputs: dict[str, ort.OrtValue]
    outputs: dict[str, ort.OrtValue]
    binding: ort.IOBinding


@dataclass
class _BufferPool:
    free: dict[tuple[int, int], list[_BufferSet]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionRunner:
    """Runs padded batches on one session; thread-safe for concurrent `run` calls."""

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        pad_token_id: int,
        max_length: int,
        buckets: ShapeBuckets | None = None,
        io_binding: bool = False,
        cuda_graphs: bool = False,
        per_sequence: bool = False,
        row_threads: int = 1,
    ) -> None:
        self.session = session
        self.per_sequence = per_sequence  # see run_each_alone
        # a batch's rows run side by side, each on one ONNX Runtime thread: small single-sequence
        # runs use the cores better that way than one after the other on every core
        self._rows = (
            ThreadPoolExecutor(row_threads, "bertserve-rows") if per_sequence and row_threads > 1 else None
        )
        self.provider: str = session.get_providers()[0]
        self.pad_token_id = pad_token_id
        self.max_length = max_length
        self.buckets = buckets
        self.input_names = [node.name for node in session.get_inputs()]
        self.output_names = [node.name for node in session.get_outputs()]
        self.token_level = {
            node.name
            for node in session.get_outputs()
            if len(node.shape) >= 2 and node.shape[1] == SEQUENCE_AXIS
        }
        self._output_tail = {
            node.name: list(node.shape[2 if node.name in self.token_level else 1 :])
            for node in session.get_outputs()
        }
        self.io_binding = io_binding
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.cuda_graphs = cuda_graphs and self.device == "cuda" and buckets is not None and io_binding
        if cuda_graphs and not self.cuda_graphs:
            log.warning("cuda_graphs needs CUDA, shape buckets and IO binding: not used for this model")
        self._pool = _BufferPool()

    # -- batching runner protocol -------------------------------------------------------------

    def pad(self, items: Sequence[EncodedItem]) -> PaddedBatch:
        longest = max(item.length for item in items)
        shape = (len(items), longest)
        if self.buckets is not None:
            shape = self.buckets.shape_for(len(items), longest)
        return pad_items(items, shape, self.pad_token_id, self.input_names)

    def run(self, batch: PaddedBatch) -> list[ItemOutputs]:
        if self.per_sequence:
            rows = run_each_alone(self.session, self.output_names, batch, self._rows)
            return [self.split(raw, [length])[0] for raw, length in zip(rows, batch.lengths, strict=True)]
        if self.io_binding and self.buckets is not None:
            raw = self._run_bound_buffers(batch)
        elif self.io_binding:
            raw = self._run_bound(batch)
        else:
            raw = dict(zip(self.output_names, self.session.run(self.output_names, batch.arrays), strict=True))
        return self.split(raw, batch.lengths)

    def split(self, raw: dict[str, np.ndarray], lengths: Sequence[int]) -> list[ItemOutputs]:
        """Per-item float32 outputs; token-level ones cut to each item's own length."""
        items: list[ItemOutputs] = []
        for row, length in enumerate(lengths):
            outputs: ItemOutputs = {}
            for name, array in raw.items():
                value = array[row, :length] if name in self.token_level else array[row]
                outputs[name] = np.asarray(value, dtype=np.float32)
            items.append(outputs)
        return items

    def _run_bound(self, batch: PaddedBatch) -> dict[str, np.ndarray]:
        """IO binding with fresh buffers (shapes vary): inputs copied once, outputs on device."""
        binding = self.session.io_binding()
        for name, array in batch.arrays.items():
            binding.bind_cpu_input(name, array)
        for name in self.output_names:
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.copy_outputs_to_cpu(), strict=True))

    def _run_bound_buffers(self, batch: PaddedBatch) -> dict[str, np.ndarray]:
        """IO binding on buffers allocated once per bucket shape and refilled in place."""
        buffers = self._acquire(batch.shape)
        try:
            for name, array in batch.arrays.items():
                buffers.inputs[name].update_inplace(array)
            options = ort.RunOptions()
            if self.cuda_graphs and self.buckets is not None:
                options.add_run_config_entry("gpu_graph_id", str(self.buckets.index(batch.shape)))
            self.session.run_with_iobinding(buffers.binding, options)
            # copy: on CPU numpy() is a view of the buffer, which the next batch of this shape reuses
            return {name: np.array(value.numpy(), copy=True) for name, value in buffers.outputs.items()}
        finally:
            self._release(batch.shape, buffers)

    def _acquire(self, shape: tuple[int, int]) -> _BufferSet:
        with self._pool.lock:
            free = self._pool.free.setdefault(shape, [])
            if free:
                return free.pop()
        return self._allocate(shape)

    def _release(self, shape: tuple[int, int], buffers: _BufferSet) -> None:
        with self._pool.lock:
            self._pool.free.setdefault(shape, []).append(buffers)

    def _allocate(self, shape: tuple[int, int]) -> _BufferSet:
        rows, length = shape
        binding = self.session.io_binding()
        inputs: dict[str, ort.OrtValue] = {}
        for name in self.input_names:
            inputs[name] = ort.OrtValue.ortvalue_from_shape_and_type([rows, length], np.int64, self.device, 0)
            binding.bind_ortvalue_input(name, inputs[name])
        outputs: dict[str, ort.OrtValue] = {}
        for name in self.output_names:
            head = [rows, length] if name in self.token_level else [rows]
            outputs[name] = ort.OrtValue.ortvalue_from_shape_and_type(
                head + [int(dim) for dim in self._output_tail[name]], np.float32, self.device, 0
            )
            binding.bind_ortvalue_output(name, outputs[name])
        return _BufferSet(inputs, outputs, binding)

    def buffer_sets(self) -> int:
        """How many bucket buffer sets exist (for tests and /v1/models)."""
        with self._pool.lock:
            return sum(len(free) for free in self._pool.free.values())

    def warmup_shapes(self, max_batch: int, max_tokens: int) -> list[tuple[int, int]]:
        return warmup_shapes(self.buckets, self.max_length, max_batch, max_tokens)

    def warmup(self, max_batch: int, max_tokens: int) -> int:
        """Run every warm-up shape once (twice with CUDA graphs: capture, then replay)."""
        shapes = self.warmup_shapes(max_batch, max_tokens)
        for rows, length in shapes:
            ids = np.full(length, self.pad_token_id, dtype=np.int64)  # an id every vocabulary has
            items = [EncodedItem(ids, np.zeros(length, dtype=np.int64))] * rows
            batch = pad_items(items, (rows, length), self.pad_token_id, self.input_names)
            for _ in range(2 if self.cuda_graphs else 1):
                self.run(batch)
        return len(shapes)
