"""`make bench`: the server against the best in-process engine and the HTTP floor, in one run.

1. engines: the served variant and the plain `quantize_dynamic` int8 of the unfused export, in
   process on length-sorted batches of 8 and 32, tokenization included; the best is the ceiling;
2. floor: the same load generator against `GET /health/live` (a route that does nothing);
3. server: bertserve over HTTP with dynamic batching, at 1, 16 and 64 clients, one text and 32
   texts per request, on SST-2 dev sentences and on a mixed-length corpus (5 to 60 words);
4. optionally (--naive) a FastAPI endpoint running `transformers.pipeline` per request.
The last line printed is one JSON object with every cell and its ratios.
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

from app.contract.manifest import TOKENIZER_FILE, Manifest
from tests.harness import RunningServer, free_port, run_process, run_server
from tools.bench.ceiling import Engine, engine_speeds, plain_int8, single_text_ms
from tools.bench.corpus import mixed_lengths, sentences
from tools.bench.load import LoadResult, drive
from tools.bench.model import bench_model

ROOT = Path(__file__).resolve().parents[2]
MAX_CELL_S = 30.0


def parse_args(argv: list[str] | None = None, prog: str = "python -m tools.bench") -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="classifier checkpoint (default: demo/sst2-minilm, else MiniLM with a seeded head)",
    )
    parser.add_argument("--precision", default="int8", choices=["fp32", "int8", "fp16"])
    parser.add_argument("--clients", default="1,16,64", help="concurrent HTTP clients per cell")
    parser.add_argument("--texts-per-request", default="1,32", help="texts per request per cell")
    parser.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="measured seconds per cell (longer where requests take longer: 64 clients x 32 texts)",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    parser.add_argument("--engine-texts", type=int, default=128, help="texts per corpus for the engines")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = all cores)"
    )
    parser.add_argument("--naive", action="store_true", help="also measure a transformers.pipeline server")
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


def delta_mean(before: dict[str, float], after: dict[str, float], family: str) -> float | None:
    count = after.get(f"{family}_count", 0.0) - before.get(f"{family}_count", 0.0)
    total = after.get(f"{family}_sum", 0.0) - before.get(f"{family}_sum", 0.0)
    return total / count if count else None


def load(url: str, texts: list[str], *, path: str = "/classify", **kwargs: Any) -> LoadResult:
    return asyncio.run(drive(url, path, texts, **kwargs))


def ms(value: float) -> float:
    return round(value, 1)


def measure_engines(
    checkpoint: Path, model_dir: Path, name: str, precision: str, corpora: dict[str, list[str]], *, count: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """Per corpus: each engine's speed at batches of 8 and 32, the best, and the batch-1 time."""
    manifest = Manifest.read(model_dir / name)
    variant = manifest.variant(precision) or manifest.variants[0]  # type: ignore[arg-type]
    tokenizer = model_dir / name / TOKENIZER_FILE
    engines = {
        f"served-{variant.precision}": Engine(
            model_dir / name / variant.file, tokenizer, manifest.max_length
        ),
        "plain-int8-unfused": Engine(plain_int8(checkpoint), tokenizer, manifest.max_length),
    }
    report: dict[str, Any] = {}
    best: dict[str, float] = {}
    for corpus, texts in corpora.items():
        speeds = engine_speeds(engines, texts[:count], batch_sizes=(8, 32))
        top = max(speeds, key=lambda speed: speed.seq_per_s)
        batch1 = single_text_ms(engines[f"served-{variant.precision}"], texts[:64])
        best[corpus] = top.seq_per_s
        report[corpus] = {
            "engines": {f"{s.engine}@{s.batch_size}": round(s.seq_per_s, 1) for s in speeds},
            "best": f"{top.engine}@{top.batch_size}",
            "best_seq_per_s": round(top.seq_per_s, 1),
            "served_batch1_ms": round(batch1, 2),
        }
        for speed in speeds:
            print(
                f"  engine {corpus:<6} {speed.engine:<20} batch {speed.batch_size:>2}: "
                f"{speed.seq_per_s:7.1f} seq/s"
            )
        print(f"  engine {corpus:<6} served variant, one text alone: {batch1:.2f} ms", flush=True)
    return report, best


def measure_floor(server: RunningServer, clients: list[int]) -> dict[int, float]:
    """p50 of GET /health/live per client count: what HTTP and the load generator cost alone."""
    floor = {}
    for count in clients:
        result = load(
            server.url, [""], path="/health/live", get=True, clients=count, seconds=2.0, warmup_s=0.5
        )
        floor[count] = result.percentile(50)
        print(
            f"  floor  {count:>2} clients: {result.requests / 2.0:8.0f} req/s  p50 {floor[count]:6.2f} ms",
            flush=True,
        )
    return floor


