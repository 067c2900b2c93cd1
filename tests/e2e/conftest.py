"""A real server process over the tiny exported heads, shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.process import RunningServer, run_server


@pytest.fixture(scope="session")
def live_server(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`python -m app` on a free loopback port, serving tiny-classify/-pair/-qa/-ner (fp32 on CPU)."""
    with run_server(
        tiny_models, tmp_path_factory.mktemp("logs"), env={"BERTSERVE_PRECISION": "fp32"}
    ) as server:
        yield server


@pytest.fixture(scope="session")
def live_url(live_server: RunningServer) -> str:
    return live_server.url
