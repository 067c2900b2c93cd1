"""One evaluation task per served task: `EVAL_TASKS[name]`."""

from __future__ import annotations

from tools.evaluation.tasks.base import EvalTask, ModelInfo
from tools.evaluation.tasks.classify import ClassifyTask, PairTask
from tools.evaluation.tasks.ner import NerTask
from tools.evaluation.tasks.qa import QATask

EVAL_TASKS: dict[str, EvalTask] = {
    "classify": ClassifyTask(),
    "pair": PairTask(),
    "qa": QATask(),
    "ner": NerTask(),
}

__all__ = ["EVAL_TASKS", "EvalTask", "ModelInfo"]
