"""Objects alive after startup are frozen out of the garbage collector's full collections."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.main import create_app
from app.process.collector import freeze_startup_objects
from app.settings import Settings


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the other tests run with an ordinary collector


def test_survivors_are_frozen_and_garbage_is_not() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle  # garbage: collected, not frozen
    kept = [{"startup": index} for index in range(1000)]
    frozen = freeze_startup_objects()
    assert frozen >= len(kept)
    assert gc.collect() == 0  # nothing left for a full collection to find


async def test_the_server_freezes_once_its_models_are_loaded(tmp_path: Path) -> None:
    app = create_app(Settings(model_dir=tmp_path, warmup=False))
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        for _ in range(500):
            if gc.get_freeze_count():
                break
            await asyncio.sleep(0.01)
        assert app.state.service.registry.loaded
        assert gc.get_freeze_count() > 0
