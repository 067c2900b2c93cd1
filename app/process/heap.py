"""Giving freed heap memory back to the operating system, which glibc's malloc does not do by itself.

Batches of varying shapes leave holes in the malloc arenas of the runner and worker threads; glibc
keeps those pages resident, so a long-running server's memory creeps up although nothing leaks.
`malloc_trim(0)` releases every free page of every arena. Elsewhere (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger("bertserve")


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


async def trim_heap_every(interval_s: float) -> None:
    """Release free heap pages every `interval_s` (0: never), in a worker thread: it takes the
    arenas' locks for a few milliseconds, which must not stall the event loop."""
    trim = malloc_trim()
    if trim is None or interval_s <= 0:
        return
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(trim, 0)
        except Exception as error:  # never worth taking the server down for
            log.warning("malloc_trim failed: %s", error)
            return
