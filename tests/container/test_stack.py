"""`docker compose up` of docker-compose.yml with the CPU override, on the image under test: Prometheus
scrapes bertserve over the compose network and evaluates every alert rule; then everything is torn down.
Grafana is left out here (tests/container/compose.local.yml): it is not packaged for Debian and Docker Hub
is out of reach; its dashboard is checked by tests/deploy/test_dashboard.py."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.container.conftest import BuiltImage, record
from tests.container.engine import Engine, image_or_standin
from tests.container.torch_index import free_port
from tests.deploy.promql import alert_queries
from tests.deploy.tools import ROOT, output, venv_tool

# The first test to need the image builds it: up to ~5 min cold on 2 cores.
pytestmark = pytest.mark.timeout(1800)
HERE = Path(__file__).parent
FILES = [ROOT / "docker-compose.yml", ROOT / "docker-compose.cpu.yml", HERE / "compose.local.yml"]
PROJECT = "bertserve-image-test"
OFFICIAL_PROMETHEUS = "prom/prometheus:v3.5.0"
STANDIN_PROMETHEUS = "bertserve-standin/prometheus:debian"
ALERTS = sorted(q.source.removeprefix("rule ").strip("'") for q in alert_queries())
T = TypeVar("T")


@dataclass
class Stack:
    compose: Path
    env: dict[str, str]
    prometheus_url: str
    server_url: str

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.compose), "-p", PROJECT, "--project-directory", str(ROOT)]
        for path in FILES:
            command += ["-f", str(path)]
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=ROOT,
            env={**os.environ, **self.env},
        )

    def api(self, path: str) -> Any:
        body = httpx.get(f"{self.prometheus_url}/api/v1/{path}", timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail", "40").stdout


def eventually(check: Callable[[], T | None], timeout: float, what: str, stack: Stack) -> T:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{stack.logs()}")
        time.sleep(0.5)


def prometheus_image(base_image: str) -> str:
    """prom/prometheus where it is here or can be pulled, else Debian's Prometheus built on the same base."""
    build = (
        f"DOCKER_BUILDKIT=0 docker build -q --network=host --build-arg BASE_IMAGE={base_image} "
        f"-t {STANDIN_PROMETHEUS} {HERE / 'prometheus'} >&2 && echo {STANDIN_PROMETHEUS}"
    )
    return image_or_standin(OFFICIAL_PROMETHEUS, ["bash", "-c", build])


@pytest.fixture(scope="module")
def stack(engine: Engine, cpu_image: BuiltImage) -> Iterator[Stack]:
    compose = venv_tool("docker-compose")
    prometheus = prometheus_image(cpu_image.base)
    server_port, prometheus_port = free_port(), free_port()
    env = {
        "BERTSERVE_IMAGE": cpu_image.tag,
        "PROMETHEUS_IMAGE": prometheus,
        "BERTSERVE_PUBLISH_PORT": str(server_port),
        "PROMETHEUS_PORT": str(prometheus_port),
        "DOCKER_BUILDKIT": "0",
    }
    stack = Stack(compose, env, f"http://127.0.0.1:{prometheus_port}", f"http://127.0.0.1:{server_port}")
    stack.run("down", "-v", "--remove-orphans")
    started = time.monotonic()
    up = stack.run("up", "-d", "--wait", "--wait-timeout", "240", timeout=300)
    try:
        assert up.returncode == 0, f"{output(up)}\n{stack.logs()}"
        record("compose up --wait (cpu, Prometheus)", f"{time.monotonic() - started:.1f} s")
        yield stack
    finally:
        down = stack.run("down", "-v", "--remove-orphans", "-t", "35")
        assert down.returncode == 0, output(down)


def test_only_the_server_and_prometheus_run(stack: Stack) -> None:
    services = stack.run("ps", "--services", "--status", "running").stdout.split()
    assert sorted(services) == ["bertserve", "prometheus"], services
    ready = httpx.get(f"{stack.server_url}/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text


def test_prometheus_scrapes_bertserve(stack: Stack) -> None:
    def up() -> list[dict[str, Any]]:
        targets = stack.api("targets")["activeTargets"]
        return [t for t in targets if t["labels"]["job"] == "bertserve" and t["health"] == "up"]

    (target,) = eventually(up, 60, "the bertserve target to be up", stack)
    assert target["scrapeUrl"] == "http://bertserve:8000/metrics", target
    series = stack.api("query?query=bertserve_ready")["result"]
    assert [s["value"][1] for s in series] == ["1"], series


def test_every_alert_rule_evaluates(stack: Stack) -> None:
    def evaluated() -> list[dict[str, Any]]:
        rules = [rule for group in stack.api("rules")["groups"] for rule in group["rules"]]
        done = [r for r in rules if not r.get("lastEvaluation", "").startswith("0001-")]
        return rules if rules and len(done) == len(rules) else []

    rules = eventually(evaluated, 60, "every rule to be evaluated", stack)
    assert sorted(r["name"] for r in rules) == ALERTS
    unhealthy = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert unhealthy == {}, unhealthy
    firing = [a["labels"]["alertname"] for a in stack.api("alerts")["alerts"] if a["state"] == "firing"]
    assert firing == [], firing
