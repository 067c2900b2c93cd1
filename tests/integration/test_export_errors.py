"""Every way an export can be refused: a clear typed error, and nothing written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.contract.manifest import Manifest, Precision
from export import errors
from export.pipeline import export_model
from export.tolerances import DEFAULT_TOLERANCES, Tolerance

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "export", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    if out.parent.exists():
        assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def partial_copy(source: Path, dest: Path, keep: tuple[str, ...]) -> Path:
    dest.mkdir()
    for name in keep:
        shutil.copy(source / name, dest / name)
    return dest


TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


# ---- through the CLI, in a subprocess ----


def test_cli_missing_path(tmp_path: Path) -> None:
    out = tmp_path / "models" / "x"
    result = cli("--model", str(tmp_path / "nowhere"), "--task", "classify", "--out", str(out))
    assert_clean_failure(result, "error: no checkpoint folder at")
    assert_nothing_written(out)


def test_cli_task_not_matching_the_head(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x"
    result = cli("--model", str(tiny_checkpoints["qa"]), "--task", "ner", "--out", str(out))
    assert_clean_failure(result, "is a BertForQuestionAnswering checkpoint, which serves --task qa")
    assert_nothing_written(out)


def test_cli_existing_out_needs_force(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = cli("--model", str(tiny_checkpoints["classify"]), "--task", "classify", "--out", str(out))
    assert_clean_failure(result, "already exists; pass --force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    result = cli(
        "--model", str(tiny_checkpoints["classify"]), "--task", "classify", "--out", str(out),
        "--precisions", "fp32", "--force",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "fuse: done in" in result.stderr and "fp32 on CPUExecutionProvider" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.fp32.onnx", "tokenizer.json"]
    assert Manifest.read(out).variant("fp32") is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x.")]


def test_cli_hub_id_with_the_hub_unreachable_fails_fast(tmp_path: Path) -> None:
    out = tmp_path / "x"
    began = time.monotonic()
    result = cli(
        "--model", "bertserve-tests/no-such-model", "--task", "classify", "--out", str(out),
        env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")},
    )  # fmt: skip
    assert_clean_failure(result, "hub at http://127.0.0.1:9 is unreachable")
    assert time.monotonic() - began < 60
    assert_nothing_written(out)


def test_cli_unknown_precision_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("--model", "x", "--task", "classify", "--out", str(tmp_path / "x"), "--precisions", "fp8")
    assert result.returncode == 2 and "choose from fp32,fp16,int8" in result.stderr


# ---- through the API ----


def test_hub_id_in_offline_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(errors.HubUnavailableError, match="offline mode"):
        export_model("bertserve-tests/no-such-model", "classify", tmp_path / "x")
    assert_nothing_written(tmp_path / "x")


def test_a_folder_without_config_is_no_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.NotACheckpointError, match=r"has no config\.json"):
        export_model(str(tmp_path / "empty"), "classify", tmp_path / "x")
    assert_nothing_written(tmp_path / "x")


def test_a_file_is_no_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"0")
    with pytest.raises(errors.NotACheckpointError, match="is a file"):
        export_model(str(tmp_path / "model.bin"), "classify", tmp_path / "x")


def test_a_checkpoint_without_weights(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    folder = partial_copy(tiny_checkpoints["classify"], tmp_path / "ck", ("config.json", *TOKENIZER))
    with pytest.raises(errors.NotACheckpointError, match="no weights"):
        export_model(str(folder), "classify", tmp_path / "x")
    assert_nothing_written(tmp_path / "x")


def test_a_checkpoint_without_tokenizer(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    folder = partial_copy(tiny_checkpoints["classify"], tmp_path / "ck", ("config.json", "model.safetensors"))
    with pytest.raises(errors.NotACheckpointError, match="has no tokenizer"):
        export_model(str(folder), "classify", tmp_path / "x")
    assert_nothing_written(tmp_path / "x")


def test_a_gpt2_checkpoint_is_not_supported(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32)
    ).save_pretrained(folder)
    for name in TOKENIZER:
        shutil.copy(tiny_checkpoints["classify"] / name, folder / name)
    with pytest.raises(errors.UnsupportedArchitectureError, match="model_type 'gpt2' is not supported"):
        export_model(str(folder), "classify", tmp_path / "x")
    assert_nothing_written(tmp_path / "x")


@pytest.mark.parametrize(
    ("head", "task", "message"),
    [
        ("qa", "ner", "BertForQuestionAnswering checkpoint, which serves --task qa"),
        ("ner", "classify", "BertForTokenClassification checkpoint, which serves --task ner"),
        ("classify", "qa", "serves --task classify or pair; --task qa needs a BertForQuestionAnswering"),
        ("pair", "ner", "--task ner needs a BertForTokenClassification"),
    ],
)
def test_a_task_that_does_not_match_the_head(
    tiny_checkpoints: dict[str, Path], tmp_path: Path, head: str, task: str, message: str
) -> None:
    with pytest.raises(errors.TaskMismatchError, match=re.escape(message)):
        export_model(str(tiny_checkpoints[head]), task, tmp_path / "x")  # type: ignore[arg-type]
    assert_nothing_written(tmp_path / "x")


def test_max_length_beyond_the_position_embeddings(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(errors.UsageError, match=r"outside 16\.\.512"):
        export_model(str(tiny_checkpoints["classify"]), "classify", tmp_path / "x", max_length=1024)
    assert_nothing_written(tmp_path / "x")


def test_existing_out_without_force(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(errors.OutputExistsError):
        export_model(str(tiny_checkpoints["classify"]), "classify", tmp_path / "x")
    assert list((tmp_path / "x").iterdir()) == []


# ---- atomic output ----


def test_fp32_over_tolerance_fails_and_writes_nothing(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    impossible: dict[Precision, Tolerance] = {"fp32": Tolerance(atol=0.0, rtol=0.0, min_agreement=1.0)}
    with pytest.raises(errors.ParityError, match="fused fp32 graph does not match PyTorch"):
        export_model(
            str(tiny_checkpoints["ner"]), "ner", tmp_path / "x", precisions=["fp32"], tolerances=impossible
        )
    assert_nothing_written(tmp_path / "x")


def test_a_failed_forced_export_keeps_the_previous_folder(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "x"
    out.mkdir()
    (out / "previous.txt").write_text("still here")
    strict_int8: dict[Precision, Tolerance] = {"int8": Tolerance(atol=1.0, rtol=0.0, min_agreement=1.01)}
    with pytest.raises(errors.ParityError, match=r"over tolerance: int8 \(--strict\)"):
        export_model(
            str(tiny_checkpoints["classify"]), "classify", out, precisions=["fp32", "int8"],
            tolerances=strict_int8, strict=True, force=True,
        )  # fmt: skip
    assert [p.name for p in out.iterdir()] == ["previous.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_a_refused_variant_is_recorded_not_served(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    lines: list[str] = []
    manifest = export_model(
        str(tiny_checkpoints["pair"]), "pair", tmp_path / "x", precisions=["fp32", "int8"],
        tolerances={"int8": Tolerance(atol=1.0, rtol=0.0, min_agreement=1.01)}, progress=lines.append,
    )  # fmt: skip
    int8 = manifest.variants[1]
    assert int8.precision == "int8" and not int8.parity.passed and int8.parity.min_agreement == 1.01
    assert manifest.variant("int8") is None and manifest.variant("fp32") is not None
    assert any("int8 REFUSED" in line for line in lines)
    assert Manifest.read(tmp_path / "x") == manifest
    assert DEFAULT_TOLERANCES["int8"].min_agreement < 1.0
