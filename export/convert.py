"""PyTorch head -> ONNX (TorchScript exporter, opset 17) with dynamic "batch" and "sequence" axes."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from export.errors import ConversionError
from export.tasks import INPUT_NAMES, TaskSpec, input_axes

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

_DUMMY_TEXTS = ("The quick brown fox jumps over the lazy dog.", "Short one.")
_DUMMY_PAIRS = ("Where does the fox jump?", "Over the lazy dog, twice.")


def _named_outputs(model: torch.nn.Module, names: tuple[str, ...]) -> torch.nn.Module:
    """Wrap the head so it takes the three inputs positionally and returns the named outputs."""
    import torch

    class Named(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> tuple[torch.Tensor, ...]:
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=True,
            )
            return tuple(out[name] for name in names)

    return Named().eval()


def to_onnx(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerFast,
    spec: TaskSpec,
    path: Path,
    *,
    opset: int,
) -> None:
    """Trace `model` into `path`; batch 2 with right padding so no shape is baked in."""
    import torch

    if spec.pairs:
        encoded = tokenizer(
            [_DUMMY_PAIRS[0]] * 2, [_DUMMY_PAIRS[1], "No."], padding=True, return_tensors="pt"
        )
    else:
        encoded = tokenizer(list(_DUMMY_TEXTS), padding=True, return_tensors="pt")
    args = tuple(encoded[name] for name in INPUT_NAMES)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings and the dynamo=False deprecation notice
            torch.onnx.export(
                _named_outputs(model, spec.outputs),
                args,
                str(path),
                input_names=list(INPUT_NAMES),
                output_names=list(spec.outputs),
                dynamic_axes=input_axes() | spec.output_axes(),
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as error:
        raise ConversionError(f"torch.onnx.export failed: {error}") from error
