"""Find, inspect and load a checkpoint; everything wrong with it becomes a typed ExportError."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.architectures import ARCHITECTURES, Architecture
from export.errors import (
    CheckpointNotFoundError,
    NotACheckpointError,
    TaskMismatchError,
    UnsupportedArchitectureError,
)
from export.logs import quiet
from export.tasks import BARE_ENCODERS, KNOWN_HEADS, TaskSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

SUPPORTED_MODEL_TYPES = frozenset(ARCHITECTURES)
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
FINGERPRINT_FILES = re.compile(
    r"^(config\.json|.*\.safetensors|.*\.index\.json|pytorch_model.*\.bin|tokenizer\.json|"
    r"tokenizer_config\.json|vocab\.txt|special_tokens_map\.json|added_tokens\.json)$"
)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class Checkpoint:
    """A checked local checkpoint folder and what the manifest records about it."""

    path: Path
    source: str  # hub id, or path (relative to the repository root when inside it)
    config: dict[str, Any]
    declared: str | None  # config.architectures[0]
    trained_head: bool  # False for a bare encoder: the head will be randomly initialised

    @property
    def model_type(self) -> str:
        return str(self.config["model_type"])

    @property
    def architecture(self) -> Architecture:
        return ARCHITECTURES[self.model_type]


def repository_root() -> Path:
    """The bertserve checkout this package runs from, else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").is_file() else Path.cwd().resolve()


def describe_path(path: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(repository_root()).as_posix()
    except ValueError:
        return str(resolved)


def locate(model: str) -> tuple[Path, str]:
    """The local folder for `model` (a path or a hub id) and how to record its source."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotACheckpointError(f"{model} is a file; --model needs a checkpoint folder (or a hub id)")
        return path.resolve(), describe_path(path)
    if model.startswith((".", "/", "~")) or "\\" in model or not HUB_ID.match(model):
        raise CheckpointNotFoundError(f"no checkpoint folder at {model}")
    from export.hub import fetch

    return fetch(model), model


def inspect_checkpoint(path: Path, source: str, spec: TaskSpec) -> Checkpoint:
    """Check the folder holds a checkpoint of a supported family whose head fits `spec`."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise NotACheckpointError(f"{source} is not a checkpoint: it has no config.json")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotACheckpointError(f"{source}: config.json is unreadable: {error}") from error
    if not isinstance(config, dict):
        raise NotACheckpointError(f"{source}: config.json is not a JSON object")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise NotACheckpointError(
            f"{source} is not a checkpoint: no weights ({', '.join(WEIGHT_FILES[::2])})"
        )
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise NotACheckpointError(
            f"{source} has no tokenizer (tokenizer.json or vocab.txt); save it with tokenizer.save_pretrained"
        )
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedArchitectureError(
            f"{source}: model_type {model_type!r} is not supported; bertserve exports encoder heads of "
            f"model_type {', '.join(sorted(SUPPORTED_MODEL_TYPES))}"
        )
    architectures = config.get("architectures") or [None]
    declared = architectures[0]
    _check_head(source, declared, spec.head_for(model_type), spec)
    trained_head = declared is not None and declared not in BARE_ENCODERS
    return Checkpoint(path, source, config, declared, trained_head)


def _check_head(source: str, declared: str | None, head: str, spec: TaskSpec) -> None:
    if declared is None or declared in BARE_ENCODERS or declared == head:
        return
    fits = KNOWN_HEADS.get(declared)
    if fits:
        raise TaskMismatchError(
            f"{source} is a {declared} checkpoint, which serves --task {' or '.join(fits)}; "
            f"--task {spec.name} needs a {head}"
        )
    raise TaskMismatchError(f"{source} is a {declared} checkpoint; --task {spec.name} needs a {head}")


def fingerprint(path: Path) -> str:
    """sha256 over the names and contents of the config, weight and tokenizer files."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file() and FINGERPRINT_FILES.match(p.name)):
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def load_torch_model(checkpoint: Checkpoint, spec: TaskSpec) -> PreTrainedModel:
    """The head in eval mode with eager attention (SDPA traces into a graph ORT cannot fuse)."""
    import torch
    import transformers

    head = spec.head_for(checkpoint.model_type)
    model_class = getattr(transformers, head)
    try:
        torch.manual_seed(0)  # a random head is at least reproducible
        with quiet("transformers"):  # "newly initialized" is ours to phrase; TP-plan notes are noise
            model, info = model_class.from_pretrained(
                checkpoint.path, attn_implementation="eager", output_loading_info=True
            )
    except Exception as error:
        raise NotACheckpointError(f"{checkpoint.source}: cannot load the weights: {error}") from error
    missing = [key for key in info["missing_keys"] if not key.endswith("position_ids")]
    if missing and checkpoint.trained_head:
        raise NotACheckpointError(
            f"{checkpoint.source}: the weights lack {len(missing)} tensors of {head} (e.g. {missing[0]})"
        )
    base = f"{model.base_model_prefix}."
    encoder_missing = [
        key for key in missing if key.startswith(base) and not key.startswith(f"{base}pooler.")
    ]
    if encoder_missing:
        raise NotACheckpointError(
            f"{checkpoint.source}: the encoder weights are incomplete (e.g. {encoder_missing[0]} is missing)"
        )
    loaded: PreTrainedModel = model.eval()
    return loaded


def load_tokenizer(checkpoint: Checkpoint) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint.path, use_fast=True)  # type: ignore[no-untyped-call]
    except Exception as error:
        raise NotACheckpointError(f"{checkpoint.source}: cannot load the tokenizer: {error}") from error
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise NotACheckpointError(
            f"{checkpoint.source}: no fast tokenizer could be built; the server needs tokenizer.json"
        )
    return tokenizer
