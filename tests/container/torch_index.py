"""A local package index (PEP 503) offering one wheel: the CPU torch build pip picks on this machine for the
project's torch pin. The image build gets it as TORCH_INDEX_URL where the PyTorch index is unreachable."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.deploy.tools import ROOT, output

DOCKERFILE = ROOT / "Dockerfile"
# A fixed port keeps TORCH_INDEX_URL, and so the build's layer cache, the same from run to run.
PREFERRED_PORT = 18731


def torch_pin() -> str:
    """torch==X from the export extra."""
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (pin,) = [req for req in extra["export"] if req.startswith("torch==")]
    return str(pin)


def dockerfile_default(arg: str) -> str:
    match = re.search(rf"^ARG {arg}=(\S*)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"the Dockerfile has no ARG {arg}=default"
    return match.group(1)


def reachable(url: str, timeout: float = 10) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (OSError, ValueError):
        return False


def write_index(root: Path) -> Path:
    """`pip download` the pinned torch (as pip resolves it on this machine) into root/simple/torch/."""
    project = root / "simple" / "torch"
    project.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(project), torch_pin()],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, output(done)
    (wheel,) = project.glob("torch-*.whl")
    assert "+cpu" in wheel.name, f"pip picks {wheel.name} here, not a CPU build"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    link = f'<a href="{urllib.parse.quote(wheel.name)}#sha256={digest}">{wheel.name}</a>'
    (project / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>{link}</body></html>\n")
    return wheel


def _bind(root: Path) -> ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=str(root))
    for port in (PREFERRED_PORT, 0):
        with contextlib.suppress(OSError):
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
    raise OSError("cannot bind a local port to serve files to the build")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_index(root: Path) -> Iterator[str]:
    """Serve root/simple on 127.0.0.1 (the build runs on the host's network); yields the index URL."""
    with serve_folder(root) as url:
        yield f"{url}/simple"


@contextlib.contextmanager
def serve_folder(root: Path) -> Iterator[str]:
    """Serve the files under root on 127.0.0.1; yields the base URL."""
    server = _bind(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
