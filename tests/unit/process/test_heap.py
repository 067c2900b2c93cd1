"""malloc_trim for real: freed heap pages go back to the OS only when asked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from app.process.heap import malloc_trim, trim_heap_every

# In a fresh process: fill the heap with 64 KB blocks (below glibc's mmap threshold), keep the last
# one so the heap's top cannot shrink by itself, free the rest, then trim.
PROBE = """
import json, re
from pathlib import Path
from app.process.heap import malloc_trim

def rss_mb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

blocks = [bytearray(64 * 1024) for _ in range(2000)]
keep = blocks[-1]
filled = rss_mb()
del blocks[:-1]
freed = rss_mb()
malloc_trim()(0)
print(json.dumps({"filled": filled, "freed": freed, "trimmed": rss_mb()}))
"""


@pytest.mark.skipif(malloc_trim() is None, reason="a C library without malloc_trim (not glibc)")
def test_trimming_gives_freed_heap_pages_back() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    rss = json.loads(result.stdout)
    assert rss["filled"] - rss["freed"] < 32, rss  # freed, but glibc keeps the pages
    assert rss["freed"] - rss["trimmed"] > 96, rss  # 125 MB were free


def test_an_interval_of_zero_never_trims() -> None:
    asyncio.run(asyncio.wait_for(trim_heap_every(0), timeout=1))
