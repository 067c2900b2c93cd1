"""Choosing the execution provider and opening ONNX Runtime sessions on it, honestly."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from app.errors import ModelLoadError
from app.runtime.arena import use_shared_cpu_arena
from app.settings import Settings

log = logging.getLogger("bertserve.runtime")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class OpenedSession:
    session: ort.InferenceSession
    provider: str  # what the session actually runs on: session.get_providers()[0]
    fell_back: bool


def wants_cuda(settings: Settings, available: list[str]) -> bool:
    """Whether to try CUDA first: asked for, or `auto` on a build that offers it."""
    if settings.device == "cpu":
        return False
    if settings.device == "cuda":
        return True
    return CUDA in available


def cuda_options(settings: Settings, device_id: int = 0) -> dict[str, Any]:
    """CUDA provider options that matter for BERT on recent GPUs."""
    return {
        "device_id": device_id,
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC",
        "do_copy_in_default_stream": "1",
        "use_tf32": "1" if settings.cuda_tf32 else "0",
        "enable_cuda_graph": "1" if settings.cuda_graphs else "0",
    }


def session_options(settings: Settings, *, on_cuda: bool) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.log_severity_level = 3
    # Spinning worker threads steal the cores the event loop and tokenizer need between batches.
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if settings.thread_spinning else "0"
    )
    # An arena keeps peak activations for good. Per model that is the sum of every model's peak,
    # growing in steps under mixed traffic; shared, the peak of what runs at once (app/runtime/arena.py).
    options.enable_cpu_mem_arena = settings.cpu_arena != "off"
    if settings.cpu_arena == "shared" and not on_cuda:
        use_shared_cpu_arena(options, settings.cpu_arena_initial_mb)
    # Memory patterns are planned and kept per input shape; dynamic batching makes a new shape of
    # almost every batch, so the plans (and resident memory) grow for as long as traffic lasts.
    options.enable_mem_pattern = False
    return options


def _preload_cuda_libraries() -> None:
    """With pip-installed CUDA/cuDNN (onnxruntime-gpu[cuda,cudnn]) the libraries must be preloaded."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as error:  # a missing library shows up as a CPU session below
            log.warning("onnxruntime.preload_dlls() failed: %s", error)


def open_session(path: Path, settings: Settings) -> OpenedSession:
    """Open `path` on CUDA when wanted and working, else CPU; fall back only where allowed."""
    available = ort.get_available_providers()
    if wants_cuda(settings, available):
        _preload_cuda_libraries()
        try:
            session = ort.InferenceSession(
                str(path),
                sess_options=session_options(settings, on_cuda=True),
                providers=[(CUDA, cuda_options(settings)), CPU],
            )
            if session.get_providers()[0] == CUDA:
                return OpenedSession(session, CUDA, fell_back=False)
            reason = "the session came up without CUDA (no GPU or CUDA libraries missing)"
        except Exception as error:
            reason = f"CUDA session failed: {error}"
        if not settings.allow_cpu_fallback:
            raise ModelLoadError(
                f"{path.parent.name}: {reason}; set BERTSERVE_ALLOW_CPU_FALLBACK=true to run on CPU instead"
            )
        log.error("!!! %s: %s -- FALLING BACK TO CPU (allowed by settings) !!!", path.parent.name, reason)
        return OpenedSession(_open_cpu(path, settings), CPU, fell_back=True)
    return OpenedSession(_open_cpu(path, settings), CPU, fell_back=False)


def _open_cpu(path: Path, settings: Settings) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(
            str(path), sess_options=session_options(settings, on_cuda=False), providers=[CPU]
        )
    except Exception as error:
        raise ModelLoadError(f"{path.parent.name}: cannot load {path.name}: {error}") from error
