"""The ceiling: the best in-process engine, on length-sorted batches, tokenization included.

Engines: the variant the server serves, and the plain `quantize_dynamic` int8 of the unfused
export (what a user gets without this project's export). Each runs in a bare ONNX Runtime session
with the server's session options (all cores, no spinning between runs); the engines take turns
in each round (a noisy machine slows all alike), and the median round counts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tools.bench.model import CACHE


@dataclass(frozen=True)
class EngineSpeed:
    engine: str
    batch_size: int
    seq_per_s: float


def plain_int8(checkpoint: Path) -> Path:
    """Per-tensor `quantize_dynamic` of the plain (unfused) ONNX export of `checkpoint`, built once."""
    out = CACHE / "plain-int8" / f"{checkpoint.name}.onnx"
    if out.is_file():
        return out
    from export.checkpoint import inspect_checkpoint, load_torch_model
    from export.convert import to_onnx
    from export.optimize import to_int8
    from export.tasks import TASKS

    spec = TASKS["classify"]
    model = load_torch_model(inspect_checkpoint(checkpoint, str(checkpoint), spec), spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_suffix(".fp32.onnx")
    to_onnx(model, spec, raw, opset=17)
    to_int8(raw, out, per_channel=False)
    raw.unlink()
    return out


class Engine:
    """One ONNX graph in a bare session, fed by the model's own tokenizer."""

    def __init__(self, path: Path, tokenizer_json: Path, max_length: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from app.runtime.providers import session_options
        from app.settings import Settings

        options = session_options(Settings(), on_cuda=False)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [node.name for node in self.session.get_inputs()]
        self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()

    def run(self, texts: Sequence[str]) -> None:
        """Tokenize, pad to the longest, run: what serving one batch of texts costs."""
        encodings = self.tokenizer.encode_batch(list(texts))
        longest = max(len(e.ids) for e in encodings)
        arrays: dict[str, npt.NDArray[np.int64]] = {
            name: np.zeros((len(encodings), longest), dtype=np.int64) for name in self.inputs
        }
        for row, encoding in enumerate(encodings):
            width = len(encoding.ids)
            columns = {
                "input_ids": encoding.ids,
                "attention_mask": encoding.attention_mask,
                "token_type_ids": encoding.type_ids,
            }
            for name in self.inputs:
                arrays[name][row, :width] = columns[name]
        self.session.run(None, arrays)


def length_sorted(engine: Engine, texts: Sequence[str]) -> list[str]:
    return sorted(texts, key=lambda text: len(engine.tokenizer.encode(text).ids))


def engine_speeds(
    engines: Mapping[str, Engine], texts: Sequence[str], batch_sizes: Sequence[int], rounds: int = 3
) -> list[EngineSpeed]:
    """Sequences per second of each engine at each batch size: median of `rounds` after a warm-up."""
    ordered = length_sorted(next(iter(engines.values())), texts)
    speeds = []
    for size in batch_sizes:
        batches = [ordered[start : start + size] for start in range(0, len(ordered), size)]
        times: dict[str, list[float]] = {name: [] for name in engines}
        for round_index in range(rounds + 1):
            for name, engine in engines.items():
                started = time.perf_counter()
                for batch in batches:
                    engine.run(batch)
                if round_index:
                    times[name].append(time.perf_counter() - started)
        speeds += [EngineSpeed(name, size, len(ordered) / statistics.median(times[name])) for name in engines]
    return speeds


def single_text_ms(engine: Engine, texts: Sequence[str]) -> float:
    """Median milliseconds to tokenize and run one text alone (batch of 1)."""
    engine.run(texts[:1])
    spent = []
    for text in texts:
        started = time.perf_counter()
        engine.run([text])
        spent.append(time.perf_counter() - started)
    return statistics.median(spent) * 1000
