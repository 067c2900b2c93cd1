"""The reference: `transformers.pipeline` on the same checkpoint, PyTorch fp32 on the CPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from export.evaluation.tasks import EvalTask


def load_pipeline(task: EvalTask, checkpoint: Path, max_length: int) -> Any:
    """The pipeline for `task`; the tokenizer's length is the served model's (as the service cuts)."""
    import torch
    import transformers

    make_pipeline: Any = transformers.pipeline  # the task is a variable: no overload applies
    tokenizer = transformers.AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
        checkpoint, model_max_length=max_length
    )
    return make_pipeline(
        task.pipeline_task, model=str(checkpoint), tokenizer=tokenizer, device=-1, dtype=torch.float32
    )


def run_reference(
    task: EvalTask,
    checkpoint: Path,
    inputs: list[Any],
    options: dict[str, Any],
    *,
    max_length: int,
    batch_size: int,
) -> tuple[list[Any], float]:
    """(one result per input, seconds spent on the inputs, loading excluded)."""
    pipe = load_pipeline(task, checkpoint, max_length)
    began = time.perf_counter()
    results = task.run_pipeline(pipe, inputs, options, batch_size)
    seconds = time.perf_counter() - began
    if len(results) != len(inputs):
        raise RuntimeError(f"the pipeline gave {len(results)} results for {len(inputs)} inputs")
    return results, seconds
