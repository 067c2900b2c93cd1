"""`python -m tools.bench.tracing_overhead`: what tracing costs under load, in one run.

Two servers of the same build over the same model: one with tracing off, one exporting every request's
spans (sampler always on) over OTLP/gRPC to a real receiver running in a process of its own. Both wait
idle while the other is driven; each round drives both, off then on, the next on then off, and so on,
so that a drift of the machine falls on both. A mode's turn drives `--clients` closed-loop clients
(tools.bench.load) on single-text /classify requests. Printed: requests/s, p50 and p99 per mode over
all rounds, the server process's CPU time per answered request (steadier than throughput on a shared
machine), and on/off ratios; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import httpx

from tests.harness import RunningServer, free_port, run_server
from tests.otlp import otlp_receiver
from tools.bench.corpus import sentences
from tools.bench.load import LoadResult, drive

ROOT = Path(__file__).resolve().parents[2]
MODES = ("off", "on")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.tracing_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models", help="the model repository")
    parser.add_argument("--model", default="sst2-minilm", help="a classify model in --model-dir")
    parser.add_argument("--clients", type=int, default=64, help="concurrent closed-loop clients")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode, alternating")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each round")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per server")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON summary here")
    return parser.parse_args(argv)


def receive_spans(port: int, spans: Synchronized[int], ready: Any) -> None:
    """The receiver's process: counts the spans exported to it until it is terminated."""
    with otlp_receiver(port, keep=False) as (receiver, _):
        ready.set()
        while True:
            with spans.get_lock():
                spans.value = receiver.span_count
            time.sleep(0.5)


@contextlib.contextmanager
def receiver_process() -> Iterator[tuple[str, Synchronized[int]]]:
    """A trace receiver in a process of its own (its decoding does not slow the load generator)."""
    port = free_port()
    spans: Synchronized[int] = multiprocessing.Value("q", 0)
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=receive_spans, args=(port, spans, ready), daemon=True)
    process.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the trace receiver did not start")
        yield f"http://127.0.0.1:{port}", spans
    finally:
        process.terminate()
        process.join(10)


def server_env(args: argparse.Namespace, endpoint: str | None) -> dict[str, str]:
    env = {
        "BERTSERVE_MODELS": json.dumps([args.model]),
        "BERTSERVE_INTRA_OP_THREADS": str(args.threads),
        "BERTSERVE_LOOP_LAG_INTERVAL_S": "0",
    }
    if endpoint is not None:
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "always_on"}
    return env


@dataclass(frozen=True)
class Round:
    load: LoadResult
    cpu_seconds: float  # the server process's user + system time over the round, warm-up included
    answered: int  # the requests it answered over the same time

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / max(1, self.answered)


def run_round(server: RunningServer, texts: list[str], args: argparse.Namespace) -> Round:
    cpu, answered = cpu_seconds(server), answered_so_far(server)
    load = asyncio.run(
        drive(
            server.url, "/classify", texts, clients=args.clients, seconds=args.seconds, warmup_s=args.warmup
        )
    )
    return Round(load, cpu_seconds(server) - cpu, answered_so_far(server) - answered)


def cpu_seconds(server: RunningServer) -> float:
    """User + system CPU time of the server process so far (Linux /proc)."""
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def answered_so_far(server: RunningServer) -> int:
    """Requests the server has answered (bertserve_requests_total over its labels)."""
    lines = httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines()
    counts = [float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("bertserve_requests_total{")]
    return int(sum(counts))


def figures(rounds: list[Round]) -> dict[str, Any]:
    """Requests/s, p50 and p99 (ms) over every round of one mode, server CPU per request, errors."""
    results = [r.load for r in rounds]
    merged = LoadResult(
        requests=sum(r.requests for r in results),
        sequences=sum(r.sequences for r in results),
        errors=sum(r.errors for r in results),
        seconds=sum(r.seconds for r in results),
        latencies_ms=[ms for result in results for ms in result.latencies_ms],
    )
    cpu_ms = 1000 * sum(r.cpu_seconds for r in rounds) / max(1, sum(r.answered for r in rounds))
    return {
        "req_per_s": round(merged.sequences / merged.seconds, 1),
        "p50_ms": round(merged.percentile(50), 2),
        "p99_ms": round(merged.percentile(99), 2),
        "cpu_ms_per_req": round(cpu_ms, 3),
        "errors": merged.errors,
        "rounds_req_per_s": [round(r.seq_per_s, 1) for r in results],
    }


def report(index: int, mode: str, done: Round) -> None:
    load = done.load
    print(
        f"round {index} tracing {mode:3}: {load.seq_per_s:7.1f} req/s  p50 {load.percentile(50):7.2f} ms  "
        f"p99 {load.percentile(99):7.2f} ms  cpu {done.cpu_ms_per_request:.3f} ms/req  errors {load.errors}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    texts = sentences()
    work = Path(tempfile.mkdtemp(prefix="bench-tracing-"))
    rounds: dict[str, list[Round]] = {mode: [] for mode in MODES}
    with (
        receiver_process() as (endpoint, spans),
        run_server(args.model_dir, work, env=server_env(args, None), timeout=180) as off,
        run_server(args.model_dir, work, env=server_env(args, endpoint), timeout=180) as on,
    ):
        servers = {"off": off, "on": on}
        for index in range(1, args.rounds + 1):
            for mode in MODES if index % 2 else reversed(MODES):  # off-on, on-off, ...: order cancels
                rounds[mode].append(run_round(servers[mode], texts, args))
                report(index, mode, rounds[mode][-1])
        exported = spans.value
    summary: dict[str, Any] = {mode: figures(rounds[mode]) for mode in MODES}
    summary["ratios_on_over_off"] = {
        key: round(summary["on"][key] / summary["off"][key], 3)
        for key in ("req_per_s", "p50_ms", "p99_ms", "cpu_ms_per_req")
    }
    summary["spans_exported"] = exported
    summary["setup"] = {"clients": args.clients, "rounds": args.rounds, "seconds": args.seconds}
    for mode in MODES:
        got = summary[mode]
        print(
            f"tracing {mode:3}: {got['req_per_s']:7.1f} req/s  p50 {got['p50_ms']:7.2f} ms  "
            f"p99 {got['p99_ms']:7.2f} ms  cpu {got['cpu_ms_per_req']:.3f} ms/req"
        )
    print(f"on/off: {summary['ratios_on_over_off']}  spans exported: {exported}")
    line = json.dumps(summary)
    if args.out is not None:
        args.out.write_text(line + "\n")
    print(line)
    return 0 if exported > 0 and not any(summary[mode]["errors"] for mode in MODES) else 1


if __name__ == "__main__":
    sys.exit(main())
