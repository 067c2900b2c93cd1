"""Discovery of the model repository: an entry that cannot be read is skipped and reported, never the
end of discovery; on a real directory (the unreadable entries are ones root cannot read either)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.contract.manifest import MANIFEST_FILE
from app.errors import ModelLoadError
from app.runtime.repository import discover, read_manifest
from app.settings import Settings


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """Two model folders among things that are not models."""
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        (tmp_path / name / MANIFEST_FILE).write_text("{}")
    (tmp_path / "README.md").write_text("not a model")
    (tmp_path / "notes").mkdir()  # a folder without a manifest
    (tmp_path / ".cache").mkdir()
    return tmp_path


def test_models_are_the_folders_with_a_manifest(repository: Path) -> None:
    found = discover(Settings(model_dir=repository))
    assert found.names == ["alpha", "beta"] and found.errors == {}


def test_an_entry_that_cannot_be_read_is_skipped_and_reported(repository: Path) -> None:
    # Following the link fails with ENAMETOOLONG, for root too (a folder of mode 000 does not stop root).
    os.symlink("x" * 300, repository / "lost+found")
    os.symlink(repository / "gone", repository / "dangling")
    found = discover(Settings(model_dir=repository))
    assert found.names == ["alpha", "beta"]
    assert set(found.errors) == {"lost+found", "dangling"}
    assert "File name too long" in found.errors["lost+found"]
    assert "No such file or directory" in found.errors["dangling"]


def test_a_manifest_that_is_not_a_file_is_a_model_that_fails_to_load(repository: Path) -> None:
    (repository / "gamma").mkdir()
    (repository / "gamma" / MANIFEST_FILE).mkdir()
    found = discover(Settings(model_dir=repository))
    assert found.names == ["alpha", "beta", "gamma"] and found.errors == {}
    with pytest.raises(ModelLoadError, match=f"gamma: {MANIFEST_FILE} is not a file"):
        read_manifest(repository / "gamma")


def test_configured_models_are_taken_as_given(repository: Path) -> None:
    found = discover(Settings(model_dir=repository, models=["beta", "missing"]))
    assert found.names == ["beta", "missing"] and found.errors == {}
