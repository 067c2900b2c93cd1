"""Atomic model folders: staged beside --out, renamed into place, removed on failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.errors import OutputExistsError, UsageError
from export.staging import staged_folder


def test_success_renames_the_staging_folder_into_place(tmp_path: Path) -> None:
    out = tmp_path / "models" / "m"
    with staged_folder(out, force=False) as folder:
        assert folder.parent == out.parent and not out.exists()
        (folder / "manifest.json").write_text("{}")
    assert [p.name for p in out.iterdir()] == ["manifest.json"]
    assert [p.name for p in out.parent.iterdir()] == ["m"]


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m"
    with pytest.raises(RuntimeError), staged_folder(out, force=False) as folder:
        (folder / "model.fp32.onnx").write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_out_needs_force_and_force_replaces_it(tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="pass --force"), staged_folder(out, force=False):
        pass
    with staged_folder(out, force=True) as folder:
        (folder / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_a_forced_failure_keeps_the_old_folder(tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(out, force=True):
        raise RuntimeError("boom")
    assert [p.name for p in out.iterdir()] == ["old.txt"]


def test_a_file_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "m").write_text("a file")
    with pytest.raises(UsageError, match="not a folder"), staged_folder(tmp_path / "m", force=True):
        pass
