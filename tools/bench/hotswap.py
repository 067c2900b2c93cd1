"""Models changed under load, against a real server: 64 clients send to a model while its folder is
replaced by another export (picked up by the repository poll), while it is loaded again through the
load endpoint, and while a second model they send to is unloaded. Reports every answer by status, the
p99 latency before and during each change, and the server's resident memory before a second model is
loaded, once it is loaded and warm, and after it is unloaded.

    python -m tools.bench.hotswap [--model sst2-minilm] [--clients 64] [--seconds 4]

The replacement export is the model's folder with another variant set: its int8 variant left out
(so the server picks another) and a new `created_at`, i.e. another manifest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np

from tests.harness import RunningServer, run_server

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.5


# -- traffic -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    sent: float  # perf_counter() when sent
    seconds: float
    status: int


async def traffic(
    url: str, model: str, clients: int, stop: asyncio.Event, headers: dict[str, str] | None = None
) -> list[Answer]:
    """`clients` closed-loop clients POST /classify to `model` until `stop` is set; every answer."""
    answers: list[Answer] = []
    body = {"inputs": "A film that holds up on every viewing.", "model": model}

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            sent = time.perf_counter()
            async with session.post(f"{url}/classify", json=body) as response:
                await response.read()
            answers.append(Answer(sent, time.perf_counter() - sent, response.status))

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return answers


async def under_load(
    url: str,
    model: str,
    clients: int,
    change: Callable[[], Any],
    *,
    around_s: float,
    headers: dict[str, str] | None = None,
) -> tuple[list[Answer], float, float]:
    """Traffic for `around_s`, then `change()` (run in a thread), then `around_s` more; returns the
    answers and when the change began and ended (perf_counter)."""
    stop = asyncio.Event()
    sending = asyncio.ensure_future(traffic(url, model, clients, stop, headers))
    await asyncio.sleep(around_s)
    began = time.perf_counter()
    await asyncio.to_thread(change)
    ended = time.perf_counter()
    await asyncio.sleep(around_s)
    stop.set()
    return await sending, began, ended


async def steady(
    url: str, model: str, clients: int, seconds: float, headers: dict[str, str] | None = None
) -> list[Answer]:
    """Traffic for `seconds` with nothing changing."""
    stop = asyncio.Event()
    sending = asyncio.ensure_future(traffic(url, model, clients, stop, headers))
    await asyncio.sleep(seconds)
    stop.set()
    return await sending


def p99_ms(answers: list[Answer]) -> float:
    return float(np.percentile([a.seconds * 1000 for a in answers], 99)) if answers else float("nan")


def statuses(answers: list[Answer]) -> dict[int, int]:
    return dict(sorted(Counter(a.status for a in answers).items()))


# -- the server and its repository ------------------------------------------------------------------


def replacement_export(source: Path, target: Path) -> None:
    """A copy of the model folder `source` at `target` as another export: without its int8 variant
    (when it has another) and with a new `created_at`, so another manifest."""
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    others = [v for v in manifest["variants"] if v["precision"] != "int8"]
    if others and len(others) < len(manifest["variants"]):
        for variant in manifest["variants"]:
            if variant["precision"] == "int8":
                (target / variant["file"]).unlink()
        manifest["variants"] = others
    manifest["created_at"] = datetime.now(UTC).isoformat()
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))


def replace_folder(repo: Path, name: str, replacement: Path) -> None:
    """Put `replacement` in place of `repo/name` by two renames (the old one kept aside, hidden)."""
    aside = repo / f".old-{name}-{time.monotonic_ns()}"
    (repo / name).rename(aside)
    replacement.rename(repo / name)
    shutil.rmtree(aside)


def resident_mb(pid: int) -> float:
    """The process's resident set (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def metric(url: str, series: str) -> float:
    """The value of one series (name and labels exactly as exported), 0 if absent."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def loads_ok(url: str, model: str) -> float:
    return metric(url, f'bertserve_model_loads_total{{model="{model}",outcome="ok"}}')


def index_state(url: str, model: str, headers: dict[str, str] | None = None) -> str:
    entries = httpx.post(f"{url}/v2/repository/index", headers=headers or {}).json()
    return next((e["state"] for e in entries if e["name"] == model), "ABSENT")


def post_ok(url: str) -> None:
    answer = httpx.post(url, timeout=120)
    if answer.status_code != 200:
        raise RuntimeError(f"POST {url}: {answer.status_code} {answer.text}")


def served_precision(url: str, model: str) -> str:
    listing: list[dict[str, Any]] = httpx.get(f"{url}/v1/models").json()["models"]
    return str(next(m for m in listing if m["name"] == model).get("precision"))


def settled_resident_mb(pid: int, seconds: float = 2.0) -> float:
    """Resident memory once it stops moving (the lowest of a few readings over `seconds`)."""
    readings = []
    for _ in range(5):
        readings.append(resident_mb(pid))
        time.sleep(seconds / 5)
    return min(readings)


# -- the run ---------------------------------------------------------------------------------------------


async def run(server: RunningServer, repo: Path, model: str, clients: int, seconds: float) -> dict[str, Any]:
    url, half = server.url, seconds / 2
    figures: dict[str, Any] = {"model": model, "clients": clients}

    figures["before"] = summary(await steady(url, model, clients, seconds))
    figures["precision_before"] = served_precision(url, model)

    replacement = repo / f".new-{model}"
    replacement_export(repo / model, replacement)
    done = loads_ok(url, model) + 1

    def poll_swap() -> None:
        replace_folder(repo, model, replacement)
        eventually(lambda: loads_ok(url, model) >= done, 60, "the poll to swap the folder in")

    answers, began, ended = await under_load(url, model, clients, poll_swap, around_s=half)
    figures["poll_swap"] = summary(answers, began, ended)
    figures["precision_after_poll_swap"] = served_precision(url, model)
    figures["after_poll_swap"] = summary(await steady(url, model, clients, seconds))

    def endpoint_swap() -> None:
        post_ok(f"{url}/v2/repository/models/{model}/load")

    answers, began, ended = await under_load(url, model, clients, endpoint_swap, around_s=half)
    figures["endpoint_swap"] = summary(answers, began, ended)

    second = f"{model}-second"
    pid = server.process.pid
    figures["resident_mb_before_load"] = settled_resident_mb(pid)
    shutil.copytree(repo / model, repo / second)
    post_ok(f"{url}/v2/repository/models/{second}/load")
    await steady(url, second, clients, half)  # so the second model's runs have touched their memory
    figures["resident_mb_loaded"] = settled_resident_mb(pid)

    def unload() -> None:
        post_ok(f"{url}/v2/repository/models/{second}/unload")
        eventually(lambda: index_state(url, second) == "UNAVAILABLE", 60, "the unloaded model to stop")

    answers, began, ended = await under_load(url, second, clients, unload, around_s=half)
    figures["unload"] = summary(answers, began, ended)
    figures["resident_mb_after_unload"] = settled_resident_mb(pid)
    return figures


def summary(answers: list[Answer], began: float | None = None, ended: float | None = None) -> dict[str, Any]:
    """Counts by status and p99; with a change, also the p99 of the requests sent while it ran."""
    row: dict[str, Any] = {"requests": len(answers), "statuses": statuses(answers), "p99_ms": p99_ms(answers)}
    if began is not None and ended is not None:
        during = [a for a in answers if began <= a.sent <= ended]
        row |= {"change_s": round(ended - began, 2), "during": len(during), "p99_during_ms": p99_ms(during)}
    return row


def table(figures: dict[str, Any]) -> str:
    lines = [
        "| phase | requests | statuses | p99 ms (phase) | change s | requests during | p99 ms during |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase in ("before", "poll_swap", "after_poll_swap", "endpoint_swap", "unload"):
        row = figures[phase]
        lines.append(
            f"| {phase} | {row['requests']} | {row['statuses']} | {row['p99_ms']:.1f} | "
            f"{row.get('change_s', '')} | {row.get('during', '')} | "
            + (f"{row['p99_during_ms']:.1f} |" if "p99_during_ms" in row else " |")
        )
    lines.append(
        f"\nprecision served: {figures['precision_before']} before, "
        f"{figures['precision_after_poll_swap']} after the poll swap"
    )
    lines.append(
        f"resident MB: {figures['resident_mb_before_load']:.0f} before loading a second model, "
        f"{figures['resident_mb_loaded']:.0f} with it loaded and run, "
        f"{figures['resident_mb_after_unload']:.0f} after unloading it"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.hotswap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models", help="where the model comes from")
    parser.add_argument("--model", default="sst2-minilm", help="a classify model folder in --model-dir")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each phase")
    parser.add_argument("--precision", default="auto", help="BERTSERVE_PRECISION for the server")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hotswap-") as work:
        repo = Path(work) / "models"
        shutil.copytree(args.model_dir / args.model, repo / args.model)
        env = {"BERTSERVE_MODEL_POLL_S": str(POLL_S), "BERTSERVE_PRECISION": args.precision}
        with run_server(repo, Path(work), env=env, timeout=300) as server:
            try:
                figures = asyncio.run(run(server, repo, args.model, args.clients, args.seconds))
            except Exception:
                print("\n".join(server.log().splitlines()[-30:]))
                raise
    print(table(figures))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
