"""The image tests' shared pieces: a Docker engine (started when none runs), the CPU image built from the
unmodified Dockerfile, and the figures (timings, image size) printed at the end of the run.

Where no engine can be had the tests are skipped with a loud message, and fail under CI=true."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container.engine import (
    STANDIN_PREFIX,
    Engine,
    docker,
    find_or_start_engine,
    image_or_standin,
    in_ci,
)
from tests.container.torch_index import dockerfile_default, reachable, serve_folder, serve_index, write_index
from tests.deploy.tools import ROOT
from tools.training.config import DATA_DIR_ENV

FIGURES: dict[str, str] = {}
RUNTIME = "cpu"
OFFICIAL_BASE = dockerfile_default("PYTHON_IMAGE")
CPU_IMAGE_LIMIT_MB = 600


def record(name: str, value: str) -> None:
    FIGURES[name] = value


NOT_RUN: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for message in NOT_RUN:
        terminalreporter.section("IMAGE TESTS NOT RUN", sep="!", red=True, bold=True)
        terminalreporter.write_line(f"!!! {message}", red=True, bold=True)
        terminalreporter.write_line("!!! The image was neither built nor served.", red=True, bold=True)
    if FIGURES:
        terminalreporter.section("bertserve image figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name:<34} {value}")


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    found, why = find_or_start_engine()
    if found is None:
        NOT_RUN.append(why)
        if in_ci():
            pytest.fail(f"CI must build and serve the image, but: {why}")
        pytest.skip(f"no Docker engine: {why}")
    record("docker engine", why.splitlines()[0])
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    """python:3.11-slim-bookworm where it can be had, else the Debian stand-in (scripts/standin-base.sh)."""
    started = time.monotonic()
    image = image_or_standin(OFFICIAL_BASE, ["bash", str(ROOT / "scripts" / "standin-base.sh")])
    record("base image", f"{image} ({time.monotonic() - started:.0f} s to get)")
    return image


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    base: str
    build_args: dict[str, str]


@pytest.fixture(scope="session")
def cpu_image(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    """The CPU image, built from the unmodified Dockerfile with the legacy builder (what this engine has)."""
    build_args = {"RUNTIME": RUNTIME}
    standin = base_image != OFFICIAL_BASE
    if standin:
        build_args["PYTHON_IMAGE"] = base_image
    torch_index = dockerfile_default("TORCH_INDEX_URL")
    with (
        _torch_index(torch_index, tmp_path_factory.mktemp("torch-index")) as index_url,
        _eval_data() as data_url,
    ):
        if index_url != torch_index:
            build_args["TORCH_INDEX_URL"] = index_url
        if data_url is not None:  # the export scores the demo heads on their dev sets, as make models does
            build_args["EVAL_DATA_URL"] = data_url
        # An image built on a stand-in base carries the stand-in's name too.
        tag = f"{STANDIN_PREFIX if standin else ''}bertserve:image-test-{RUNTIME}"
        args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
        started = time.monotonic()
        done = docker(
            "build", "--network=host", *args, "-t", tag, str(ROOT), timeout=1800, env={"DOCKER_BUILDKIT": "0"}
        )
        seconds = time.monotonic() - started
    steps = done.stdout.count("\nStep ")
    ran = done.stdout.count("Running in ")
    record("image build", f"{seconds:.0f} s ({ran} of {steps} steps run, the rest cached or trivial)")
    yield BuiltImage(tag, base_image, build_args)


def _eval_data() -> contextlib.AbstractContextManager[str | None]:
    """The labelled data folder (BERTSERVE_DATA_DIR, as make test sets it) served to the build, if any."""
    folder = Path(os.environ.get(DATA_DIR_ENV, ROOT.parent / "shared" / "data"))
    return serve_folder(folder) if folder.is_dir() else contextlib.nullcontext(None)


def _torch_index(default_url: str, root: Path) -> contextlib.AbstractContextManager[str]:
    """The Dockerfile's torch index where it answers, else a local one with this machine's CPU wheel."""
    if reachable(default_url.rstrip("/") + "/torch/"):
        return contextlib.nullcontext(default_url)
    write_index(root)
    return serve_index(root)
