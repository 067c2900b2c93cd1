"""Manifest fields read from the checkpoint's config and tokenizer, and the build's versions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

from export.errors import UsageError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

# Distributions whose versions the manifest records (onnxruntime-gpu installs the same module).
MIN_LENGTH = 16  # room for a question, a little context and the special tokens
VERSIONED = (
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "tokenizers",
    "bertserve",
)
# Bump when a change to export/ changes what it writes (graphs, candidates, manifest fields): a model
# repository built by an older recipe is then exported again instead of being kept as up to date.
EXPORT_RECIPE = "6"


def id2label(labels: Mapping[Any, Any]) -> dict[int, str]:
    """The loaded config's labels (transformers fills LABEL_i for a config without any), int keys."""
    return {int(key): str(value) for key, value in sorted(labels.items(), key=lambda kv: int(kv[0]))}


def max_length(
    config: dict[str, Any],
    tokenizer: PreTrainedTokenizerFast,
    requested: int | None,
    *,
    position_offset: bool = False,
) -> int:
    """min(tokenizer.model_max_length, usable positions), or the requested length if it fits.

    With `position_offset` (RoBERTa, XLM-R) positions start after the padding index, so a
    514-position model takes 512 tokens.
    """
    positions = int(config.get("max_position_embeddings", 512))
    if position_offset:
        positions -= int(config.get("pad_token_id", 1)) + 1
    if requested is not None:
        if not MIN_LENGTH <= requested <= positions:
            raise UsageError(
                f"--max-length {requested} is outside {MIN_LENGTH}..{positions} (max_position_embeddings)"
            )
        return requested
    model_max = tokenizer.model_max_length
    return min(int(model_max), positions) if model_max and model_max < 10**9 else positions


def pad_token_id(config: dict[str, Any], tokenizer: PreTrainedTokenizerFast) -> int:
    value = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.get("pad_token_id")
    return int(value or 0)


SPECIAL_ROLES = ("cls", "sep", "pad", "unk", "mask")


def special_tokens(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """The ids transformers gives each special token role the tokenizer has ([CLS] or <s>, ...)."""
    found = {}
    for role in SPECIAL_ROLES:
        token_id = getattr(tokenizer, f"{role}_token_id", None)
        if isinstance(token_id, int):
            found[role] = token_id
    return found


def versions() -> dict[str, str]:
    """The installed versions of what shapes the exported graphs, and the export recipe."""
    found = {"export-recipe": EXPORT_RECIPE}
    for package in VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
