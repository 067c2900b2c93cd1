"""Write and reload the output folder: fp16 safetensors, tokenizer files, bertserve.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast

# Keys the base tokenizer.json's fixed truncation/padding leak into tokenizer_config.json.
_LEAKED_INIT_KWARGS = ("max_length", "stride", "truncation_strategy", "pad_to_multiple_of")


def load_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """The fast tokenizer with truncation and padding switched off (they are set per call)."""
    tokenizer: PreTrainedTokenizerFast = AutoTokenizer.from_pretrained(path)
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.backend_tokenizer.no_padding()
    for key in _LEAKED_INIT_KWARGS:
        tokenizer.init_kwargs.pop(key, None)
    return tokenizer


def write_json(path: Path, obj: Any) -> None:
    """Pretty JSON with a trailing newline."""
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_checkpoint(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, out: Path, task: str) -> None:
    """Save weights as fp16 safetensors (config dtype stays float32), tokenizer files, bertserve.json."""
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    model.save_pretrained(out, state_dict=state, safe_serialization=True)
    (out / "model.safetensors").chmod(0o644)  # written 0600 by the serializer
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.save_pretrained(out)
    write_json(out / "bertserve.json", {"task": task})


def reload_fp32(model_class: type[PreTrainedModel], out: Path) -> PreTrainedModel:
    """Load the saved checkpoint upcast to float32 (as the export pipeline does) and check it is."""
    model: PreTrainedModel = model_class.from_pretrained(out, dtype=torch.float32).eval()
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise RuntimeError(f"reloaded checkpoint is not float32: {dtypes}")
    return model
