"""ONNX Runtime against PyTorch fp32 on the validation texts: max |diff| per output and decision agreement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from app.contract.manifest import Parity
from export import decisions, samples
from export.errors import ConversionError, UsageError
from export.tasks import TaskSpec
from export.tolerances import Tolerance, violations

if TYPE_CHECKING:
    import onnxruntime as ort
    import torch
    from transformers import PreTrainedTokenizerFast

BATCH_SIZE = 8
Outputs = dict[str, npt.NDArray[np.float32]]


@dataclass(frozen=True)
class Batch:
    """Right-padded model inputs plus the masks the comparison needs."""

    feeds: dict[str, npt.NDArray[np.int64]]
    real: npt.NDArray[np.bool_]  # not padding
    words: npt.NDArray[np.bool_]  # real and not a special token
    context: npt.NDArray[np.bool_]  # tokens of the second segment (qa answers)

    @property
    def size(self) -> int:
        return int(self.real.shape[0])


Text = tuple[str, str | None]  # (text, second segment or None)


def validation_inputs(spec: TaskSpec) -> list[Text]:
    """The task's texts, plus one built by joining them all, cut at max length by the tokenizer."""
    if spec.name in ("classify", "ner"):
        texts = samples.SENTENCES if spec.name == "classify" else samples.NER
        return [(text, None) for text in (*texts, " ".join(texts))]
    pairs: list[Text] = list(samples.PAIRS if spec.name == "pair" else samples.QA)
    pairs.append((pairs[0][0], " ".join(str(second) for _, second in pairs)))
    return pairs


def encode(
    tokenizer: PreTrainedTokenizerFast, spec: TaskSpec, max_length: int, input_names: Sequence[str]
) -> list[Batch]:
    """Right-padded batches of the model's inputs for the validation texts, truncated as the server would."""
    inputs = validation_inputs(spec)
    strategy = "only_second" if spec.name == "qa" else "longest_first"
    batches = []
    for start in range(0, len(inputs), BATCH_SIZE):
        chunk = inputs[start : start + BATCH_SIZE]
        seconds = [second for _, second in chunk if second is not None]
        try:
            encoded = tokenizer(
                [first for first, _ in chunk],
                seconds if spec.pairs else None,
                truncation=strategy,
                max_length=max_length,
                padding=True,
                return_special_tokens_mask=True,
                return_token_type_ids=True,
                return_tensors="np",
            )
        except Exception as error:  # e.g. a max length too short for a question plus context
            raise UsageError(
                f"cannot encode the validation texts at max length {max_length}: {error}"
            ) from error
        feeds = {name: np.asarray(encoded[name], dtype=np.int64) for name in input_names}
        real = np.asarray(encoded["attention_mask"], dtype=bool)
        words = real & ~np.asarray(encoded["special_tokens_mask"], dtype=bool)
        # the second segment by sequence ids: RoBERTa-style tokenizers give it no token type
        rows = range(len(chunk))
        second = np.array([[seq == 1 for seq in encoded.sequence_ids(row)] for row in rows], dtype=bool)
        batches.append(Batch(feeds, real, words, words & second))
    return batches


def torch_outputs(model: torch.nn.Module, spec: TaskSpec, batches: Sequence[Batch]) -> list[Outputs]:
    """The PyTorch fp32 reference for each batch."""
    import torch

    results = []
    with torch.no_grad():
        for batch in batches:
            out = model(
                **{name: torch.from_numpy(value) for name, value in batch.feeds.items()}, return_dict=True
            )
            results.append({name: out[name].float().numpy() for name in spec.outputs})
    return results


def open_session(path: Path, *, prefer_cuda: bool) -> tuple[ort.InferenceSession, str]:
    """The server's own session (app.runtime.providers): on CUDA when wanted and working, else CPU.

    Returns the session and the provider in use; what the exporter measures is what is served."""
    from app.errors import ModelLoadError
    from app.runtime import providers
    from app.settings import Settings

    settings = Settings(device="auto" if prefer_cuda else "cpu", allow_cpu_fallback=True)
    try:
        opened = providers.open_session(path, settings)
    except ModelLoadError as error:
        raise ConversionError(f"ONNX Runtime: {error.message}") from error
    return opened.session, opened.provider


def onnx_outputs(
    session: ort.InferenceSession, spec: TaskSpec, batches: Sequence[Batch], *, per_sequence: bool = False
) -> list[Outputs]:
    """The session's outputs per batch; with `per_sequence` each row runs alone and unpadded, as the
    server runs a batch-dependent graph (padding positions of token-level outputs are zero)."""
    _check_signature(session, spec, list(batches[0].feeds))
    names = list(spec.outputs)
    results = []
    for batch in batches:
        if per_sequence:
            results.append(_row_by_row(session, names, batch, token_level=spec.token_level))
            continue
        values = session.run(names, dict(batch.feeds))
        results.append(
            {name: np.asarray(value, dtype=np.float32) for name, value in zip(names, values, strict=True)}
        )
    return results


def _row_by_row(
    session: ort.InferenceSession, names: list[str], batch: Batch, *, token_level: bool
) -> Outputs:
    rows: list[list[npt.NDArray[np.float32]]] = []
    width = batch.real.shape[1]
    for row, length in enumerate(batch.real.sum(axis=1)):
        feeds = {name: value[row : row + 1, : int(length)] for name, value in batch.feeds.items()}
        values = [np.asarray(value, dtype=np.float32)[0] for value in session.run(names, feeds)]
        if token_level:  # back to the batch's width, so the arrays line up with PyTorch's
            values = [
                np.pad(value, [(0, width - value.shape[0])] + [(0, 0)] * (value.ndim - 1)) for value in values
            ]
        rows.append(values)
    return {name: np.stack([values[index] for values in rows]) for index, name in enumerate(names)}


def _check_signature(session: ort.InferenceSession, spec: TaskSpec, input_names: Sequence[str]) -> None:
    inputs = [(node.name, node.type) for node in session.get_inputs()]
    outputs = [(node.name, node.type) for node in session.get_outputs()]
    want_in = [(name, "tensor(int64)") for name in input_names]
    want_out = [(name, "tensor(float)") for name in spec.outputs]
    if inputs != want_in or outputs != want_out:
        raise ConversionError(f"unexpected ONNX signature: inputs {inputs}, outputs {outputs}")


def parity(
    spec: TaskSpec,
    batches: Sequence[Batch],
    reference: Sequence[Outputs],
    candidate: Sequence[Outputs],
    *,
    tolerance: Tolerance,
    provider: str,
) -> Parity:
    """The figures for one variant, held to `tolerance`."""
    worst = dict.fromkeys(spec.outputs, 0.0)
    scale = 0.0
    matched = total = 0
    for batch, ref, got in zip(batches, reference, candidate, strict=True):
        real = batch.real if spec.token_level else None
        for name in spec.outputs:
            worst[name] = max(worst[name], decisions.max_abs_diff(ref[name], got[name], real))
            scale = max(scale, decisions.max_abs(ref[name], real))
        same, count = decisions.agreement(spec.name, ref, got, batch.words, batch.context)
        matched += same
        total += count
    agreement = matched / total if total else 1.0
    bound = tolerance.bound(scale)
    return Parity(
        samples=sum(batch.size for batch in batches),
        max_abs_diff=worst,
        decision_agreement=agreement,
        atol=bound,
        min_agreement=tolerance.min_agreement,
        passed=not violations(worst, agreement, bound, tolerance.min_agreement),
        provider=provider,
    )
