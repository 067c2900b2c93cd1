"""The faults scenario: a runner that raises, a truncated .onnx, a missing tokenizer, a manifest of
another version. Only the affected items or models fail, with the reason; the rest keep serving."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.harness import run_server
from tools.bench.stress.load import closed_loop
from tools.bench.stress.report import Row
from tools.bench.stress.traffic import Traffic

BROKEN = {
    "fault-truncated-onnx": "checksum",
    "fault-missing-tokenizer": "tokenizer",
    "fault-other-version": "format_version",
}


def _replace(path: Path, data: bytes) -> None:
    """Write a new file in place of a hard link, never through it (the source must stay intact)."""
    path.unlink()
    path.write_bytes(data)


def build_repository(models: Path, into: Path) -> dict[str, str]:
    """Hard-linked copies of every model in `models`, plus three broken ones; returns task -> model."""
    by_task: dict[str, str] = {}
    for folder in sorted(p for p in models.iterdir() if (p / "manifest.json").is_file()):
        shutil.copytree(folder, into / folder.name, copy_function=os.link)
        by_task.setdefault(json.loads((folder / "manifest.json").read_text())["task"], folder.name)
    source = models / by_task["classify"]
    for name in BROKEN:
        shutil.copytree(source, into / name, copy_function=os.link)
    for onnx_file in (into / "fault-truncated-onnx").glob("*.onnx"):
        _replace(onnx_file, onnx_file.read_bytes()[:4096])
    (into / "fault-missing-tokenizer" / "tokenizer.json").unlink()
    manifest_path = into / "fault-other-version" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    _replace(manifest_path, json.dumps(manifest).encode())
    return by_task


@contextmanager
def faulty_server(models: Path, work: Path, env: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    repository = work / "fault-models"
    repository.mkdir(parents=True)
    by_task = build_repository(models, repository)
    faults = {by_task["pair"]: {"fail_run_every": 4}}
    with run_server(
        repository, work, env={**env, "BERTSERVE_FAULTS": json.dumps(faults)}, ready=False, timeout=120
    ) as server:
        yield server.url, by_task
    shutil.rmtree(repository)


async def faults(models: Path, work: Path, env: dict[str, str], seconds: float) -> Row:
    with faulty_server(models, work, env) as (url, by_task):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # until every model has loaded or failed
                states = {m["name"]: m for m in (await client.get("/v1/models")).json()["models"]}
                if all(m["state"] != "loading" for m in states.values()):
                    break
                await asyncio.sleep(0.2)
            ready = await client.get("/health/ready")
            named = await client.post("/classify", json={"inputs": "hi", "model": "fault-truncated-onnx"})
            run = await closed_loop(url, Traffic(seed=11).next, clients=8, seconds=seconds)
            metrics = (await client.get("/metrics")).text
    by_path: dict[str, dict[int, int]] = {}
    for outcome in run.outcomes:
        counts = by_path.setdefault(outcome.path, {})
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    pair_failures = [o for o in run.outcomes if o.path == "/pair" and o.status == 500]
    healthy_paths = {path: counts for path, counts in by_path.items() if path != "/pair"}
    reasons_ok = all(
        states[name]["state"] == "failed" and word in states[name].get("error", "")
        for name, word in BROKEN.items()
    )
    good_ready = all(states[name]["state"] == "ready" for name in by_task.values())
    return Row(
        "faults",
        {
            "statuses_by_route": {p: {str(k): v for k, v in c.items()} for p, c in sorted(by_path.items())},
            "failed_models": {n: states[n].get("error", "")[:60] for n in BROKEN},
            "injected_batch_failures": sum(
                float(line.rpartition(" ")[2])
                for line in metrics.splitlines()
                if line.startswith("bertserve_failed_batches_total{")
            ),
        },
        {
            "broken models fail with the reason": reasons_ok,
            "the other models load and serve": good_ready
            and all(200 in c and set(c) <= {200, 429} for c in healthy_paths.values()),
            "a failing runner fails only its items (500 inference_failed)": bool(pair_failures)
            and all(o.error_type == "inference_failed" for o in pair_failures)
            and by_path.get("/pair", {}).get(200, 0) > 0,
            "readiness tells the truth (503, naming the broken models)": ready.status_code == 503
            and set(ready.json()["errors"]) == set(BROKEN),
            "a broken model named in a request: 503 with Retry-After": named.status_code == 503
            and "retry-after" in named.headers,
        },
    )
