"""One evaluation task per served task: `EVAL_TASKS[name]`."""

from __future__ import annotations

from evaluation.tasks.base import EvalTask, ModelInfo
from evaluation.tasks.classify import ClassifyTask, PairTask
from evaluation.tasks.ner import NerTask
from evaluation.tasks.qa import QATask

EVAL_TASKS: dict[str, EvalTask] = {
    "classify": ClassifyTask(),
    "pair": PairTask(),
    "qa": QATask(),
    "ner": NerTask(),
}

__all__ = ["EVAL_TASKS", "EvalTask", "ModelInfo"]
