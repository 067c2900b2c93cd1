"""Typed export errors: each carries one clear, user-facing message (the CLI prints it, no traceback)."""

from __future__ import annotations


class ExportError(Exception):
    """Base of every error the exporter reports to the user; `str(error)` is the message."""

    exit_code = 1


class CheckpointNotFoundError(ExportError):
    """The --model path does not exist (and is not a hub id)."""


class NotACheckpointError(ExportError):
    """A folder without config.json, weights or tokenizer files."""


class UnsupportedArchitectureError(ExportError):
    """A model type the exporter cannot fuse (e.g. GPT-2)."""


class TaskMismatchError(ExportError):
    """The checkpoint's head does not fit the requested --task."""


class OutputExistsError(ExportError):
    """--out already exists and --force was not given."""


class HubUnavailableError(ExportError):
    """A hub id was given but the hub cannot be reached (or offline mode is on)."""


class ConversionError(ExportError):
    """torch -> ONNX conversion failed."""


class FusionError(ExportError):
    """The optimized graph lacks fused ops it must have."""


class ParityError(ExportError):
    """A variant disagrees with PyTorch beyond its tolerance."""


class UsageError(ExportError):
    """Invalid options (unknown precision, bad max length, ...)."""

    exit_code = 2
