"""Drive a task with a PyTorch head in place of ONNX Runtime, handing it outputs as the server does.

`serve(task, request, context, head)` runs preprocess, the head on the items (float32 numpy,
cut back to each item's length; right-padded batches when `batch_size` > 1) and postprocess,
so tests can hold our pre/post-processing against `transformers.pipeline` on one checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from app.contract.items import EncodedItem, ItemOutputs
from app.contract.manifest import Manifest, Source
from app.runtime.tokenizer import TextEncoder
from app.tasks.base import ModelContext, Prepared, Task

OUTPUT_NAMES = {
    "classify": ["logits"],
    "pair": ["logits"],
    "ner": ["logits"],
    "qa": ["start_logits", "end_logits"],
}
TOKEN_LEVEL = {"ner", "qa"}


def make_context(
    task: str,
    tokenizer_json: Path,
    *,
    id2label: dict[int, str] | None = None,
    max_length: int = 512,
    problem_type: str | None = None,
    name: str = "tiny",
    architecture: str = "BertModel",
    model_type: str = "bert",
    input_names: list[str] | None = None,
    pad_token_id: int = 0,
    special_tokens: dict[str, int] | None = None,
) -> ModelContext:
    """A ModelContext with a minimal manifest (no ONNX variants) around a tokenizer.json."""
    manifest = Manifest(
        name=name,
        task=task,
        architecture=architecture,
        model_type=model_type,
        num_layers=2,
        hidden_size=64,
        num_heads=4,
        id2label=id2label or {},
        problem_type=problem_type,
        input_names=input_names or ["input_ids", "attention_mask", "token_type_ids"],
        output_names=OUTPUT_NAMES[task],
        max_length=max_length,
        pad_token_id=pad_token_id,
        special_tokens=special_tokens or {},
        opset=17,
        variants=[],
        source=Source(checkpoint="tests", architecture=architecture),
        versions={},
        created_at="",
    )
    return ModelContext(name, manifest, TextEncoder.from_file(tokenizer_json, manifest.special_tokens))


def minilm_context(task: str, **options: Any) -> ModelContext:
    """A context around the real uncased WordPiece tokenizer, for unit tests (no torch, no checkpoint)."""
    from tests.tiny import minilm_dir

    return make_context(task, minilm_dir() / "tokenizer.json", **options)


def context_for(
    checkpoint: Path, task: str, *, max_length: int | None = None, problem_type: str | None = None
) -> ModelContext:
    """The context of a checkpoint folder, its manifest filled from config.json and its tokenizer."""
    from transformers import AutoTokenizer

    from export.metadata import special_tokens

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    tokenizer_config = json.loads((checkpoint / "tokenizer_config.json").read_text())
    if max_length is None:
        max_length = min(int(tokenizer_config["model_max_length"]), int(config["max_position_embeddings"]))
    return make_context(
        task,
        checkpoint / "tokenizer.json",
        id2label={int(k): v for k, v in config.get("id2label", {}).items()} if task != "qa" else None,
        max_length=max_length,
        problem_type=problem_type if problem_type is not None else config.get("problem_type"),
        architecture=config["architectures"][0],
        model_type=config["model_type"],
        input_names=list(tokenizer.model_input_names),  # what the pipeline feeds the head
        pad_token_id=int(tokenizer.pad_token_id),
        special_tokens=special_tokens(tokenizer),
    )


def load_head(checkpoint: Path) -> Any:
    """The checkpoint's PyTorch head, in eval mode."""
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    architecture = json.loads((checkpoint / "config.json").read_text())["architectures"][0]
    auto = {
        "ForSequenceClassification": AutoModelForSequenceClassification,
        "ForTokenClassification": AutoModelForTokenClassification,
        "ForQuestionAnswering": AutoModelForQuestionAnswering,
    }[architecture[architecture.index("For") :]]
    return auto.from_pretrained(checkpoint).eval()


def run_items(
    head: Any,
    items: list[EncodedItem],
    output_names: list[str],
    *,
    token_level: bool,
    batch_size: int = 1,
    pad_token_id: int = 0,
    input_names: tuple[str, ...] | list[str] = ("input_ids", "attention_mask", "token_type_ids"),
) -> list[ItemOutputs]:
    """Run items in right-padded batches and cut each item's outputs back to its own length."""
    import torch

    outputs: list[ItemOutputs] = []
    for first in range(0, len(items), batch_size):
        batch = items[first : first + batch_size]
        longest = max(item.length for item in batch)
        ids = np.full((len(batch), longest), pad_token_id, dtype=np.int64)
        types = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, item in enumerate(batch):
            ids[row, : item.length] = item.input_ids
            types[row, : item.length] = item.token_type_ids
            mask[row, : item.length] = 1
        feeds = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        with torch.no_grad():
            result = head(**{name: torch.from_numpy(feeds[name]) for name in input_names})
        arrays = {name: result[name].float().numpy() for name in output_names}
        for row, item in enumerate(batch):
            outputs.append(
                {
                    name: np.ascontiguousarray(array[row, : item.length] if token_level else array[row])
                    for name, array in arrays.items()
                }
            )
    return outputs


def serve(
    task: Task[Any, Any], request: BaseModel, context: ModelContext, head: Any, *, batch_size: int = 1
) -> tuple[BaseModel, Prepared]:
    """preprocess -> the PyTorch head -> postprocess, as the server runs a request."""
    prepared = task.preprocess(request, context)
    outputs = run_items(
        head,
        prepared.items,
        list(task.output_names),
        token_level=context.manifest.task in TOKEN_LEVEL,
        batch_size=batch_size,
        pad_token_id=context.manifest.pad_token_id,
        input_names=context.manifest.input_names,
    )
    return task.postprocess(request, prepared, outputs, context), prepared
