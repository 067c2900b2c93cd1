"""The scenarios of `make stress`: each drives a real server process; a Row of figures and checks."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass

import aiohttp
import httpx
import numpy as np

from app.edge.middleware import RequestLedger
from tests.harness import RunningServer
from tools.bench.stress.load import Run, closed_loop, open_loop, session_for
from tools.bench.stress.probe import (
    Watcher,
    metric_sum,
    ms_per_1k_tokens,
    sample_process,
    steal_percent,
    tenth_spans,
    threads_gained,
)
from tools.bench.stress.profiles import Profile
from tools.bench.stress.recovery import (
    RECOVERY_ANSWERS,
    RECOVERY_LIMIT_S,
    backlog_drained_after,
    recovery_time,
    tail_by_second,
)
from tools.bench.stress.report import Row
from tools.bench.stress.traffic import FirstTenthAgain, Traffic

REFUSALS = {429, 503}


@dataclass(frozen=True)
class Capacity:
    requests_per_s: float
    inputs_per_s: float


def _lost(run: Run) -> int:
    return sum(1 for o in run.outcomes if o.status == 0)


def _server_errors(run: Run) -> int:
    return sum(1 for o in run.outcomes if o.status >= 500 and o.status not in REFUSALS)


async def calibrate(server: RunningServer, profile: Profile, traffic: Traffic) -> tuple[Row, Capacity]:
    """Closed loop: the rate the server answers the mixed traffic at, all clients busy."""
    inputs: dict[int, int] = {}

    def next_request():  # type: ignore[no-untyped-def]
        request = traffic.next()
        inputs[id(request)] = request.inputs
        return request

    await closed_loop(server.url, traffic.next, profile.calibrate_clients, 2.0)  # warm-up
    run = await closed_loop(server.url, next_request, profile.calibrate_clients, profile.calibrate_s)
    answered = run.answered()
    rate = len(answered) / run.seconds
    counted = sum(inputs.values()) * len(answered) / max(1, len(run.outcomes))
    capacity = Capacity(rate, counted / run.seconds)
    row = Row(
        "capacity",
        {
            "requests_per_s": rate,
            "inputs_per_s": capacity.inputs_per_s,
            "clients": profile.calibrate_clients,
            "p50_ms": run.percentile_ms(50),
            "p99_ms": run.percentile_ms(99),
            "statuses": run.statuses(),
        },
        {"0 lost, 0 5xx": _lost(run) == 0 and _server_errors(run) == 0},
    )
    return row, capacity


async def soak(server: RunningServer, profile: Profile, traffic: Traffic, capacity: Capacity) -> Row:
    """Open loop at a share of capacity for many requests: nothing lost, nothing grows."""
    rate = capacity.requests_per_s * profile.soak_load
    watcher = Watcher(server.url, server.process.pid, interval=1.0)
    watcher.start()
    client_cpu = time.process_time()
    stream = FirstTenthAgain(traffic, profile.soak_requests)  # the trend compares the same requests
    run = await open_loop(server.url, stream, rate, count=profile.soak_requests)
    client_cores = (time.process_time() - client_cpu) / run.seconds
    await watcher.stop()
    outcomes = sorted(run.outcomes, key=lambda o: o.sent)
    tenth = max(1, len(outcomes) // 10)
    tenths = [outcomes[i * tenth : (i + 1) * tenth] for i in range(9)] + [outcomes[-tenth:]]
    p99_by_tenth = [run.percentile_ms(99, part) for part in tenths]
    first_p99, last_p99 = p99_by_tenth[0], p99_by_tenth[-1]
    samples = watcher.samples
    steal_by_tenth = [round(steal_percent(a, b), 2) for a, b in tenth_spans(samples)]
    ms_per_1k_by_tenth = [round(ms_per_1k_tokens(a, b), 2) for a, b in tenth_spans(watcher.compute)]
    settled = [s for s in samples if s.at >= samples[0].at + run.seconds * 0.2]
    base = settled[0] if settled else watcher.samples[0]
    rss_growth = max(s.rss_mb for s in settled) / base.rss_mb - 1 if settled else float("nan")
    threads = [s.threads for s in settled] or [0]
    files = [s.open_files for s in settled] or [0]
    sockets = [s.sockets for s in settled] or [0]
    row = Row(
        "soak",
        {
            "requests": len(outcomes),
            "rate_per_s": rate,
            "seconds": run.seconds,
            "statuses": run.statuses(),
            "refusals": run.refusals(),
            "load_generator_cores": client_cores,  # the cores the client took from the server's two
            "p50_ms": run.percentile_ms(50),
            "p99_ms": run.percentile_ms(99),
            "p99_first_10pct_ms": first_p99,
            "p99_last_10pct_ms": last_p99,
            "p99_ms_by_tenth": [round(p99) for p99 in p99_by_tenth],
            "host_cpu_steal_pct_by_tenth": steal_by_tenth,
            "onnx_ms_per_1k_tokens_by_tenth": ms_per_1k_by_tenth,
            "rss_mb_at_20pct": base.rss_mb,
            "rss_growth_pct": rss_growth * 100,
            "threads_min_max": f"{min(threads)}-{max(threads)}",
            # Which threads the busiest sample had over the quietest, by name.
            "threads_gained": threads_gained(
                min(settled, key=lambda s: s.threads), max(settled, key=lambda s: s.threads)
            )
            if settled
            else {},
            "open_files_min_max": f"{min(files)}-{max(files)}",
            "sockets_min_max": f"{min(sockets)}-{max(sockets)}",
        },
        {
            "0 lost": _lost(run) == 0,
            "0 5xx": _server_errors(run) == 0 and all(o.status != 503 for o in outcomes),
            "threads flat (+-2)": max(threads) - min(threads) <= 2,
        },
    )
    trends = {
        "resident memory grows < 5% after the first 20%": rss_growth < 0.05,
        "p99 of the last 10% within 20% of the first 10%": last_p99 <= first_p99 * 1.2,
        "open files (not sockets) flat (+-2)": max(files) - min(files) <= 2,
    }
    (row.checks if profile.enforce_trends else row.notes).update(trends)
    return row


async def overload(
    server: RunningServer, profile: Profile, traffic: Traffic, capacity: Capacity, timeout_s: float
) -> Row:
    """Five times capacity, open loop: refusals are quick and honest, the answered rate holds, it recovers."""
    calm = capacity.requests_per_s * 0.5
    # long enough that a recovery at the limit still has its answers after it to be seen
    calm_s = max(profile.recovery_s, RECOVERY_LIMIT_S + 1.2 * RECOVERY_ANSWERS / calm)
    calm_requests = [traffic.next() for _ in range(int(calm * calm_s))]
    baseline = await open_loop(server.url, iter(calm_requests).__next__, calm, count=len(calm_requests))
    tail = profile.recovery_percentile
    watcher = Watcher(server.url, server.process.pid, interval=0.25)
    watcher.start()

    async def after_the_storm() -> Run:  # the baseline's requests again, at the same offsets
        await asyncio.sleep(profile.overload_s)  # starts the moment the storm stops sending
        return await open_loop(server.url, iter(calm_requests).__next__, calm, count=len(calm_requests))

    offered = capacity.requests_per_s * profile.overload_factor
    client_cpu, began = time.process_time(), time.perf_counter()
    storm, after = await asyncio.gather(
        open_loop(server.url, traffic.next, offered, seconds=profile.overload_s), after_the_storm()
    )
    client_cores = (time.process_time() - client_cpu) / (time.perf_counter() - began)
    await watcher.stop()
    refusals = [o for o in storm.outcomes if o.status in REFUSALS]
    in_window = [o for o in storm.answered() if o.sent < profile.overload_s]
    answered_rate = len(in_window) / profile.overload_s
    recovery = recovery_time(after.outcomes, baseline.outcomes, percentile=tail)
    drained_at = backlog_drained_after(watcher, began + profile.overload_s)
    answered_latency = max((o.latency for o in storm.answered()), default=0.0)
    return Row(
        "overload",
        {
            "offered_per_s": capacity.requests_per_s * profile.overload_factor,
            "seconds": profile.overload_s,
            "statuses": storm.statuses(),
            "refusals": storm.refusals(),
            "load_generator_cores": client_cores,
            "answered_per_s": answered_rate,
            "answered_share_of_capacity": answered_rate / capacity.requests_per_s,
            "p50_ms": storm.percentile_ms(50),
            "p99_ms": storm.percentile_ms(99),
            "max_answered_latency_s": answered_latency,
            "refusal_p99_ms": float(np.percentile([o.latency for o in refusals], 99) * 1000)
            if refusals
            else float("nan"),
            "max_queue_items": watcher.max_queue_items,
            "recovery_percentile": tail,
            "calm_per_s": calm,
            "calm_seconds": calm_s,
            "baseline_tail_ms": baseline.percentile_ms(tail),
            "recovered_after_s": recovery.at_s,
            "recovered_tail_ms": recovery.tail_ms,
            "baseline_tail_of_the_same_requests_ms": recovery.baseline_tail_ms,
            f"baseline_p{tail:g}_ms_by_second": tail_by_second(baseline, tail),
            "queues_empty_after_s": drained_at,
            "after_statuses": after.statuses(),
            "after_refused_at_s": [round(o.sent, 2) for o in after.outcomes if o.status in REFUSALS][:50],
            f"after_p{tail:g}_ms_by_second": tail_by_second(after, tail),
        },
        {
            "only 200, 429 or 503": set(storm.statuses()) <= {"200", "429", "503"},
            "every refusal has Retry-After": all(o.retry_after for o in refusals),
            "answered >= 80% of capacity": answered_rate >= 0.8 * capacity.requests_per_s,
            "answered within the request timeout": answered_latency <= timeout_s,
            f"p{tail:g} back to baseline within {RECOVERY_LIMIT_S:g} s": recovery.at_s <= RECOVERY_LIMIT_S,
            "after: nothing lost, no 5xx": _lost(after) == 0 and _server_errors(after) == 0,
        },
    )


async def _readiness_drop(url: str, since: float) -> float:
    """Seconds from `since` until /health/ready stops answering 200 (503, or no connection)."""
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=1)) as session:
        while True:
            try:
                async with session.get("/health/ready") as response:
                    if response.status != 200:
                        return time.perf_counter() - since
            except (TimeoutError, aiohttp.ClientError):
                return time.perf_counter() - since
            await asyncio.sleep(0.005)


async def sigterm(
    server: RunningServer, profile: Profile, traffic: Traffic, capacity: Capacity, drain_s: float
) -> Row:
    """SIGTERM under load: readiness drops at once, every request the server read is answered and
    its answer reaches the client, exit in time.

    The load keeps coming after readiness drops, as from clients that do not watch it. Those that
    connect after the listener closes are refused; one sent on a keep-alive connection just as the
    server closes it idle is reset before the server reads it (HTTP/1.1 has no way to say "not
    read"). Neither reached the application: the server's own count of what it received must equal
    what the clients got answers for, so a request that was read and then lost fails the check.
    """
    rate = capacity.requests_per_s * profile.soak_load
    load = asyncio.create_task(
        open_loop(server.url, traffic.next, rate, seconds=profile.sigterm_after_s + drain_s + 3)
    )
    await asyncio.sleep(profile.sigterm_after_s)
    signalled = time.perf_counter()
    server.process.send_signal(signal.SIGTERM)
    ready_drop = await _readiness_drop(server.url, signalled)
    await asyncio.to_thread(server.process.wait, drain_s + 30)
    exit_s = time.perf_counter() - signalled
    run = await load
    ledger = RequestLedger.last_in(server.log())  # the server's shutdown line
    received, answered = (ledger.received, ledger.answered) if ledger is not None else (-1, -1)
    client_answers = sum(1 for o in run.outcomes if o.status)
    answered_codes = {o.status for o in run.outcomes if o.status}
    return Row(
        "sigterm",
        {
            "rate_per_s": rate,
            "statuses": run.statuses(),
            "server_received": received,
            "server_answered": answered,
            "readiness_false_after_ms": ready_drop * 1000,
            "exit_after_s": exit_s,
            "drain_timeout_s": drain_s,
        },
        {
            "readiness false within 100 ms": ready_drop <= 0.1,
            "every request the server read answered (200, 429 or 503)": ledger is not None
            and answered == received
            and answered_codes <= {200, 429, 503},
            "every answer reached its client, none timed out": client_answers == answered
            and not any(o.lost == "timeout" for o in run.outcomes),
            "exit within DRAIN_TIMEOUT_S": exit_s <= drain_s + 1.0,
        },
    )


async def disconnect_storm(server: RunningServer, profile: Profile, traffic: Traffic) -> Row:
    """Clients that send heavy QA requests and hang up: their items are dropped before they run."""
    alone: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        for _ in range(3):  # warm the heavy path, so memory is measured after it first grows
            started = time.perf_counter()
            await client.post("/qa", json=traffic.heavy_qa().body)
            alone.append(time.perf_counter() - started)
        before_metrics = (await client.get("/metrics")).text
    before = sample_process(server.process.pid)
    # Half of what one such request takes alone: it is tokenized and queued by then, and some of its
    # windows still wait for their batch, however fast the model (and whatever admission lets in).
    abandon_after = max(0.2, min(1.0, sorted(alone)[1] / 2))

    async def abandon() -> None:
        async with session_for(server.url, timeout_s=abandon_after) as session:
            request = traffic.heavy_qa()
            try:
                async with session.post(request.path, json=request.body) as response:
                    await response.read()
            except (TimeoutError, aiohttp.ClientError):
                pass

    wave = 100
    for start in range(0, profile.storm_clients, wave):
        await asyncio.gather(*(abandon() for _ in range(min(wave, profile.storm_clients - start))))
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            metrics = (await client.get("/metrics")).text
            if (
                metric_sum(metrics, "bertserve_queue_items") == 0
                and metric_sum(metrics, "bertserve_inflight_requests") <= 1
            ):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        after = sample_process(server.process.pid)
        started = time.perf_counter()
        probe = await client.post("/classify", json={"inputs": "still fast after the storm"})
        probe_ms = (time.perf_counter() - started) * 1000
        ready = (await client.get("/health/ready")).status_code
        metrics = (await client.get("/metrics")).text

    def delta(name: str, contains: str = "") -> float:
        return metric_sum(metrics, name, contains) - metric_sum(before_metrics, name, contains)

    dropped = delta("bertserve_rejected_total", 'reason="client_gone"')
    ran = delta("bertserve_batch_size_sum")
    growth = after.rss_mb / before.rss_mb - 1
    row = Row(
        "disconnect_storm",
        {
            "clients": profile.storm_clients,
            "abandon_after_s": abandon_after,
            "items_dropped_before_running": dropped,
            "items_run": ran,
            "refused_429": delta("bertserve_requests_total", 'code="429"'),
            "rss_mb_before": before.rss_mb,
            "rss_mb_after": after.rss_mb,
            "rss_growth_pct": growth * 100,
            "probe_ms_after": probe_ms,
        },
        {
            "abandoned items dropped before they run": dropped > 0,
            "server healthy after (ready, answers)": ready == 200 and probe.status_code == 200,
        },
    )
    (row.checks if profile.enforce_trends else row.notes)["no memory growth (< 5%)"] = growth < 0.05
    return row
