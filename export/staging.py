"""Atomic output: build the model folder beside `--out`, then rename it into place."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from export.errors import OutputExistsError, UsageError


def check_destination(out: Path, *, force: bool) -> None:
    """Refuse an existing `out` unless `force` (and never replace a file)."""
    if out.exists() or out.is_symlink():
        if not out.is_dir() or out.is_symlink():
            raise UsageError(f"--out {out} exists and is not a folder; refusing to replace it")
        if not force:
            raise OutputExistsError(f"--out {out} already exists; pass --force to replace it")


@contextmanager
def staged_folder(out: Path, *, force: bool) -> Iterator[Path]:
    """Yield an empty sibling folder; on success it becomes `out`, on any failure it is removed."""
    check_destination(out, force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir()
    try:
        yield staging
        _publish(staging, out, force=force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish(staging: Path, out: Path, *, force: bool) -> None:
    check_destination(out, force=force)  # again: someone may have created it meanwhile
    if not out.exists():
        staging.rename(out)
        return
    retired = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.old"
    out.rename(retired)
    try:
        staging.rename(out)
    except BaseException:
        retired.rename(out)
        raise
    shutil.rmtree(retired, ignore_errors=True)
