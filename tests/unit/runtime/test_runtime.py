"""The runtime on a hand-made ONNX graph: padding, slicing, IO binding, buckets, providers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from app.contract.items import EncodedItem
from app.errors import ModelLoadError
from app.runtime.buckets import ShapeBuckets
from app.runtime.providers import CPU, CUDA, open_session, wants_cuda
from app.runtime.session import SessionRunner, pad_items
from app.settings import Settings


def build_probe_model(path: Path) -> Path:
    """token_out[b, s] = [ids, type_ids, mask]; pooled[b] = [sum(ids * mask), sum(mask)]."""
    names = ["input_ids", "attention_mask", "token_type_ids"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in names]
    outputs = [
        helper.make_tensor_value_info("token_out", TensorProto.FLOAT, ["batch", "sequence", 3]),
        helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 2]),
    ]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [2])
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    nodes = [
        *[helper.make_node("Cast", [n], [f"{n}_f"], to=TensorProto.FLOAT) for n in names],
        *[helper.make_node("Unsqueeze", [f"{n}_f", "axes"], [f"{n}_u"]) for n in names],
        helper.make_node(
            "Concat", ["input_ids_u", "token_type_ids_u", "attention_mask_u"], ["token_out"], axis=2
        ),
        helper.make_node("Mul", ["input_ids_f", "attention_mask_f"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "one"], ["id_sum"], keepdims=1),
        helper.make_node("ReduceSum", ["attention_mask_f", "one"], ["mask_sum"], keepdims=1),
        helper.make_node("Concat", ["id_sum", "mask_sum"], ["pooled"], axis=1),
    ]
    return save_checked(helper.make_graph(nodes, "probe", inputs, outputs, initializer=[axes, one]), path)


def save_checked(graph: onnx.GraphProto, path: Path) -> Path:
    """A hand-made graph as a checked opset-17 model file at `path`."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def probe_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_probe_model(tmp_path_factory.mktemp("probe") / "model.onnx")


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=[CPU])


def items(*lengths: int) -> list[EncodedItem]:
    return [
        EncodedItem(np.arange(1, n + 1, dtype=np.int64) * (i + 1), np.full(n, i % 2, dtype=np.int64))
        for i, n in enumerate(lengths)
    ]


def test_pad_items_pads_right_and_fills_extra_rows() -> None:
    batch = pad_items(items(2, 4), (3, 5), pad_token_id=0, input_names=["input_ids", "attention_mask"])
    assert batch.arrays["input_ids"].tolist() == [[1, 2, 0, 0, 0], [2, 4, 6, 8, 0], [0, 0, 0, 0, 0]]
    assert batch.arrays["attention_mask"].tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]]
    assert set(batch.arrays) == {"input_ids", "attention_mask"}
    assert (batch.count, batch.padded_tokens) == (2, 15)


@pytest.mark.parametrize(
    ("io_binding", "bucketed"), [(False, False), (True, False), (True, True), (False, True)]
)
def test_outputs_come_back_per_item_and_cut_to_length(
    probe_path: Path, io_binding: bool, bucketed: bool
) -> None:
    buckets = ShapeBuckets.build([1, 2, 4], [8, 16], max_batch=8, max_length=32) if bucketed else None
    model = SessionRunner(
        session(probe_path), pad_token_id=0, max_length=32, buckets=buckets, io_binding=io_binding
    )
    assert model.token_level == {"token_out"}
    batch = model.pad(items(3, 5, 2))
    assert batch.shape == ((4, 8) if bucketed else (3, 5))
    outputs = model.run(batch)
    assert len(outputs) == 3
    assert outputs[1]["token_out"].shape == (5, 3)
    assert outputs[1]["token_out"][:, 0].tolist() == [2, 4, 6, 8, 10]
    assert outputs[2]["token_out"][:, 1].tolist() == [0, 0]
    assert outputs[0]["pooled"].tolist() == [6.0, 3.0]  # padding never leaks into an item's answer
    assert all(o["pooled"].dtype == np.float32 for o in outputs)


