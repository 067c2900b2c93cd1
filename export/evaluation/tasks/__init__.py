"""One evaluation task per served task: `EVAL_TASKS[name]`."""

from __future__ import annotations

from export.evaluation.tasks.base import EvalTask, ModelInfo
from export.evaluation.tasks.classify import ClassifyTask, PairTask
from export.evaluation.tasks.ner import NerTask
from export.evaluation.tasks.qa import QATask

EVAL_TASKS: dict[str, EvalTask] = {
    "classify": ClassifyTask(),
    "pair": PairTask(),
    "qa": QATask(),
    "ner": NerTask(),
}

__all__ = ["EVAL_TASKS", "EvalTask", "ModelInfo"]
