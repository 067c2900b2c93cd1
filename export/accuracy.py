"""Every variant scored on labelled data beside PyTorch fp32, through the server's own tasks.

The evaluation examples become the requests a client would send; the server's task code
tokenizes them and decodes the outputs, so an answer compared here is the answer served. One
backend is PyTorch fp32 (the reference), the others are ONNX Runtime sessions run as the server
runs them (app.runtime.session.SessionRunner).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.contract.checksum import sha256_of
from app.contract.items import EncodedItem, ItemOutputs
from app.contract.manifest import Accuracy, AccuracyBudget, EvalData, Manifest
from app.runtime.gate import usable_cores
from app.runtime.session import SessionRunner, pad_items
from app.runtime.tokenizer import TextEncoder
from app.tasks import TASKS
from app.tasks.base import ModelContext, Prepared
from app.tasks.common import regroup
from export.errors import UsageError
from export.evaluation.datasets import sample
from export.evaluation.tasks import EVAL_TASKS, EvalTask, ModelInfo
from export.tasks import TaskSpec

if TYPE_CHECKING:
    import onnxruntime as ort
    import torch

CHUNK = 32  # inputs per request, as a client batching its calls would send them
RUN_BATCH = 32  # items per run, length-sorted
RunItems = Callable[[list[EncodedItem]], list[ItemOutputs]]


@dataclass(frozen=True)
class EvalOptions:
    """What the exporter scores every variant on, and the budget int8 is held to."""

    data: Path  # JSONL in the request shape, or a data set's own layout (EvalTask.read_file)
    limit: int | None = None  # a seeded subset of this many examples
    seed: int = 0
    name: str | None = None  # how the manifest names the data (default: the file name)
    budget: AccuracyBudget = field(default_factory=AccuracyBudget)


@dataclass(frozen=True)
class EvalSet:
    """The labelled examples every variant is scored on, and what the manifest says of them."""

    data: EvalData
    task: EvalTask
    examples: list[Any]


def read_eval_set(options: EvalOptions, spec: TaskSpec, manifest: Manifest) -> EvalSet:
    """Read the evaluation data for the task, a seeded subset when a limit is given.
    UsageError for a file that cannot be read as such."""
    path, limit, seed, name = options.data, options.limit, options.seed, options.name
    task = EVAL_TASKS[spec.name]
    if limit is not None and limit < 1:
        raise UsageError(f"--eval-limit must be at least 1 (got {limit})")
    if not path.is_file():
        raise UsageError(f"--eval-data {path}: no such file")
    try:
        every = task.read_file(path, model_info(manifest))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"--eval-data {path}: {error}") from error
    if not every:
        raise UsageError(f"--eval-data {path}: no examples")
    examples = sample(every, limit, seed)
    data = EvalData(
        name=name or path.name,
        sha256=sha256_of(path),
        examples=len(examples),
        total=len(every),
        seed=seed,
        labelled=all(task.labelled(example) for example in examples),
    )
    return EvalSet(data, task, examples)


def model_info(manifest: Manifest) -> ModelInfo:
    return ModelInfo(max_length=manifest.max_length, id2label=dict(manifest.id2label))


@dataclass
class Scorer:
    """The evaluation set as prepared requests: run them on a backend, compare with the reference."""

    eval_set: EvalSet
    context: ModelContext
    budget: AccuracyBudget
    requests: list[tuple[Any, Prepared]] = field(default_factory=list)
    reference: list[Any] = field(default_factory=list)  # PyTorch fp32's result per example
    reference_metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def prepare(
        cls, eval_set: EvalSet, manifest: Manifest, tokenizer: Path, budget: AccuracyBudget
    ) -> Scorer:
        """Tokenize every example as the server would; UsageError when the server would refuse one."""
        encoder = TextEncoder.from_file(tokenizer, manifest.special_tokens)
        context = ModelContext(manifest.name, manifest, encoder)
        scorer = cls(eval_set, context, budget)
        served = TASKS[manifest.task]
        options = eval_set.task.options(model_info(manifest))
        inputs = eval_set.task.inputs(eval_set.examples)
        for start in range(0, len(inputs), CHUNK):
            body = {**options, "inputs": inputs[start : start + CHUNK]}
            try:
                request = served.request_model.model_validate(body)
            except ValueError as error:
                raise UsageError(f"an evaluation example is not a valid request: {error}") from error
            scorer.requests.append((request, served.preprocess(request, context)))
        return scorer

    @property
    def items(self) -> list[EncodedItem]:
        return [item for _, prepared in self.requests for item in prepared.items]

    def results(self, run: RunItems) -> list[Any]:
        """Each example's answer (the JSON the server returns for it) with `run` as the model."""
        served = TASKS[self.context.manifest.task]
        outputs = run(self.items)
        sizes = [len(prepared.items) for _, prepared in self.requests]
        results: list[Any] = []
        for (request, prepared), chunk in zip(self.requests, regroup(outputs, sizes), strict=True):
            answer = served.postprocess(request, prepared, chunk, self.context)
            results.extend(answer.model_dump(mode="json")["results"])
        return results

    def set_reference(self, run: RunItems) -> None:
        self.reference = self.results(run)
        self.reference_metrics = self._metrics(self.reference)

    def accuracy(self, run: RunItems) -> Accuracy:
        """`run`'s answers against the reference's, and against the gold answers when there are."""
        results = self.results(run)
        task = self.eval_set.task
        same = sum(
            task.decision(got) == task.decision(ref) for got, ref in zip(results, self.reference, strict=True)
        )
        agreement = same / len(results)
        metrics = self._metrics(results)
        drops = [self.reference_metrics[name] - value for name, value in metrics.items()]
        return Accuracy(
            examples=len(results),
            agreement=round(agreement, 6),
            metrics={name: round(value, 3) for name, value in metrics.items()},
            reference_metrics={name: round(value, 3) for name, value in self.reference_metrics.items()},
            within_budget=agreement >= self.budget.min_agreement
            and all(drop <= self.budget.max_metric_drop for drop in drops),
        )

    def _metrics(self, results: Sequence[Any]) -> dict[str, float]:
        if not self.eval_set.data.labelled:
            return {}
        info = model_info(self.context.manifest)
        return self.eval_set.task.score(self.eval_set.examples, results, info)