def test_bucket_buffers_are_allocated_once_and_reused(probe_path: Path) -> None:
    buckets = ShapeBuckets.build([1, 2, 4], [8, 16], max_batch=4, max_length=16)
    model = SessionRunner(
        session(probe_path), pad_token_id=0, max_length=16, buckets=buckets, io_binding=True
    )
    for lengths in [(3, 5), (7, 2), (1,), (4, 4)]:
        expected = [sum(range(1, n + 1)) * (i + 1) for i, n in enumerate(lengths)]
        outputs = model.run(model.pad(items(*lengths)))
        assert [o["pooled"][0] for o in outputs] == expected
    assert model.buffer_sets() == 2  # shapes (2, 8) and (1, 8): one buffer set each, refilled in place


def test_outputs_outlive_the_reuse_of_their_bucket_buffers(probe_path: Path) -> None:
    buckets = ShapeBuckets.build([1, 2], [8], max_batch=2, max_length=8)
    model = SessionRunner(session(probe_path), pad_token_id=0, max_length=8, buckets=buckets, io_binding=True)
    first = model.run(model.pad(items(3)))
    model.run(model.pad(items(5)))  # same bucket shape (1, 8): same buffers
    assert first[0]["pooled"].tolist() == [6.0, 3.0]


def test_cuda_graphs_are_not_used_on_cpu(probe_path: Path) -> None:
    buckets = ShapeBuckets.build([1, 2], [8], max_batch=2, max_length=8)
    model = SessionRunner(
        session(probe_path), pad_token_id=0, max_length=8, buckets=buckets, io_binding=True, cuda_graphs=True
    )
    assert not model.cuda_graphs
    assert model.run(model.pad(items(2)))[0]["pooled"].tolist() == [3.0, 2.0]


def test_warmup_runs_every_bucket_within_budget(probe_path: Path) -> None:
    buckets = ShapeBuckets.build([1, 2, 4], [8, 16, 32], max_batch=4, max_length=32)
    model = SessionRunner(
        session(probe_path), pad_token_id=0, max_length=32, buckets=buckets, io_binding=True
    )
    assert model.warmup(max_batch=4, max_tokens=64) == len(list(buckets.shapes(64)))
    assert (4, 32) not in model.warmup_shapes(4, 64)


def test_warmup_reaches_the_costliest_batch_the_budget_allows(probe_path: Path) -> None:
    model = SessionRunner(session(probe_path), pad_token_id=0, max_length=32)
    shapes = model.warmup_shapes(max_batch=64, max_tokens=128)
    assert (4, 32) in shapes  # 128 tokens of the longest sequences: the memory arena's peak
    assert all(rows * length <= 128 or rows == 1 for rows, length in shapes)


def test_bucket_shapes_round_up_and_keep_the_limits() -> None:
    buckets = ShapeBuckets.build([1, 2, 4, 8, 128], [16, 64, 128, 1024], max_batch=32, max_length=512)
    assert buckets.batch_sizes == (1, 2, 4, 8, 32)
    assert buckets.lengths == (16, 64, 128, 512)
    assert buckets.shape_for(3, 17) == (4, 64)
    assert buckets.shape_for(32, 512) == (32, 512)
    assert len({buckets.index(shape) for shape in buckets.shapes()}) == 5 * 4


def test_cuda_is_wanted_only_where_it_may_be_had() -> None:
    assert not wants_cuda(Settings(device="auto"), [CPU])
    assert wants_cuda(Settings(device="auto"), [CUDA, CPU])
    assert wants_cuda(Settings(device="cuda"), [CPU])
    assert not wants_cuda(Settings(device="cpu"), [CUDA, CPU])


@pytest.mark.skipif(CUDA in ort.get_available_providers(), reason="checks the CPU build's refusal of CUDA")
def test_cuda_without_a_gpu_fails_unless_fallback_is_allowed(probe_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="ALLOW_CPU_FALLBACK"):
        open_session(probe_path, Settings(device="cuda"))
    opened = open_session(probe_path, Settings(device="cuda", allow_cpu_fallback=True))
    assert (opened.provider, opened.fell_back) == (CPU, True)
    assert opened.session.get_providers()[0] == CPU


def test_a_corrupt_model_file_is_a_load_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "model.onnx"
    broken.parent.mkdir()
    broken.write_bytes(b"not an onnx graph")
    with pytest.raises(ModelLoadError, match="cannot load"):
        open_session(broken, Settings(device="cpu"))
