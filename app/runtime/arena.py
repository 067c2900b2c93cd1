"""One ONNX Runtime CPU memory arena for every model in the process.

A session's own arena keeps its model's peak activations for good and grows a region whenever a
batch shape finds no free block. Sessions sharing one arena (registered once in ONNX Runtime's
environment) hold the peak of the batches that run at the same time, not the sum of every model's
peak; with a large first region, touched by warm-up, resident memory stops growing.
"""

from __future__ import annotations

import logging
import threading

import onnxruntime as ort

log = logging.getLogger("bertserve.runtime")

_NEXT_POWER_OF_TWO = 0  # OrtArenaCfg's arena_extend_strategy
_lock = threading.Lock()
_registered: dict[str, int] = {}  # "initial_mb" once the arena exists


def use_shared_cpu_arena(options: ort.SessionOptions, initial_mb: int) -> None:
    """Make sessions opened with `options` allocate from the process's shared CPU arena.

    The arena is registered on first use; its first region is `initial_mb` (virtual memory until
    touched). Later calls reuse it whatever their `initial_mb`: one arena per process.
    """
    with _lock:
        registered = _registered.get("initial_mb")
        if registered is None:
            info = ort.OrtMemoryInfo(
                "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
            )
            config = ort.OrtArenaCfg(
                {
                    "max_mem": 0,  # no cap: a batch must never fail for want of arena
                    "arena_extend_strategy": _NEXT_POWER_OF_TWO,
                    "initial_chunk_size_bytes": initial_mb << 20,
                }
            )
            ort.create_and_register_allocator(info, config)
            _registered["initial_mb"] = initial_mb
            log.info("shared CPU arena registered: first region %d MB", initial_mb)
        elif registered != initial_mb:
            log.warning(
                "shared CPU arena already registered with %d MB; %d MB ignored", registered, initial_mb
            )
    options.add_session_config_entry("session.use_env_allocators", "1")
