"""The model repository: `models/<name>/manifest.json`, tokenizer and ONNX variants.

Finds the model folders, checks each one (manifest, tokenizer, variant file and checksum),
picks the variant for the provider in use and opens its session.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from app.contract.checksum import sha256_of
from app.contract.manifest import MANIFEST_FILE, Manifest, Precision, Variant
from app.errors import ModelLoadError, describe_invalid
from app.runtime.buckets import ShapeBuckets
from app.runtime.gate import usable_cores
from app.runtime.providers import CUDA, open_session
from app.runtime.session import SessionRunner
from app.runtime.tokenizer import TextEncoder
from app.settings import Settings

log = logging.getLogger("bertserve.repository")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to batch: its manifest, tokenizer, chosen variant and session."""

    name: str
    folder: Path
    manifest: Manifest
    variant: Variant
    encoder: TextEncoder
    onnx: SessionRunner
    fell_back_to_cpu: bool

    @property
    def provider(self) -> str:
        return self.onnx.provider


@dataclass(frozen=True)
class Discovery:
    """The models found in the repository, and the entries that could not be read (skipped)."""

    names: list[str]
    errors: dict[str, str] = field(default_factory=dict)


def discover(settings: Settings) -> Discovery:
    """The models to load: the configured list, or every folder with a manifest entry.

    A folder whose manifest entry is not a readable file is a model that fails to load (with the
    reason). An entry that cannot be read at all (a folder without permission, a dangling symlink)
    is skipped and reported, so that one stray entry, such as a volume's `lost+found`, neither stops
    discovery nor holds readiness back. Files and hidden entries are not models and pass silently."""
    if settings.models is not None:
        return Discovery(list(settings.models))
    directory = settings.model_dir
    try:
        if not directory.is_dir():
            return Discovery([])
        entries = sorted(directory.iterdir())
    except OSError as error:
        return Discovery([], {str(directory): f"cannot list the model directory: {error.strerror or error}"})
    names: list[str] = []
    errors: dict[str, str] = {}
    for entry in entries:
        if entry.name.startswith("."):  # volume internals (Kubernetes' ..data), editors' files
            continue
        try:
            if is_model_folder(entry):
                names.append(entry.name)
        except OSError as error:
            errors[entry.name] = f"cannot read {entry}: {error.strerror or error}"
    return Discovery(names, errors)


def is_model_folder(entry: Path) -> bool:
    """A folder (or a link to one) that holds a manifest entry; OSError if either cannot be read."""
    if not stat.S_ISDIR(os.stat(entry).st_mode):
        return False
    try:
        os.lstat(entry / MANIFEST_FILE)
    except FileNotFoundError:
        log.info("%s: no %s, not a model folder", entry, MANIFEST_FILE)
        return False
    return True


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest, or a ModelLoadError that says what is wrong with it."""
    if not folder.is_dir():
        raise ModelLoadError(f"{folder.name}: no model folder at {folder}")
    path = folder / MANIFEST_FILE
    if not path.is_file():
        missing = "is not a file" if path.is_symlink() or path.exists() else "is missing"
        raise ModelLoadError(f"{folder.name}: {MANIFEST_FILE} {missing}")
    try:
        return Manifest.read(folder)
    except ValidationError as error:
        raise ModelLoadError(
            f"{folder.name}: {MANIFEST_FILE} is invalid: {describe_invalid(error.errors(), whole='document')}"
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{folder.name}: cannot read {MANIFEST_FILE}: {error}") from error


def precision_order(settings: Settings, on_cuda: bool) -> list[Precision]:
    """Preferred precisions: the configured one alone, or auto's order for the provider."""
    if settings.precision != "auto":
        return [settings.precision]
    return ["fp16", "fp32"] if on_cuda else ["int8", "fp32"]


def choose_variant(
    manifest: Manifest, order: list[Precision], folder: Path, *, auto: bool = False
) -> Variant:
    """The first variant of `order` that passed validation; under `auto` only those the exporter
    marked as served by default (int8 within its accuracy budget)."""
    for precision in order:
        variant = manifest.variant(precision, by_default=auto)
        if variant is not None:
            return variant
    built = ", ".join(
        f"{v.precision}{'' if v.parity.passed else ' (failed validation)'}" for v in manifest.variants
    )
    raise ModelLoadError(
        f"{folder.name}: no validated variant among {order}; the folder has: {built or 'none'}"
    )


