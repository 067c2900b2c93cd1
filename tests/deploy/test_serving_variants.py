"""scripts/serving_variants.py: an image keeps per model exactly the variant(s) precision=auto serves on its
runtime, and the server loads what is left."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.contract.manifest import Manifest
from app.runtime.repository import load_model
from app.settings import Settings
from tests.deploy.tools import ROOT

SCRIPT = ROOT / "scripts" / "serving_variants.py"


@pytest.fixture
def repository(tiny_models: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "models"
    shutil.copytree(tiny_models, copy)
    return copy


def prune(repository: Path, runtime: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--runtime", runtime, str(repository)],
        capture_output=True, text=True, check=False, cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def on_disk(folder: Path) -> set[str]:
    return {p.name.split(".")[1] for p in folder.glob("*.onnx")}


@pytest.mark.parametrize(("runtime", "expected"), [("cpu", {"int8"}), ("gpu", {"fp16", "int8"})])
def test_keeps_what_auto_serves(repository: Path, runtime: str, expected: set[str]) -> None:
    folder = repository / "tiny-classify"
    assert {v.precision for v in Manifest.read(folder).variants if v.parity.passed} >= {
        "fp32",
        "fp16",
        "int8",
    }
    done = prune(repository, runtime)
    assert done.returncode == 0, done.stderr
    assert on_disk(folder) == expected
    assert {v.precision for v in Manifest.read(folder).variants} == expected
    if runtime == "cpu":
        loaded = load_model("tiny-classify", Settings(model_dir=repository, device="cpu"))
        assert loaded.variant.precision == "int8"


def test_falls_back_to_fp32_where_int8_was_refused(repository: Path) -> None:
    folder = repository / "tiny-ner"
    manifest = Manifest.read(folder)
    refused = [
        v.model_copy(update={"parity": v.parity.model_copy(update={"passed": False})})
        if v.precision == "int8"
        else v
        for v in manifest.variants
    ]
    manifest.model_copy(update={"variants": refused}).write(folder)
    assert prune(repository, "cpu").returncode == 0
    assert on_disk(folder) == {"fp32"}, "the refused int8 file is not shipped either"


def test_ships_fp32_where_int8_is_outside_its_accuracy_budget(repository: Path) -> None:
    folder = repository / "tiny-pair"
    manifest = Manifest.read(folder)
    outside = [
        v.model_copy(update={"default": False}) if v.precision == "int8" else v for v in manifest.variants
    ]
    manifest.model_copy(update={"variants": outside}).write(folder)
    assert prune(repository, "cpu").returncode == 0
    assert on_disk(folder) == {"fp32"}, "auto serves fp32 here, so the image carries fp32"


def test_a_model_without_a_served_variant_fails(repository: Path) -> None:
    folder = repository / "tiny-qa"
    manifest = Manifest.read(folder)
    manifest.model_copy(update={"variants": [v for v in manifest.variants if v.precision == "fp16"]}).write(
        folder
    )
    done = prune(repository, "cpu")
    assert done.returncode != 0 and "tiny-qa: no validated variant" in done.stderr
