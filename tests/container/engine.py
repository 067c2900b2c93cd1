"""The Docker engine the image tests drive: the docker CLI, an engine started when none runs, and the
stand-ins made where Docker Hub or the PyTorch index cannot be reached (never pushed, never named as the
official images)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.tools import ROOT, output

# The engine as it runs on these machines: no default bridge and no iptables rules, so builds use the host's
# network; containers get user-defined networks (compose) or the host's.
DOCKERD_ARGS = ["--storage-driver=overlay2", "--iptables=false", "--bridge=none"]
DOCKERD_LOG = Path(os.environ.get("BERTSERVE_DOCKERD_LOG", "/var/log/bertserve-dockerd.log"))
STANDIN_PREFIX = "bertserve-standin/"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def docker(
    *args: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; with check, a failure raises with the command's output."""
    done = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}\n{output(done)}")
    return done


def engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@dataclass
class Engine:
    """A reachable Docker engine; `started` is the dockerd this session launched (stopped at the end)."""

    started: subprocess.Popen[bytes] | None = None
    figures: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.started is None:
            return
        self.started.terminate()
        try:
            self.started.wait(30)
        except subprocess.TimeoutExpired:
            self.started.kill()
            self.started.wait()


def find_or_start_engine() -> tuple[Engine | None, str]:
    """The running engine, or one started here; (None, why) when there is none to be had."""
    if shutil.which("docker") is None:
        return None, "the docker CLI is not installed"
    if engine_answers():
        return Engine(), "a Docker engine was already running"
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        return None, "no Docker engine runs and dockerd is not installed (make tools installs docker.io)"
    if os.geteuid() != 0:
        return None, "no Docker engine runs and starting dockerd needs root"
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with DOCKERD_LOG.open("ab") as log:
        process = subprocess.Popen(
            [dockerd, *DOCKERD_ARGS],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = DOCKERD_LOG.read_text(errors="replace")[-3000:]
            return None, f"dockerd {' '.join(DOCKERD_ARGS)} exited with {process.returncode}:\n{tail}"
        if engine_answers():
            return Engine(started=process), f"started dockerd {' '.join(DOCKERD_ARGS)} (log {DOCKERD_LOG})"
        time.sleep(0.5)
    process.terminate()
    return None, f"dockerd did not answer within 60 s (log {DOCKERD_LOG})"


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False, timeout=30).returncode == 0


def image_or_standin(official: str, make_standin: list[str], timeout: float = 600) -> str:
    """The official image if it is here or can be pulled; else the stand-in the given command makes
    (the command prints the stand-in's tag, which must be under bertserve-standin/)."""
    if image_exists(official) or docker("pull", "-q", official, check=False, timeout=180).returncode == 0:
        return official
    done = subprocess.run(
        make_standin, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(make_standin)}\n{output(done)}")
    tag = done.stdout.strip().splitlines()[-1]
    assert tag.startswith(STANDIN_PREFIX), f"a stand-in must be named {STANDIN_PREFIX}*, not {tag}"
    return tag