def accuracy_summary(manifest: Manifest, variant: Variant) -> str:
    """How the served variant answers beside PyTorch fp32, for the startup log."""
    accuracy, data = variant.accuracy, manifest.evaluation
    if accuracy is None or data is None:
        return "not scored on labelled data"
    metrics = ", ".join(
        f"{name} {value:.2f} vs {accuracy.reference_metrics.get(name, float('nan')):.2f}"
        for name, value in accuracy.metrics.items()
    )
    return f"{accuracy.agreement:.1%} of {accuracy.examples} answers of {data.name} equal PyTorch fp32's" + (
        f"; {metrics}" if metrics else ""
    )


def session_settings(settings: Settings, variant: Variant) -> Settings:
    """A batch-dependent variant runs its rows side by side (SessionRunner), one thread each: its
    session gets one intra-op thread and the model's thread budget goes to the rows."""
    return settings.model_copy(update={"intra_op_threads": 1}) if variant.batch_dependent else settings


def check_file(folder: Path, variant: Variant) -> Path:
    path = folder / variant.file
    if not path.is_file():
        raise ModelLoadError(f"{folder.name}: variant file {variant.file} is missing")
    if path.stat().st_size != variant.size_bytes or sha256_of(path) != variant.sha256:
        raise ModelLoadError(f"{folder.name}: {variant.file} does not match its manifest checksum (corrupt?)")
    return path


def load_model(name: str, settings: Settings) -> LoadedModel:
    """Open one model folder; every failure is a ModelLoadError naming the folder and the cause."""
    folder = settings.model_dir / name
    manifest = read_manifest(folder)
    tokenizer_path = folder / manifest.tokenizer_file
    try:
        encoder = TextEncoder.from_file(tokenizer_path, manifest.special_tokens)
    except Exception as error:
        raise ModelLoadError(f"{name}: cannot load tokenizer {manifest.tokenizer_file}: {error}") from error

    # The provider decides the variant, so open the fp32 file first only to learn the provider
    # would be wasteful: decide from settings and fix up if CUDA was not to be had.
    import onnxruntime as ort

    from app.runtime.providers import wants_cuda  # local: keeps the import graph obvious

    on_cuda = wants_cuda(settings, ort.get_available_providers())
    auto = settings.precision == "auto"
    variant = choose_variant(manifest, precision_order(settings, on_cuda), folder, auto=auto)
    opened = open_session(check_file(folder, variant), session_settings(settings, variant))
    if opened.provider != CUDA and variant.precision == "fp16" and auto:
        variant = choose_variant(manifest, precision_order(settings, False), folder, auto=True)
        opened = open_session(check_file(folder, variant), session_settings(settings, variant))

    graph_inputs = [node.name for node in opened.session.get_inputs()]
    if graph_inputs != manifest.input_names:
        raise ModelLoadError(
            f"{name}: {variant.file} takes inputs {graph_inputs}, its manifest says {manifest.input_names}"
        )
    on_device = opened.provider == CUDA
    limits = settings.limits_for(name)
    buckets = None
    if settings.shape_buckets == "on" or (settings.shape_buckets == "auto" and on_device):
        buckets = ShapeBuckets.build(
            settings.batch_buckets,
            settings.length_buckets,
            max_batch=limits.max_batch_size,
            max_length=manifest.max_length,
        )
    io_binding = settings.io_binding == "on" or (settings.io_binding == "auto" and on_device)
    onnx = SessionRunner(
        opened.session,
        pad_token_id=manifest.pad_token_id,
        max_length=manifest.max_length,
        buckets=buckets,
        io_binding=io_binding,
        cuda_graphs=settings.cuda_graphs,
        per_sequence=variant.batch_dependent,
        row_threads=settings.intra_op_threads or usable_cores(),
    )
    log.info(
        "model %s: task=%s precision=%s (%s) provider=%s io_binding=%s buckets=%s cuda_graphs=%s",
        name,
        manifest.task,
        variant.precision,
        accuracy_summary(manifest, variant),
        onnx.provider,
        io_binding,
        buckets is not None,
        onnx.cuda_graphs,
    )
    return LoadedModel(name, folder, manifest, variant, encoder, onnx, opened.fell_back)
