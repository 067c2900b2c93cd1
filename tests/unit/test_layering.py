"""The import direction, checked on the source: the contract imports nothing of app, the runtime
knows no task and no HTTP, the tasks know no HTTP, batching or onnxruntime;
process tuning and the HTTP edge know no models."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

# folder under app/ -> module prefixes its files must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "contract": ("app.runtime", "app.tasks", "app.api", "app.service", "app.batching", "app.settings"),
    "runtime": (
        "app.tasks",
        "app.api",
        "app.service",
        "app.batching",
        "app.lifecycle",
        "app.edge",
        "fastapi",
    ),
    "tasks": (
        "app.api",
        "app.service",
        "app.batching",
        "app.lifecycle",
        "app.edge",
        "onnxruntime",
        "fastapi",
    ),
    "batching": (
        "app.settings",
        "app.tasks",
        "app.api",
        "app.service",
        "app.lifecycle",
        "app.edge",
        "app.runtime",
        "onnxruntime",
        "fastapi",
    ),
    # process tuning knows no HTTP, models or tasks; the HTTP edge knows no models or inference
    "process": ("app.api", "app.edge", "app.lifecycle", "app.service", "app.tasks", "fastapi"),
    "edge": ("app.lifecycle", "app.service", "app.tasks", "app.runtime", "app.batching", "onnxruntime"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (imports inside functions count too)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def violations(folder: str) -> list[str]:
    banned = FORBIDDEN[folder]
    found = []
    for path in sorted((APP / folder).rglob("*.py")):
        for module in sorted(imported_modules(path)):
            if any(module == prefix or module.startswith(prefix + ".") for prefix in banned):
                found.append(f"{path.relative_to(APP.parent)} imports {module}")
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_run_one_way(folder: str) -> None:
    assert violations(folder) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "upward.py"
    source.write_text("def f():\n    from app.tasks.base import Task\n    import app.api.v2\n")
    assert imported_modules(source) >= {"app.tasks.base", "app.api.v2"}


MAX_CLASS_LINES = 150


def long_classes(root: Path, limit: int = MAX_CLASS_LINES) -> list[str]:
    """Classes longer than `limit` lines (first line to last, docstring and comments included)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root.parent)}: {node.name} is {lines} lines")
    return found


def test_no_class_in_app_does_several_jobs() -> None:
    assert long_classes(APP) == []


def test_the_size_check_measures_a_class(tmp_path: Path) -> None:
    (tmp_path / "big.py").write_text("class Big:\n" + "    x = 1\n" * 5)
    assert long_classes(tmp_path, limit=5) == [f"{tmp_path.name}/big.py: Big is 6 lines"]
