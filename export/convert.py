"""PyTorch head -> ONNX through optimum's exporter, with dynamic "batch" and "sequence" axes.

optimum knows each architecture's inputs (no token_type_ids for RoBERTa, DistilBERT or a DeBERTa
without token types) and traces with the TorchScript exporter (dynamo=False), whose graphs ONNX
Runtime fuses fully, so one path serves every family.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from app.contract.manifest import BATCH_AXIS, SEQUENCE_AXIS
from export.errors import ConversionError
from export.logs import quiet
from export.tasks import TaskSpec

if TYPE_CHECKING:
    import torch

# optimum's dynamic axis names -> the ones the server reads (app/runtime/session.py)
AXIS_NAMES = {"batch_size": BATCH_AXIS, "sequence_length": SEQUENCE_AXIS}


def to_onnx(model: torch.nn.Module, spec: TaskSpec, path: Path, *, opset: int) -> list[str]:
    """Export `model` into `path`; returns the graph's input names, in order."""
    from optimum.exporters.onnx import export
    from optimum.exporters.tasks import TasksManager

    try:
        with quiet("optimum"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings
            constructor = TasksManager.get_exporter_config_constructor(
                exporter="onnx", model=model, task=spec.optimum_task, library_name="transformers"
            )
            onnx_config = constructor(model.config)
            export(model, onnx_config, path, opset=opset)
    except Exception as error:
        raise ConversionError(f"optimum's ONNX export failed: {error}") from error
    return rename_axes(path)


def rename_axes(path: Path) -> list[str]:
    """Name the dynamic axes "batch" and "sequence" in place; return the input names."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    for value in (*graph.input, *graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in AXIS_NAMES:
                dim.dim_param = AXIS_NAMES[dim.dim_param]
    onnx.save(model, str(path))
    return [value.name for value in graph.input]
