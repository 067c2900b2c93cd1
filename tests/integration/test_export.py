"""The export pipeline end to end on tiny random heads: fusion, parity, dynamic shapes, manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from app.contract.manifest import Manifest, Variant
from export.checkpoint import fingerprint
from export.fusion import fused_op_counts, missing_fusions
from tests.conftest import TASKS, TINY_TOLERANCES
from tests.tiny import CLASSIFY_LABELS, NER_LABELS, PAIR_LABELS

FUSED_FP = {"Attention": 2, "BiasGelu": 2, "EmbedLayerNormalization": 1, "SkipLayerNormalization": 4}
FUSED_INT8 = {"QAttention": 2, "BiasGelu": 2, "QEmbedLayerNormalization": 1, "SkipLayerNormalization": 4}
LABELS = {"classify": CLASSIFY_LABELS, "pair": PAIR_LABELS, "ner": NER_LABELS, "qa": []}


def read(tiny_models: Path, task: str) -> Manifest:
    return Manifest.read(tiny_models / f"tiny-{task}")


@pytest.mark.parametrize("task", TASKS)
def test_every_variant_is_fully_fused(tiny_models: Path, task: str) -> None:
    manifest = read(tiny_models, task)
    assert [v.precision for v in manifest.variants] == ["fp32", "fp16", "int8"]
    for variant in manifest.variants:
        graph = onnx.load(str(tiny_models / f"tiny-{task}" / variant.file)).graph
        assert fused_op_counts((n.op_type, n.domain) for n in graph.node) == variant.fused_ops
        assert variant.node_count == len(graph.node)
        if quantized_from(variant) in ("partial", "unfused"):  # attention left as MatMuls
            assert not {"Attention", "QAttention"} & set(variant.fused_ops)
            if quantized_from(variant) == "partial":
                assert variant.fused_ops.get("SkipLayerNormalization") == 2 * manifest.num_layers
            continue
        assert missing_fusions(variant.fused_ops, manifest.num_layers) == []
        expected = FUSED_INT8 if variant.precision == "int8" else FUSED_FP
        assert {op: variant.fused_ops.get(op) for op in expected} == expected, variant.precision


def quantized_from(variant: Variant) -> str:
    """The graph an int8 variant was quantized from ("fused", "partial", "unfused"); "" for others."""
    chosen = [candidate for candidate in variant.candidates if candidate.chosen]
    return chosen[0].graph if chosen else ""


@pytest.mark.parametrize("task", TASKS)
def test_int8_is_the_fastest_passing_candidate_with_every_candidates_figures(
    tiny_models: Path, task: str
) -> None:
    manifest = read(tiny_models, task)
    int8 = manifest.variant("int8")
    assert int8 is not None
    names = {candidate.name for candidate in int8.candidates}
    assert {f"{g}-{w}" for g in ("fused", "partial", "unfused") for w in ("tensor", "channel")} <= names
    # the passing candidates are timed; a refused one cannot be written, so it is not
    for candidate in int8.candidates:
        timed = candidate.sequences_per_second
        assert (timed is not None and timed > 0) if candidate.parity.passed else timed is None
    assert all(candidate.parity.samples == int8.parity.samples for candidate in int8.candidates)
    (chosen,) = [candidate for candidate in int8.candidates if candidate.chosen]
    assert chosen.parity == int8.parity and chosen.parity.passed
    assert int8.sequences_per_second == chosen.sequences_per_second
    passing = [candidate for candidate in int8.candidates if candidate.parity.passed]
    assert chosen.sequences_per_second == max(candidate.sequences_per_second or 0 for candidate in passing)
    fp32 = manifest.variant("fp32")
    assert fp32 is not None and fp32.sequences_per_second and fp32.sequences_per_second > 0
    fp16 = manifest.variant("fp16")
    assert fp16 is not None and not fp16.candidates


@pytest.mark.parametrize("task", TASKS)
def test_parity_figures_are_recorded_and_pass(tiny_models: Path, task: str) -> None:
    manifest = read(tiny_models, task)
    for variant in manifest.variants:
        parity = variant.parity
        assert parity.passed, (variant.precision, parity)
        assert set(parity.max_abs_diff) == set(manifest.output_names)
        assert all(0 <= diff <= parity.atol for diff in parity.max_abs_diff.values())
        assert parity.min_agreement <= parity.decision_agreement <= 1
        assert parity.samples >= 20
        assert parity.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
        assert manifest.variant(variant.precision) == variant
    fp32 = manifest.variants[0].parity
    assert max(fp32.max_abs_diff.values()) < 1e-4
    assert fp32.decision_agreement == 1.0


@pytest.mark.parametrize("task", TASKS)
def test_variants_run_with_dynamic_batch_and_sequence(tiny_models: Path, task: str) -> None:
    manifest = read(tiny_models, task)
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 2000, size=(3, 17), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = np.ones((3, 17), dtype=np.int64)
    mask[1, 9:] = 0  # one right-padded row
    types = np.zeros((3, 17), dtype=np.int64)
    types[2, 8:] = 1
    for variant in manifest.variants:
        session = ort.InferenceSession(
            str(tiny_models / f"tiny-{task}" / variant.file), providers=["CPUExecutionProvider"]
        )
        assert [(i.name, i.shape, i.type) for i in session.get_inputs()] == [
            (name, ["batch", "sequence"], "tensor(int64)") for name in manifest.input_names
        ]
        assert [o.name for o in session.get_outputs()] == manifest.output_names
        outputs = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        for node, value in zip(session.get_outputs(), outputs, strict=True):
            assert node.type == "tensor(float)"
            assert np.isfinite(value).all()
            if task == "qa":
                assert node.shape == ["batch", "sequence"] and value.shape == (3, 17)
            elif task == "ner":
                assert node.shape == ["batch", "sequence", len(NER_LABELS)]
                assert value.shape == (3, 17, len(NER_LABELS))
            else:
                assert node.shape == ["batch", len(LABELS[task])] and value.shape == (3, len(LABELS[task]))


@pytest.mark.parametrize("task", TASKS)
def test_manifest_describes_the_checkpoint_and_files(
    tiny_models: Path, tiny_checkpoints: dict[str, Path], task: str
) -> None:
    folder = tiny_models / f"tiny-{task}"
    raw = json.loads((folder / "manifest.json").read_text())
    manifest = read(tiny_models, task)
    assert manifest.name == f"tiny-{task}" and manifest.task == task
    assert manifest.id2label == dict(enumerate(LABELS[task]))
    assert all(key.isdigit() for key in raw["id2label"])
    assert (manifest.num_layers, manifest.hidden_size, manifest.num_heads) == (2, 64, 4)
    assert (manifest.model_type, manifest.max_length, manifest.pad_token_id, manifest.opset) == (
        "bert",
        512,
        0,
        17,
    )
    assert manifest.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest.output_names == (["start_logits", "end_logits"] if task == "qa" else ["logits"])
    assert manifest.source.checkpoint == str(tiny_checkpoints[task].resolve())  # outside the repository
    assert manifest.source.fingerprint == fingerprint(tiny_checkpoints[task])
    assert {"torch", "transformers", "onnx", "onnxruntime"} <= set(manifest.versions)
    for variant in manifest.variants:
        import hashlib

        data = (folder / variant.file).read_bytes()
        assert (variant.size_bytes, variant.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json", "tokenizer.json", "model.fp32.onnx", "model.fp16.onnx", "model.int8.onnx"]
    )


def test_tokenizer_json_is_saved_without_truncation_or_padding(tiny_models: Path) -> None:
    path = tiny_models / "tiny-classify" / "tokenizer.json"
    raw = json.loads(path.read_text())
    assert raw["truncation"] is None and raw["padding"] is None
    long_text = "the service answered quickly " * 60
    encoding = Tokenizer.from_file(str(path)).encode(long_text)
    assert len(encoding.ids) == 60 * 4 + 2  # not cut at 128, not padded
    assert encoding.ids[0] == 101 and encoding.ids[-1] == 102


def test_int8_choice_accurate_and_partial_quantization(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    from export.pipeline import export_model
    from export.tolerances import Tolerance

    checkpoint = str(tiny_checkpoints["classify"])
    accurate = export_model(
        checkpoint,
        "classify",
        tmp_path / "accurate",
        precisions=("fp32", "int8"),
        tolerances=TINY_TOLERANCES,
        int8_choice="accurate",
    )
    (chosen,) = [c for c in accurate.variants[-1].candidates if c.chosen]
    passing = [c for c in accurate.variants[-1].candidates if c.parity.passed]
    assert chosen.parity.passed and accurate.variants[-1].default
    assert chosen.parity.decision_agreement == max(c.parity.decision_agreement for c in passing)
    # nothing can pass a bound of 0: partial quantization is tried too, and the most accurate is
    # written, marked refused (the server skips it)
    impossible = {**TINY_TOLERANCES, "int8": Tolerance(atol=0.0, rtol=0.0, min_agreement=1.0)}
    refused = export_model(
        checkpoint, "classify", tmp_path / "refused", precisions=("fp32", "int8"), tolerances=impossible
    )
    int8 = refused.variants[-1]
    assert int8.precision == "int8" and not int8.parity.passed
    partial = [c for c in int8.candidates if c.fp32_nodes]
    assert [c.name for c in partial] == [
        "unfused-channel-keep-head",
        "unfused-channel-keep-head-edges",
        "unfused-channel-keep-head-ffn-out",
    ]
    # the tiny heads have 2 layers: head + every MatMul of both; head + one feed-forward output each
    assert 0 < partial[0].fp32_nodes < partial[2].fp32_nodes < partial[1].fp32_nodes
    assert partial[2].fp32_nodes == partial[0].fp32_nodes + 2
    (written,) = [c for c in int8.candidates if c.chosen]
    assert written.parity == int8.parity
    # only the written one is timed when none passes
    assert written.sequences_per_second and int8.sequences_per_second == written.sequences_per_second
    assert all(c.sequences_per_second is None for c in int8.candidates if not c.chosen)