def main(argv: list[str] | None = None, prog: str = "python -m tools.bench") -> int:
    args = parse_args(argv, prog)
    clients = [int(c) for c in args.clients.split(",")]
    per_request = [int(t) for t in args.texts_per_request.split(",")]
    corpora = {"sst2": sentences(), "mixed": mixed_lengths()}
    work = Path(tempfile.mkdtemp(prefix="bertserve-bench-"))
    checkpoint, model_dir, name = bench_model(args.checkpoint, args.precision)
    print(
        f"model {name} ({checkpoint}), precision {args.precision}; cells: {clients} clients x "
        f"{per_request} texts per request x corpora {list(corpora)}, {args.seconds:g} s each",
        flush=True,
    )
    engines, best = measure_engines(
        checkpoint, model_dir, name, args.precision, corpora, count=args.engine_texts
    )

    env = {
        "BERTSERVE_PRECISION": args.precision,
        "BERTSERVE_INTRA_OP_THREADS": str(args.threads),
        "BERTSERVE_BATCH__MAX_BATCH_SIZE": str(args.max_batch_size),
        "BERTSERVE_BATCH__MAX_DELAY_MS": str(args.max_delay_ms),
        # 64 clients x 32 texts queue ~8 s of work on 2 cores: measure it rather than shed it
        "BERTSERVE_BATCH__MAX_QUEUE_WAIT_S": "60",
        "BERTSERVE_MODELS": json.dumps([name]),
        "BERTSERVE_LOG_LEVEL": "warning",
    }
    cells = []
    with run_server(model_dir, work, env=env, timeout=180) as server:
        floor = measure_floor(server, clients)
        for corpus, texts in corpora.items():
            for size in per_request:
                for count in clients:
                    before = scrape(server.url)
                    # a request's latency is about the queued texts over the engine's speed: warm up for
                    # one, measure for at least two, so that heavy cells reach a steady state
                    latency = count * size / best[corpus]
                    result = load(
                        server.url,
                        texts,
                        clients=count,
                        seconds=min(MAX_CELL_S, max(args.seconds, 2.5 * latency)),
                        texts_per_request=size,
                        warmup_s=min(MAX_CELL_S, max(args.warmup, latency)),
                    )
                    after = scrape(server.url)
                    batch_size = delta_mean(before, after, "bertserve_batch_size")
                    padding = delta_mean(before, after, "bertserve_padding_ratio")
                    figures = cell(result, corpus=corpus, clients=count, texts_per_request=size)
                    figures |= {
                        "mean_batch_size": round(batch_size, 2) if batch_size is not None else None,
                        "padding_ratio": round(padding, 3) if padding is not None else None,
                        "server_vs_best_engine": round(result.seq_per_s / best[corpus], 3),
                    }
                    if size == 1:
                        bound = floor[count] + engines[corpus]["served_batch1_ms"]
                        figures["floor_plus_batch1_ms"] = ms(bound)
                        figures["p50_vs_floor_plus_batch1"] = round(result.percentile(50) / bound, 2)
                    cells.append(figures)
                    print(summary_line(cells[-1]), flush=True)

    naive: dict[str, Any] | None = None
    if args.naive:
        port = free_port()
        command = [sys.executable, "-m", "tools.bench.naive_server", str(checkpoint), str(port)]
        with run_process(command, port, work, env={}, timeout=180) as process:
            result = load(
                process.url, corpora["sst2"], clients=64, seconds=args.seconds * 2, warmup_s=args.warmup
            )
        naive = {"clients": 64, "seq_per_s": round(result.seq_per_s, 1), "p50_ms": ms(result.percentile(50))}
        print(f"  naive  transformers.pipeline, 64 clients, SST-2: {naive}", flush=True)

    summary = {
        "goals": goals(cells),
        "model": name,
        "precision": args.precision,
        "engines": engines,
        "floor_p50_ms": {str(count): round(value, 2) for count, value in floor.items()},
        "cells": cells,
        "naive": naive,
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


def goals(cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The issue's goals per corpus, from the cells that exist."""
    found: dict[str, dict[str, Any]] = {}
    for figures in cells:
        shape = (figures["clients"], figures["texts_per_request"])
        goal = found.setdefault(figures["corpus"], {})
        if shape == (64, 1):
            goal["64x1_vs_best_engine (>= 0.90)"] = figures["server_vs_best_engine"]
            goal["64x1_p99_over_p50 (<= 2)"] = round(figures["p99_ms"] / figures["p50_ms"], 2)
        elif shape == (1, 1):
            goal["1x1_p50_minus_floor_plus_batch1_ms (<= 1)"] = round(
                figures["p50_ms"] - figures["floor_plus_batch1_ms"], 1
            )
        elif shape == (16, 32):
            goal["16x32_vs_best_engine (>= 0.95)"] = figures["server_vs_best_engine"]
    return found


def cell(result: LoadResult, **labels: Any) -> dict[str, Any]:
    return {
        **labels,
        "seq_per_s": round(result.seq_per_s, 1),
        "p50_ms": ms(result.percentile(50)),
        "p99_ms": ms(result.percentile(99)),
        "errors": result.errors,
    }


def summary_line(figures: dict[str, Any]) -> str:
    extra = (
        f"  p50/(floor+batch1) {figures['p50_vs_floor_plus_batch1']:.2f}"
        if "p50_vs_floor_plus_batch1" in figures
        else ""
    )
    shape = (
        f"{figures['corpus']:<6} {figures['clients']:>2} clients x {figures['texts_per_request']:>2} texts"
    )
    return (
        f"  server {shape}: {figures['seq_per_s']:7.1f} seq/s  "
        f"p50 {figures['p50_ms']:7.1f} ms  p99 {figures['p99_ms']:7.1f} ms  "
        f"batch {figures['mean_batch_size']}  padding {figures['padding_ratio']}  "
        f"vs best engine {figures['server_vs_best_engine']:.2f}{extra}  errors {figures['errors']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
