"""The one registry of tasks: a fifth task is one module plus one line here."""

from __future__ import annotations

from typing import Any

from app.tasks.base import Task
from app.tasks.classify import ClassifyTask
from app.tasks.ner import NERTask
from app.tasks.pair import PairTask
from app.tasks.qa import QATask

TASKS: dict[str, Task[Any, Any]] = {
    task.name: task
    for task in (
        ClassifyTask(),
        PairTask(),
        QATask(),
        NERTask(),
    )
}
"""Every task by name (the manifest's `task`, the endpoint's path)."""

__all__ = ["TASKS", "Task"]
