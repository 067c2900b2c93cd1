"""The `bertserve` command as installed (the console script beside the venv's python): its subcommands,
its version, each subcommand's own help, and usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from app.cli import COMMANDS, checkout_on_path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "bertserve"
SUBCOMMANDS = ("serve", "export", "models", "bench", "eval")


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}  # argparse wraps help at the terminal width
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


def bertserve(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.is_file(), f"{SCRIPT} is missing: `pip install -e .` registers the console script"
    return run([str(SCRIPT), *args], cwd)


def test_help_lists_the_five_subcommands() -> None:
    done = bertserve("--help")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ")]
    assert listed == list(SUBCOMMANDS) == list(COMMANDS)


def test_version_is_the_package_version() -> None:
    done = bertserve("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"bertserve {version('bertserve')}"


def test_export_help_is_the_exporters_own() -> None:
    done = bertserve("export", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: bertserve export ")
    for option in ("--model", "--task", "--out", "--precisions", "--int8-choice", "--eval-data"):
        assert option in done.stdout


@pytest.mark.parametrize(
    ("command", "option"),
    [("serve", "BERTSERVE_MODEL_DIR"), ("models", "--demo-dir"), ("bench", "--clients"), ("eval", "--heads")],
)
def test_every_subcommand_has_its_help(command: str, option: str) -> None:
    done = bertserve(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: bertserve {command} ")
    assert option in done.stdout


def test_the_tools_run_from_any_working_directory(tmp_path: Path) -> None:
    done = bertserve("eval", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("args", [("frobnicate",), (), ("--verbose", "serve"), ("serve", "--port", "9000")])
def test_a_usage_error_exits_2(args: tuple[str, ...]) -> None:
    done = bertserve(*args)
    assert done.returncode == 2
    assert "usage: bertserve" in done.stderr


def test_a_subcommand_runs_its_entry_point_and_passes_its_status(tmp_path: Path) -> None:
    done = bertserve("models", "--demo-dir", str(tmp_path), "--out", str(tmp_path / "models"))
    assert done.returncode == 0, done.stderr
    assert "no demo checkpoints yet" in done.stderr
    refused = bertserve("export", "--model", str(tmp_path), "--task", "translate", "--out", str(tmp_path))
    assert refused.returncode == 2
    assert "usage: bertserve export" in refused.stderr


def test_the_serving_path_loads_neither_torch_nor_the_exporter() -> None:
    probe = "import json, sys, app.cli, app.__main__; print(json.dumps(sorted(sys.modules)))"
    done = run([sys.executable, "-c", probe])
    assert done.returncode == 0, done.stderr
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert loaded.isdisjoint({"torch", "transformers", "export", "tools"})


def test_python_m_app_cli_is_the_same_command() -> None:
    done = run([sys.executable, "-m", "app.cli", "--help"])
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in SUBCOMMANDS)


def test_bench_outside_a_source_tree_says_what_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not checkout_on_path("bench", tmp_path)
    assert "bertserve bench needs the source tree" in capsys.readouterr().err
    assert str(tmp_path) not in sys.path
