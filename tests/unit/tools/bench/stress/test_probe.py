"""What `make stress` reads about the server: its threads by name, its compute speed by tenth."""

from __future__ import annotations

import math
import os
import threading
import time

from app.process.thread_names import name_this_os_thread
from tools.bench.stress.probe import (
    ProcessSample,
    compute_totals,
    ms_per_1k_tokens,
    sample_process,
    tenth_spans,
    thread_names,
    threads_gained,
)


def sample(*names: str) -> ProcessSample:
    return ProcessSample(0.0, 100.0, 10, len(names), 0, thread_names=tuple(sorted(names)))


def test_threads_gained_counts_names_by_multiplicity() -> None:
    quiet = sample("python", "bertserve-worker", "bertserve-worker", "libuv-worker")
    busy = sample("python", "bertserve-worker", "bertserve-worker", "libuv-worker", "rayon", "rayon", "onnx")
    assert threads_gained(quiet, busy) == {"onnx": 1, "rayon": 2}
    assert threads_gained(busy, quiet) == {}
    assert threads_gained(quiet, sample("python", "bertserve-worker", "libuv-worker", "libuv-worker")) == {
        "libuv-worker": 1
    }


def test_a_started_thread_shows_up_by_its_os_name() -> None:
    release = threading.Event()

    def named_then_wait() -> None:
        name_this_os_thread("probe-test")
        named.set()
        release.wait()

    named = threading.Event()
    thread = threading.Thread(target=named_then_wait)
    before = sample_process(os.getpid())
    thread.start()
    try:
        named.wait(5)
        during = sample_process(os.getpid())
        assert during.threads == before.threads + 1
        assert len(during.thread_names) == during.threads
        assert threads_gained(before, during) == {"probe-test": 1}
    finally:
        release.set()
        thread.join()
    # join() returns when the thread's Python code is done; the OS removes the thread just after
    deadline = time.monotonic() + 5
    while len(thread_names(os.getpid())) != before.threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(thread_names(os.getpid())) == before.threads


def test_tenth_spans_split_a_steady_series_into_ten() -> None:
    spans = tenth_spans(list(range(101)))
    assert spans[0] == (0, 10) and spans[-1] == (90, 100) and len(spans) == 10
    assert tenth_spans([1]) == []


def test_onnx_time_per_token_from_two_metric_samples() -> None:
    metrics = """# HELP bertserve_inference_seconds ONNX Runtime time per batch
bertserve_inference_seconds_sum{model="a"} 1.5
bertserve_inference_seconds_sum{model="b"} 0.5
bertserve_batch_tokens_sum{model="a"} 60000.0
bertserve_batch_tokens_sum{model="b"} 20000.0
"""
    seconds, tokens = compute_totals(metrics)
    assert (seconds, tokens) == (2.0, 80000.0)
    assert ms_per_1k_tokens((0.0, 1.0, 40000.0), (1.0, seconds, tokens)) == 25.0
    assert math.isnan(ms_per_1k_tokens((0.0, 1.0, 4.0), (1.0, 1.0, 4.0)))
