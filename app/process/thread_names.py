"""Name the OS thread under a Python thread, so `top -H`, `/proc/PID/task/*/comm` and profilers tell
the server's own threads from the native libraries' ones (Python 3.11 leaves every thread named as
the process)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

PR_SET_NAME = 15
LINUX_NAME_BYTES = 15  # the kernel keeps 16 bytes, the last a NUL


def name_this_os_thread(name: str | None = None) -> bool:
    """Give the calling thread's OS thread `name` (default: its Python name), cut to 15 bytes.
    Returns whether it was named (Linux only; elsewhere the call does nothing)."""
    if not sys.platform.startswith("linux"):
        return False
    wanted = (name or threading.current_thread().name).encode("ascii", "replace")[:LINUX_NAME_BYTES]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return int(libc.prctl(PR_SET_NAME, ctypes.c_char_p(wanted), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
