"""`make bench`: the server under concurrent load against two baselines, in one run, on one model.

1. ceiling: the same ONNX variant in-process on ideal length-sorted batches (no HTTP), at the
   batch size where the engine is fastest;
2. naive: a FastAPI endpoint running `transformers.pipeline` per request (PyTorch, no batching);
3. server: bertserve over HTTP with dynamic batching.
All three are driven with the same real sentences; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.ceiling import best_ceiling
from bench.corpus import sentences
from bench.load import LoadResult, drive
from bench.model import bench_model
from bench.process import free_port, run_process, run_server

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="classifier checkpoint (default: demo/sst2-minilm, else MiniLM with a seeded head)",
    )
    parser.add_argument("--precision", default="int8", choices=["fp32", "int8", "fp16"])
    parser.add_argument("--clients", type=int, default=64, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = all cores)"
    )
    parser.add_argument("--skip-naive", action="store_true", help="leave out the PyTorch pipeline baseline")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON summary here")
    return parser.parse_args(argv)


def scrape(url: str) -> dict[str, float]:
    """Sum of each `bertserve_batch_*`/`bertserve_padding_ratio` sample over its labels."""
    totals: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(("bertserve_batch_size_", "bertserve_padding_ratio_")) and not line.startswith(
            "#"
        ):
            name = line.split("{")[0].split(" ")[0]
            totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[-1])
    return totals


def delta_mean(before: dict[str, float], after: dict[str, float], family: str) -> float:
    count = after.get(f"{family}_count", 0.0) - before.get(f"{family}_count", 0.0)
    total = after.get(f"{family}_sum", 0.0) - before.get(f"{family}_sum", 0.0)
    return total / count if count else float("nan")


def run_load(url: str, texts: list[str], args: argparse.Namespace) -> LoadResult:
    return asyncio.run(
        drive(
            url,
            "/classify",
            texts,
            clients=args.clients,
            seconds=args.seconds,
            texts_per_request=args.texts_per_request,
        )
    )


def line(label: str, result: LoadResult) -> str:
    return (
        f"  {label:<8} {result.seq_per_s:9.1f} seq/s   p50 {result.percentile(50):8.1f} ms   "
        f"p95 {result.percentile(95):8.1f} ms   p99 {result.percentile(99):8.1f} ms   errors {result.errors}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    texts = sentences()
    work = Path(tempfile.mkdtemp(prefix="bertserve-bench-"))
    checkpoint, model_dir, name = bench_model(args.checkpoint, args.precision)
    print(
        f"model {name} ({checkpoint}), precision {args.precision}, {len(texts)} sentences, "
        f"{args.clients} clients, {args.texts_per_request} text(s) per request, {args.seconds:g} s per phase",
        flush=True,
    )

    sizes = sorted({size for size in (8, 16, 32, 64) if size <= args.max_batch_size} | {args.max_batch_size})
    ceiling, ceiling_batch = best_ceiling(
        model_dir, name, texts, batch_sizes=sizes, seconds=args.seconds / 4, precision=args.precision
    )
    print(
        f"  ceiling  {ceiling:9.1f} seq/s   (in-process ONNX Runtime, length-sorted batches of "
        f"{ceiling_batch}, the best of {sizes})",
        flush=True,
    )

    naive: LoadResult | None = None
    if not args.skip_naive:
        port = free_port()
        command = [sys.executable, "-m", "bench.naive_server", str(checkpoint), str(port)]
        with run_process(command, port, work, env={}, timeout=180) as server:
            naive = run_load(server.url, texts, args)
        print(line("naive", naive), flush=True)

    env = {
        "BERTSERVE_PRECISION": args.precision,
        "BERTSERVE_INTRA_OP_THREADS": str(args.threads),
        "BERTSERVE_BATCH__MAX_BATCH_SIZE": str(args.max_batch_size),
        "BERTSERVE_BATCH__MAX_DELAY_MS": str(args.max_delay_ms),
        "BERTSERVE_MODELS": json.dumps([name]),
        "BERTSERVE_LOG_LEVEL": "warning",
    }
    with run_server(model_dir, work, env=env, timeout=180) as server:
        before = scrape(server.url)
        served = run_load(server.url, texts, args)
        after = scrape(server.url)
    print(line("server", served), flush=True)

    summary: dict[str, Any] = {
        "model": name,
        "precision": args.precision,
        "clients": args.clients,
        "texts_per_request": args.texts_per_request,
        "server_seq_per_s": round(served.seq_per_s, 1),
        "ceiling_seq_per_s": round(ceiling, 1),
        "ceiling_batch_size": ceiling_batch,
        "naive_seq_per_s": round(naive.seq_per_s, 1) if naive else None,
        "server_vs_ceiling": round(served.seq_per_s / ceiling, 3),
        "server_vs_naive": round(served.seq_per_s / naive.seq_per_s, 2)
        if naive and naive.seq_per_s
        else None,
        "p50_ms": round(served.percentile(50), 1),
        "p95_ms": round(served.percentile(95), 1),
        "p99_ms": round(served.percentile(99), 1),
        "naive_p50_ms": round(naive.percentile(50), 1) if naive else None,
        "naive_p99_ms": round(naive.percentile(99), 1) if naive else None,
        "mean_batch_size": round(delta_mean(before, after, "bertserve_batch_size"), 2),
        "padding_ratio": round(delta_mean(before, after, "bertserve_padding_ratio"), 3),
        "errors": served.errors,
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
