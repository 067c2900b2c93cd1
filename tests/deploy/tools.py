"""Where the deployment tests find their tools: scripts/install-tools.sh puts them there (`make tools`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS_VENV = Path(os.environ.get("TOOLS_VENV", ROOT / ".venv-tools"))
if not TOOLS_VENV.is_absolute():
    TOOLS_VENV = ROOT / TOOLS_VENV

INSTALL_HINT = "run `make tools` (scripts/install-tools.sh)"


def venv_tool(name: str) -> Path:
    """A tool of the tools venv (checkov, kubectl, docker-compose, hadolint, its python); skip when absent."""
    path = TOOLS_VENV / "bin" / name
    if not os.access(path, os.X_OK):
        pytest.skip(f"{name} is not installed in {TOOLS_VENV}: {INSTALL_HINT}")
    return path


def system_tool(name: str) -> Path:
    """A tool on PATH (promtool and prometheus, from Debian's prometheus package); skip when absent."""
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not on PATH: {INSTALL_HINT}")
    return Path(found)


def run(
    args: list[str | Path], *, timeout: float = 120, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run a tool; the result carries stdout and stderr for the assertion message."""
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
