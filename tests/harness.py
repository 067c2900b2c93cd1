"""Start and stop a real server process on a free loopback port (the tests and the benchmark use it)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as Kubernetes does; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def wait_until(server: RunningServer, probe: str, timeout: float) -> None:
    """Poll `probe` (e.g. /health/ready) until it answers 200; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}{probe}", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{probe} not 200 in {timeout} s:\n{server.log()}")


def wait_until_ready(server: RunningServer, timeout: float) -> None:
    wait_until(server, "/health/ready", timeout)


@contextlib.contextmanager
def run_process(
    command: list[str],
    port: int,
    log_dir: Path,
    *,
    env: dict[str, str],
    ready: bool = True,
    timeout: float = 90,
) -> Iterator[RunningServer]:
    """Run `command`, an HTTP server on `port`; wait for /health/ready unless `ready=False`.

    The process gets SIGTERM on exit from the block."""
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until(server, "/health/ready" if ready else "/health/live", timeout)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def run_server(
    model_dir: Path,
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    ready: bool = True,
    timeout: float = 90,
) -> Iterator[RunningServer]:
    """A real bertserve (`python -m app`) over `model_dir` on a free loopback port."""
    port = free_port()
    environment = {
        "BERTSERVE_MODEL_DIR": str(model_dir),
        "BERTSERVE_HOST": "127.0.0.1",
        "BERTSERVE_PORT": str(port),
        "BERTSERVE_INTRA_OP_THREADS": "1",
        "BERTSERVE_DRAIN_TIMEOUT_S": "10",
        **(env or {}),
    }
    with run_process(
        [sys.executable, "-m", "app"], port, log_dir, env=environment, ready=ready, timeout=timeout
    ) as server:
        yield server
