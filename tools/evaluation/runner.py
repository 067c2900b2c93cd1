"""Score each target with the pipeline, then with a real server per precision, side by side."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.evaluation.datasets import sample
from export.evaluation.tasks import EVAL_TASKS, EvalTask, ModelInfo
from tests.harness import run_server
from tools.evaluation.client import serve_all, served_variants
from tools.evaluation.goals import Row, agreement, judge
from tools.evaluation.heads import Target
from tools.evaluation.reference import run_reference
from tools.evaluation.repository import model_info, unservable

Say = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    precisions: tuple[str, ...] = ("fp32", "int8")
    limit: int | None = None  # a seeded random subset of each dev set
    seed: int = 0
    batch: int = 32  # inputs per request, and the pipeline's batch_size
    concurrency: int = 4  # requests in flight
    threads: int = 0  # the server's ONNX Runtime threads (0: one per core)
    ready_timeout: float = 300.0


@dataclass
class Scored:
    """One target's examples, the request sent for them, and the pipeline's answers."""

    target: Target
    task: EvalTask
    model: ModelInfo
    examples: list[Any]
    inputs: list[Any]
    options: dict[str, Any]
    decisions: list[Any] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def score_reference(target: Target, models_dir: Path, settings: Settings, say: Say) -> Scored:
    """Read the data, build the request, and score transformers.pipeline on it."""
    task = EVAL_TASKS[target.task]
    model = model_info(models_dir, target.name)
    examples = sample(task.read(target.data), settings.limit, settings.seed)
    scored = Scored(target, task, model, examples, task.inputs(examples), task.options(model))
    say(f"{target.name}: pipeline (PyTorch fp32) on {len(examples)} examples of {target.data} ...")
    results, scored.seconds = run_reference(
        task,
        target.checkpoint,
        scored.inputs,
        scored.options,
        max_length=model.max_length,
        batch_size=settings.batch,
    )
    scored.decisions = [task.decision(r) for r in results]
    scored.metrics = task.score(examples, results, model)
    say(f"{target.name}: pipeline {_figures(scored.metrics)} in {scored.seconds:.1f} s")
    return scored


def score_service(scored: Scored, url: str, precision: str, served: str, settings: Settings) -> Row:
    """Send the same inputs to the server; score its answers and compare them with the pipeline's."""
    task, target = scored.task, scored.target
    results, seconds = serve_all(
        url,
        task.endpoint,
        target.name,
        scored.inputs,
        scored.options,
        batch=settings.batch,
        concurrency=settings.concurrency,
    )
    agree, differ = agreement([task.decision(r) for r in results], scored.decisions)
    row = Row(
        head=target.name,
        task=target.task,
        precision=precision,
        served=served,
        metrics=task.score(scored.examples, results, scored.model),
        reference=scored.metrics,
        agreement=agree,
        examples=len(scored.examples),
        seconds=seconds,
        reference_seconds=scored.seconds,
        disagreements=differ,
    )
    judge(row)
    return row


def server_env(names: Sequence[str], precision: str, settings: Settings) -> dict[str, str]:
    return {
        "BERTSERVE_PRECISION": precision,
        "BERTSERVE_MODELS": json.dumps(list(names)),
        "BERTSERVE_INTRA_OP_THREADS": str(settings.threads),
        "BERTSERVE_REQUEST_TIMEOUT_S": "600",
        # a scoring run queues whole data sets on purpose: admission by expected wait would refuse it
        "BERTSERVE_BATCH__MAX_QUEUE_WAIT_S": "600",
    }


def servable(scored: list[Scored], models_dir: Path, precision: str) -> tuple[list[Scored], dict[str, str]]:
    """(the targets the server can load at `precision`, {"head precision": why not} for the rest)."""
    ready: list[Scored] = []
    refused: dict[str, str] = {}
    for item in scored:
        why = unservable(models_dir, item.target.name, precision)
        if why is None:
            ready.append(item)
        else:
            refused[f"{item.target.name} {precision}"] = why
    return ready, refused


def score_at(
    precision: str, ready: list[Scored], models_dir: Path, *, log_dir: Path, settings: Settings, say: Say
) -> list[Row]:
    """One server at `precision` loading only the `ready` models; a row for each."""
    names = [item.target.name for item in ready]
    say(f"server at {precision} over {models_dir} with {', '.join(names)} ...")
    env = server_env(names, precision, settings)
    rows: list[Row] = []
    with run_server(models_dir, log_dir, env=env, timeout=settings.ready_timeout) as server:
        variants = served_variants(server.url)
        for item in ready:
            info = variants[item.target.name]
            served = f"{info.get('precision')} on {info.get('provider')}"
            row = score_service(item, server.url, precision, served, settings)
            figures = f"{_figures(row.metrics)}, agreement {row.agreement:.2f} %"
            say(f"{row.head} {precision}: {figures} in {row.seconds:.1f} s")
            rows.append(row)
    return rows


def evaluate(
    targets: Sequence[Target], models_dir: Path, settings: Settings, say: Say = print
) -> tuple[list[Row], dict[str, str]]:
    """(rows per target and precision, {"head precision": why not scored}).

    The pipeline runs first; then one server per precision serves every target that has that variant.
    """
    scored = [score_reference(t, models_dir, settings, say) for t in targets]
    rows: list[Row] = []
    unscored: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bertserve-eval-") as logs:
        for precision in settings.precisions:
            ready, refused = servable(scored, models_dir, precision)
            for what, why in refused.items():
                say(f"skip {what}: {why}")
            unscored.update(refused)
            if ready:
                rows += score_at(precision, ready, models_dir, log_dir=Path(logs), settings=settings, say=say)
    names = [t.name for t in targets]
    rows.sort(key=lambda r: (names.index(r.head), settings.precisions.index(r.precision)))
    return rows, unscored


def _figures(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in metrics.items())
