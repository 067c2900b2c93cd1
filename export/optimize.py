"""ONNX Runtime transformer fusion, and the fp16 and int8 variants derived from the fused graph."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from export.errors import ConversionError
from export.fusion import fused_op_counts
from export.logs import quiet


@dataclass(frozen=True)
class GraphStats:
    fused_ops: dict[str, int]
    node_count: int


def graph_stats(path: Path) -> GraphStats:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return GraphStats(fused_op_counts((n.op_type, n.domain) for n in graph.node), len(graph.node))


def fuse(src: Path, dst: Path, *, num_heads: int, hidden_size: int, attention: bool = True) -> GraphStats:
    """Fuse attention, layer norms, embeddings and GELU (the caller verifies the counts).

    `attention=False` leaves attention as plain MatMul/Softmax (a "partly fused" graph: int8 then
    quantizes the attention projections as ordinary MatMuls).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_attention = attention
    try:
        with quiet("onnxruntime.transformers"):
            model = optimize_model(
                str(src),
                model_type="bert",
                num_heads=num_heads,
                hidden_size=hidden_size,
                optimization_options=options,
            )
        model.save_model_to_file(str(dst))
    except Exception as error:
        raise ConversionError(f"ONNX Runtime's BERT optimizer failed: {error}") from error
    return graph_stats(dst)


def to_fp16(fused: Path, dst: Path) -> GraphStats:
    """Half-precision weights and activations; inputs and outputs keep int64 / float32."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    try:
        model = OnnxModel(onnx.load(str(fused)))
        with quiet("onnxruntime.transformers"):
            model.convert_float_to_float16(keep_io_types=True)
        model.save_model_to_file(str(dst))
    except Exception as error:
        raise ConversionError(f"fp16 conversion failed: {error}") from error
    return graph_stats(dst)


def to_int8(
    src: Path,
    dst: Path,
    *,
    per_channel: bool,
    keep_fp32: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
) -> GraphStats:
    """Dynamic int8 quantization of the weights (activations quantized at run time).

    `src` is the fused or the plain (unfused) graph; `keep_fp32` names nodes left unquantized and
    `op_types` limits which kinds of node are quantized (default: all that ONNX Runtime can).
    Per-channel weights use 7-bit range: u8 x s8 products then cannot saturate the 16-bit
    accumulators of AVX2 CPUs without VNNI (full range per channel is the worst option there).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with quiet(""):  # "Please consider to run pre-processing before quantization"
            quantize_dynamic(
                src,
                dst,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                reduce_range=per_channel,
                nodes_to_exclude=list(keep_fp32),
                op_types_to_quantize=list(op_types) if op_types else None,
                # Shape inference cannot type the fused contrib ops' outputs without this.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    except Exception as error:
        raise ConversionError(f"int8 quantization failed: {error}") from error
    return graph_stats(dst)


_LAYER = re.compile(r"layers?[._/](\d+)[./]")
# BERT, RoBERTa, ELECTRA, DeBERTa: layer.N/output/dense (not attention/output); DistilBERT: ffn/lin2
_FFN_OUT = re.compile(r"(?<!attention)/output/dense/|/ffn/lin2/")


def sensitive_matmuls(path: Path, *, edge_layers: bool = False, ffn_out: bool = False) -> list[str]:
    """MatMul/Gemm nodes that partial quantization keeps in fp32: the task head's (outside the
    encoder layers); with `edge_layers` those of the first and last layer too; with `ffn_out` every
    layer's feed-forward output projection (its input, after GELU, has the widest activation range)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    matmuls = [
        (node.name, _LAYER.search(node.name)) for node in graph.node if node.op_type in ("MatMul", "Gemm")
    ]
    layers = [int(match.group(1)) for _, match in matmuls if match]
    edges = {min(layers), max(layers)} if layers and edge_layers else set()
    return [
        name
        for name, match in matmuls
        if match is None or int(match.group(1)) in edges or (ffn_out and _FFN_OUT.search(name))
    ]