def in_length_order(
    items: list[EncodedItem], run_batch: Callable[[list[EncodedItem]], list[ItemOutputs]]
) -> list[ItemOutputs]:
    """Run items in length-sorted batches of RUN_BATCH (little padding); outputs in the items' order."""
    order = sorted(range(len(items)), key=lambda index: items[index].length)
    outputs: list[ItemOutputs | None] = [None] * len(items)
    for start in range(0, len(order), RUN_BATCH):
        picked = order[start : start + RUN_BATCH]
        for index, output in zip(picked, run_batch([items[i] for i in picked]), strict=True):
            outputs[index] = output
    return [output for output in outputs if output is not None]


def onnx_backend(session: ort.InferenceSession, manifest: Manifest, *, per_sequence: bool) -> RunItems:
    """The session run as the server runs it (one sequence at a time for a batch-dependent graph)."""
    runner = SessionRunner(
        session,
        pad_token_id=manifest.pad_token_id,
        max_length=manifest.max_length,
        per_sequence=per_sequence,
        row_threads=usable_cores(),
    )

    def run(items: list[EncodedItem]) -> list[ItemOutputs]:
        return in_length_order(items, lambda batch: runner.run(runner.pad(batch)))

    return run


def torch_backend(model: torch.nn.Module, spec: TaskSpec, manifest: Manifest) -> RunItems:
    """PyTorch fp32 on right-padded, length-sorted batches; token-level outputs cut to each item."""
    import torch

    def run_batch(batch: list[EncodedItem]) -> list[ItemOutputs]:
        longest = max(item.length for item in batch)
        padded = pad_items(batch, (len(batch), longest), manifest.pad_token_id, manifest.input_names)
        with torch.no_grad():
            out = model(
                **{name: torch.from_numpy(value) for name, value in padded.arrays.items()}, return_dict=True
            )
        raw = {name: out[name].float().numpy() for name in spec.outputs}
        return [
            {
                name: np.asarray(value[row, :length] if spec.token_level else value[row], dtype=np.float32)
                for name, value in raw.items()
            }
            for row, length in enumerate(padded.lengths)
        ]

    def run(items: list[EncodedItem]) -> list[ItemOutputs]:
        return in_length_order(items, run_batch)

    return run


def describe(accuracy: Accuracy, budget: AccuracyBudget) -> str:
    """One line for the export's progress report."""
    metrics = ", ".join(
        f"{name} {value:.2f} (fp32 {accuracy.reference_metrics[name]:.2f})"
        for name, value in accuracy.metrics.items()
    )
    verdict = "within" if accuracy.within_budget else "OUTSIDE"
    return (
        f"{accuracy.agreement:.2%} of {accuracy.examples} answers equal PyTorch fp32's"
        + (f"; {metrics}" if metrics else "")
        + f" -> {verdict} the budget (>= {budget.min_agreement:.0%}, drop <= {budget.max_metric_drop})"
    )
