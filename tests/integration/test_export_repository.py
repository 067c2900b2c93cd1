"""python -m export.repository: builds models/ from demo checkpoints, once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from app.contract.manifest import Manifest
from export import metadata
from export.repository import build_repository

ROOT = Path(__file__).resolve().parents[2]


def demo_checkpoint(demo: Path, name: str, source: Path, spec: dict[str, object]) -> Path:
    folder = demo / name
    shutil.copytree(source, folder)
    (folder / "bertserve.json").write_text(json.dumps(spec))
    return folder


def repository_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "export.repository", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_builds_once_and_rebuilds_what_changed(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    demo, models = tmp_path / "demo", tmp_path / "models"
    demo_checkpoint(
        demo, "sentiment", tiny_checkpoints["classify"], {"task": "classify", "name": "demo-sentiment"}
    )
    tagger = demo_checkpoint(demo, "tagger", tiny_checkpoints["ner"], {"task": "ner", "precisions": ["fp32"]})
    (demo / "notes").mkdir()  # no config.json: not a checkpoint

    first = build_repository(demo, models, ["fp32", "int8"], progress=lambda _: None)
    assert (first.exported, first.skipped, first.failed) == (["demo-sentiment", "tagger"], [], {})
    assert [v.precision for v in Manifest.read(models / "demo-sentiment").variants] == ["fp32", "int8"]
    assert [v.precision for v in Manifest.read(models / "tagger").variants] == ["fp32"]
    created = Manifest.read(models / "tagger").created_at

    lines: list[str] = []
    second = build_repository(demo, models, ["fp32", "int8"], progress=lines.append)
    assert (second.exported, second.skipped) == ([], ["demo-sentiment", "tagger"])
    assert any("tagger: up to date" in line for line in lines)

    config = json.loads((tagger / "config.json").read_text())
    (tagger / "config.json").write_text(json.dumps({**config, "finetuning_task": "ner"}))
    third = build_repository(demo, models, ["fp32", "int8"], progress=lambda _: None)
    assert (third.exported, third.skipped) == (["tagger"], ["demo-sentiment"])
    assert (
        Manifest.read(models / "tagger").source.fingerprint
        != Manifest.read(models / "demo-sentiment").source.fingerprint
    )
    assert Manifest.read(models / "tagger").created_at >= created
    assert sorted(p.name for p in models.iterdir()) == ["demo-sentiment", "tagger"]

    # a folder written by an older export recipe (or other package versions) is not up to date
    manifest = Manifest.read(models / "tagger")
    older = manifest.model_copy(update={"versions": {**manifest.versions, "export-recipe": "0"}})
    older.write(models / "tagger")
    fourth = build_repository(demo, models, ["fp32", "int8"], progress=lambda _: None)
    assert (fourth.exported, fourth.skipped) == (["tagger"], ["demo-sentiment"])
    assert Manifest.read(models / "tagger").versions["export-recipe"] == metadata.EXPORT_RECIPE


def test_no_demo_checkpoints_is_not_an_error(tmp_path: Path) -> None:
    result = repository_cli("--demo-dir", str(tmp_path / "demo"), "--out", str(tmp_path / "models"))
    assert result.returncode == 0
    assert "no demo checkpoints yet" in result.stderr
    assert not (tmp_path / "models").exists()


def test_a_failing_export_fails_the_build(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    demo_checkpoint(demo, "wrong", tiny_checkpoints["classify"], {"task": "qa"})
    result = repository_cli(
        "--demo-dir", str(demo), "--out", str(tmp_path / "models"), "--precisions", "fp32"
    )
    assert result.returncode == 1
    assert "error: wrong:" in result.stderr and "--task qa needs a BertForQuestionAnswering" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models" / "wrong").exists()


def test_a_checkpoint_without_bertserve_json_is_reported(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    demo = tmp_path / "demo"
    shutil.copytree(tiny_checkpoints["classify"], demo / "unlabelled")
    report = build_repository(demo, tmp_path / "models", ["fp32"], progress=lambda _: None)
    assert list(report.failed) == ["unlabelled"]
    assert "has no bertserve.json" in report.failed["unlabelled"]
