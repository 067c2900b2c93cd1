"""`python -m tools.bench.stress`: start the real server, drive it through every scenario, print the figures.

The table first, then one JSON line; the exit status is 1 when any requirement did not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.harness import run_server
from tools.bench.stress import scenarios
from tools.bench.stress.faults import faults
from tools.bench.stress.generated import schemathesis
from tools.bench.stress.hostile import hostile
from tools.bench.stress.probe import sample_process
from tools.bench.stress.profiles import PROFILES, Profile
from tools.bench.stress.report import Row, json_line, table
from tools.bench.stress.traffic import Traffic

SCENARIOS = ("soak", "overload", "disconnect", "generated", "sigterm", "faults", "hostile")
DRAIN_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 30.0
SERVER_ENV = {
    "BERTSERVE_INTRA_OP_THREADS": "0",  # as `make serve` runs it
    "BERTSERVE_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S),
    "BERTSERVE_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
    "BERTSERVE_LOG_LEVEL": "warning",
}


def log(message: str) -> None:
    print(f"[stress {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run_all(
    models: Path, profile: Profile, only: set[str], work: Path
) -> tuple[list[Row], dict[str, object]]:
    rows: list[Row] = []
    traffic = Traffic()
    meta: dict[str, object] = {
        "profile": profile.name,
        "models": sorted(p.name for p in models.iterdir() if p.is_dir()),
    }
    with run_server(models, work, env=SERVER_ENV, timeout=300) as server:
        meta["rss_mb_ready"] = round(sample_process(server.process.pid).rss_mb, 1)
        log(f"server ready ({meta['rss_mb_ready']} MB resident); measuring capacity")
        row, capacity = await scenarios.calibrate(server, profile, traffic)
        rows.append(row)
        log(f"capacity {capacity.requests_per_s:.1f} requests/s ({capacity.inputs_per_s:.0f} inputs/s)")
        if "soak" in only:
            log(f"soak: {profile.soak_requests} requests at {profile.soak_load:.0%} of capacity")
            rows.append(await scenarios.soak(server, profile, traffic, capacity))
        if "overload" in only:
            log(f"overload: {profile.overload_factor:g}x capacity for {profile.overload_s:g} s")
            rows.append(await scenarios.overload(server, profile, traffic, capacity, REQUEST_TIMEOUT_S))
        if "disconnect" in only:
            log(f"disconnect storm: {profile.storm_clients} clients abandon heavy QA requests")
            rows.append(await scenarios.disconnect_storm(server, profile, traffic))
        if "generated" in only:
            log("generated requests: schemathesis")
            served = [p.name for p in models.iterdir() if (p / "manifest.json").is_file()]
            minimum = 1000 if profile.enforce_trends else 0
            rows.append(await schemathesis(server.url, profile.schemathesis_examples, work, served, minimum))
    if "sigterm" in only:
        log("SIGTERM under load")
        # at info, the server logs what it received and answered as it shuts down
        sigterm_env = {**SERVER_ENV, "BERTSERVE_LOG_LEVEL": "info"}
        with run_server(models, work, env=sigterm_env, timeout=300) as server:
            rows.append(await scenarios.sigterm(server, profile, traffic, capacity, DRAIN_TIMEOUT_S))
    if "faults" in only:
        log("faults: a failing runner, a truncated .onnx, a missing tokenizer, another manifest version")
        rows.append(await faults(models, work, SERVER_ENV, seconds=min(10.0, profile.calibrate_s)))
    if "hostile" in only:
        log("hostile: one request at a time built to take the server down, ordinary traffic beside")
        rows.append(
            await hostile(models, work, SERVER_ENV, profile, capacity_per_s=capacity.requests_per_s, log=log)
        )
    return rows, meta


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.stress", description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("models"), help="model repository to serve")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}")
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for server logs (default: a temp dir)"
    )
    parser.add_argument("--json-out", type=Path, default=None, help="also write the JSON figures here")
    parser.add_argument("--soak-requests", type=int, default=None, help="override the profile's soak length")
    args = parser.parse_args()
    only = set(args.only.split(","))
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if not any((p / "manifest.json").is_file() for p in args.models.iterdir()):
        parser.error(f"no models in {args.models}: run `make models` first")
    work = args.work or Path(tempfile.mkdtemp(prefix="bertserve-stress-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    profile = PROFILES[args.profile]
    if args.soak_requests is not None:
        profile = dataclasses.replace(profile, soak_requests=args.soak_requests)
    rows, meta = asyncio.run(run_all(args.models, profile, only, work))
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["work"] = str(work)
    print(table(rows))
    line = json_line(rows, meta)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(json.loads(line), indent=2) + "\n")
    print(line)
    sys.exit(0 if all(row.passed for row in rows) else 1)


if __name__ == "__main__":
    main()
