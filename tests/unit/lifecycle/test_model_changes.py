"""How the repository poll (app.lifecycle.model_control) tells a new, changed, half-written or removed
model folder, on folders made by hand."""

from __future__ import annotations

import os
from pathlib import Path

from app.lifecycle.model_control import Attempt, Fingerprint, fingerprint, plan_changes, scan
from app.settings import Settings


def model_folder(root: Path, name: str, manifest: str = '{"name": "m"}') -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(manifest)
    (folder / "model.fp32.onnx").write_bytes(b"graph")
    return folder


def seen(manifest: str = "a", *files: tuple[str, int, int]) -> Fingerprint:
    return Fingerprint(manifest, files or (("model.fp32.onnx", 5, 1),))


def test_a_folder_without_a_manifest_has_no_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert fingerprint(tmp_path / "empty") is None
    assert fingerprint(tmp_path / "missing") is None


def test_the_manifest_decides_the_model_and_the_files_whether_it_is_still_written(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "m")
    first = fingerprint(folder)
    assert first is not None and fingerprint(folder) == first
    with (folder / "model.fp32.onnx").open("ab") as graph:
        graph.write(b"more")  # still being copied: the same manifest, other files
    growing = fingerprint(folder)
    assert growing is not None and growing != first
    assert growing.manifest_sha256 == first.manifest_sha256
    (folder / "manifest.json").write_text('{"name": "m", "created_at": "later"}')
    changed = fingerprint(folder)
    assert changed is not None and changed.manifest_sha256 != first.manifest_sha256


def test_a_touched_file_changes_the_files_but_not_the_model(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "m")
    before = fingerprint(folder)
    status = os.stat(folder / "model.fp32.onnx")
    os.utime(folder / "model.fp32.onnx", ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    after = fingerprint(folder)
    assert before is not None and after is not None
    assert after != before and after.manifest_sha256 == before.manifest_sha256


def test_scan_finds_the_model_folders_only(tmp_path: Path) -> None:
    model_folder(tmp_path, "a")
    model_folder(tmp_path, "b")
    model_folder(tmp_path, ".staging")  # hidden: being prepared beside the repository
    (tmp_path / "no-manifest").mkdir()
    (tmp_path / "notes.txt").write_text("not a model")
    assert sorted(scan(Settings(model_dir=tmp_path))) == ["a", "b"]
    assert list(scan(Settings(model_dir=tmp_path, models=["b", "gone"]))) == ["b"]


def test_a_new_folder_loads_once_two_polls_saw_it_the_same() -> None:
    now = {"new": seen()}
    assert plan_changes(now, {}, {}, [], []).load == []  # seen once: it may still be written
    assert plan_changes(now, {"new": seen("a", ("model.fp32.onnx", 3, 1))}, {}, [], []).load == []
    assert plan_changes(now, now, {}, [], []).load == ["new"]


def test_a_served_model_reloads_when_its_manifest_changed_not_when_a_file_was_touched() -> None:
    loaded = {"m": Attempt(seen("a"), ok=True)}
    touched = {"m": seen("a", ("model.fp32.onnx", 5, 2))}
    assert plan_changes(touched, touched, loaded, ["m"], []).load == []
    changed = {"m": seen("b")}
    assert plan_changes(changed, changed, loaded, ["m"], []).load == ["m"]


def test_a_failed_folder_is_tried_again_only_once_it_changed() -> None:
    failed = {"m": Attempt(seen("a"), ok=False)}
    same = {"m": seen("a")}
    assert plan_changes(same, same, failed, ["m"], []).load == []
    rewritten = {"m": seen("a", ("model.fp32.onnx", 9, 3))}  # the same manifest, the files fixed
    assert plan_changes(rewritten, rewritten, failed, ["m"], []).load == ["m"]


def test_a_model_unloaded_through_the_api_is_left_alone() -> None:
    now = {"m": seen("b")}
    assert plan_changes(now, now, {}, [], ["m"]).load == []
    assert plan_changes(now, now, {"m": Attempt(seen("a"), ok=True)}, [], ["m"]).load == []


def test_a_removed_folder_unloads_once_two_polls_missed_it() -> None:
    loaded = {"m": Attempt(seen(), ok=True)}
    assert plan_changes({}, {"m": seen()}, loaded, ["m"], []).unload == []  # a rename in progress
    assert plan_changes({}, {}, loaded, ["m"], []).unload == ["m"]


def test_a_configured_model_whose_folder_never_existed_is_not_unloaded() -> None:
    """It failed at startup and stays listed as failed: the poll unloads only folders it has seen."""
    assert plan_changes({}, {}, {}, ["configured"], []).unload == []
