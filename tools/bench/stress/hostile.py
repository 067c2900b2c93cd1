"""The hostile scenario: requests built to take the server down one at a time, against a server with
an API key set, while the usual traffic runs beside them and `/health/live` is polled every 100 ms.

Every case must get its 4xx (or a bounded answer) within CASE_LIMIT_S, with the key and without
it (401, unless the transport refused first); the live probe must stay under LIVE_LIMIT_MS;
resident memory must not grow by more than RSS_GROWTH_LIMIT_MB; the traffic beside must all be
answered 200 and keep the tail it had alone (the same requests, sent before the cases).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from tests.harness import RunningServer, run_server
from tools.bench.stress.hostile_cases import CASES, Case, Facts, read_facts
from tools.bench.stress.load import Outcome, send, session_for
from tools.bench.stress.probe import ProcessSample, Watcher, metric_values, sample_process
from tools.bench.stress.profiles import Profile
from tools.bench.stress.rawhttp import CLOSED, NO_ANSWER, Answer, Raw, Sending, exchange, json_body
from tools.bench.stress.report import Row
from tools.bench.stress.traffic import Request, Traffic

API_KEY = "stress-hostile-key"
CASE_LIMIT_S = 2.0
"""Every hostile request gets its 4xx or its answer this soon after its last byte."""
LIVE_EVERY_S, LIVE_LIMIT_MS = 0.1, 250.0
"""/health/live is polled this often and must answer this fast, whatever a case does."""
RSS_GROWTH_LIMIT_MB = 100.0
TAIL_FACTOR, TAIL_SLACK_MS = 1.5, 100.0
"""The traffic beside keeps its tail: within 1.5x its baseline's, or 100 ms more."""
BODY_DEADLINE_S = 5.0
"""The server's body-read deadline in this scenario (BERTSERVE_BODY_READ_TIMEOUT_S)."""
STALL_SLACK_S = 1.0
"""A stalled upload must get 408 or be closed within the body deadline and this much more."""
STALLED_UPLOADS, STALLED_WITHOUT_KEY = 140, 20
ABANDONING_CLIENTS, ABANDON_AFTER_S = 300, 1.0
SLOW_UPLOAD_S = 1.5
WAIT_S = 10.0
"""How long a case's answer is waited for: long enough to see how late a late one is."""
RECOVERY_WAIT_S = 60.0
"""After a case, how long the scenario waits for the live probe to be fast again before going on."""
DWELL_S = 0.3
"""Each case's window stays open this long after its answers: the probe sees the work it left behind."""
NORMAL_TIMEOUT_S = 30.0
SERVER_ENV = {"BERTSERVE_API_KEY": API_KEY, "BERTSERVE_BODY_READ_TIMEOUT_S": str(BODY_DEADLINE_S)}


@dataclass
class CaseResult:
    """One case: what its requests got, whether that was right, and when it ran (scenario seconds)."""

    name: str
    expectation: str
    summary: str = ""
    failures: list[str] = field(default_factory=list)
    worst_s: float = 0.0
    start: float = 0.0
    end: float = 0.0
    overloads: bool = False  # real load (clients that want work done): the traffic beside may be refused
    stuck_s: float = 0.0  # how long after the case the live probe stayed slow
    server_lag_s: float = float("nan")  # the server's event loop woke at most this late (a bucket bound)


@dataclass
class Clock:
    """Seconds since the scenario's origin (perf_counter), shared by every outcome and window."""

    origin: float = field(default_factory=time.perf_counter)

    def now(self) -> float:
        return time.perf_counter() - self.origin


@dataclass
class LiveProbe:
    """GET /health/live every LIVE_EVERY_S, one at a time, from a process of its own (liveprobe.py):
    (sent, seconds) per probe, on the scenario's clock."""

    url: str
    clock: Clock
    samples: list[tuple[float, float]] = field(default_factory=list)
    _process: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools.bench.stress.liveprobe",
            self.url,
            str(LIVE_EVERY_S),
            str(WAIT_S),
            stdout=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            sent, seconds = (float(value) for value in line.split())
            self.samples.append((sent - self.clock.origin, seconds))

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        if self._reader is not None:
            await self._reader

    def worst_ms(self, start: float, end: float) -> float:
        """The slowest probe that was waiting at any time in [start, end)."""
        overlapping = [seconds for sent, seconds in self.samples if sent < end and sent + seconds > start]
        return max(overlapping, default=0.0) * 1000


@dataclass
class LoopLag:
    """How late this process's own event loop wakes (the load generator's, not the server's): a
    client too busy to read its answers makes the server look slow. (woke, seconds late) per sleep."""

    clock: Clock
    interval: float = 0.05
    samples: list[tuple[float, float]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append((self.clock.now(), time.perf_counter() - asked - self.interval))

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def worst_ms(self, start: float, end: float) -> float:
        return max((late for woke, late in self.samples if start <= woke < end), default=0.0) * 1000


LAG_BUCKETS = "bertserve_event_loop_lag_seconds_bucket"


def lag_counts(metrics: str) -> dict[float, float]:
    """The server's event-loop lag histogram: bucket bound (s) -> wake-ups that late or less."""
    return {
        float(key.split('le="')[1].split('"')[0]): value
        for key, value in metric_values(metrics, LAG_BUCKETS).items()
        if 'le="' in key
    }


def worst_lag_bound_s(before: dict[float, float], after: dict[float, float]) -> float:
    """The smallest bucket bound every wake-up between two scrapes stayed within (nan: not measured)."""
    if not after:
        return float("nan")
    total = after[math.inf] - before.get(math.inf, 0.0)
    return min(
        (bound for bound in sorted(after) if after[bound] - before.get(bound, 0.0) >= total), default=0.0
    )


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as client:
        try:
            return (await client.get("/metrics")).text
        except httpx.HTTPError:
            return ""


async def steady(
    url: str,
    requests: list[Request],
    rate: float,
    clock: Clock,
    *,
    until: asyncio.Event | None = None,
    headers: dict[str, str] | None = None,
) -> list[Outcome]:
    """`requests` at `rate` per second, whatever the answers: once through, or cycled until `until`."""
    tasks: list[asyncio.Task[Outcome]] = []
    async with session_for(url, NORMAL_TIMEOUT_S, headers=headers) as session:
        began = time.perf_counter()
        for index in itertools.count():
            if (until is None and index == len(requests)) or (until is not None and until.is_set()):
                break
            delay = began + index / rate - time.perf_counter()
            if delay > 0:
                if until is None:
                    await asyncio.sleep(delay)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(until.wait(), delay)
                    if until.is_set():
                        break
            request = requests[index % len(requests)]
            tasks.append(asyncio.create_task(send(session, request, clock.origin)))
        return list(await asyncio.gather(*tasks))


def tail_ms(outcomes: list[Outcome], percentile: float) -> float:
    latencies = [o.latency for o in outcomes if o.status == 200]
    return float(np.percentile(latencies, percentile) * 1000) if latencies else float("nan")


def judge(answers: list[Answer], allowed: frozenset[int], label: str) -> list[str]:
    """Why the answers were wrong (empty when each got an allowed status within CASE_LIMIT_S)."""
    return [
        f"{label}: {answer.describe()}; expected {statuses(allowed)} within {CASE_LIMIT_S:g} s"
        for answer in answers
        if answer.status not in allowed or answer.seconds > CASE_LIMIT_S
    ]


def statuses(allowed: frozenset[int]) -> str:
    return "/".join("close" if code == CLOSED else str(code) for code in sorted(allowed))


def brief(answers: list[Answer]) -> str:
    """'413 payload_too_large x2 in 12 ms' for a list of answers (the slowest one's time)."""
    counted = Counter(
        ("close" if a.status == CLOSED else "none" if a.status == NO_ANSWER else str(a.status))
        + (f" {a.detail}" if a.detail else "")
        for a in answers
    )
    worst = max((a.seconds for a in answers), default=0.0) * 1000
    return ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(counted.items())) + f" in {worst:.0f} ms"


@dataclass
class Hostile:
    """The server under attack and what the scenario needs to send it requests."""

    server: RunningServer
    facts: Facts
    profile: Profile
    traffic: Traffic
    clock: Clock

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.server.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    async def send(self, raw: Raw, *, wait_s: float = WAIT_S, sending: Sending | None = None) -> Answer:
        host, port = self.address
        return await exchange(host, port, raw, wait_s=wait_s, sending=sending)

    def normal(self) -> Raw:
        """One ordinary request (a short classification) with the key."""
        return Raw("/classify", json_body({"inputs": "an ordinary sentence"}), key=API_KEY)

    async def simple_case(self, case: Case, raw: Raw, result: CaseResult) -> None:
        with_key, without = [], []
        for _ in range(self.profile.hostile_repeats):
            with_key.append(await self.send(raw.with_key(API_KEY), sending=case.sending))
            without.append(await self.send(raw.with_key(None), sending=case.sending))
        result.failures += judge(with_key, case.expected, "with the key")
        result.failures += judge(without, frozenset({401}) | case.before_key, "without the key")
        result.summary = f"{brief(with_key)}; without the key {brief(without)}"
        result.worst_s = max(a.seconds for a in with_key + without)

    async def stalled_uploads(self, result: CaseResult, count: int, key: str | None) -> None:
        """`count` uploads that send one byte of a 100-byte body and then nothing; meanwhile an
        ordinary request must be answered."""
        raw = Raw("/classify", json_body({"inputs": "x" * (100 - len(json_body({"inputs": ""})))}), key=key)
        deadline = BODY_DEADLINE_S + STALL_SLACK_S
        held = [
            asyncio.create_task(self.send(raw, wait_s=deadline + 2.0, sending=Sending(send_bytes=1)))
            for _ in range(count)
        ]
        await asyncio.sleep(1.0)
        beside = await self.send(self.normal())
        answers = list(await asyncio.gather(*held))
        late = [
            a
            for a in answers
            if not (
                (a.status in (408, CLOSED) and a.seconds <= deadline)
                or (key is None and a.status == 401 and a.seconds <= CASE_LIMIT_S)
            )
        ]
        counted = brief(answers)
        if late:
            result.failures.append(
                f"{len(late)} of {count} stalled uploads not refused in time, e.g. {late[0].describe()}; "
                f"expected 408 or a close within {deadline:g} s"
                + ("" if key is not None else f", or 401 within {CASE_LIMIT_S:g} s")
            )
        result.failures += judge([beside], frozenset({200}), "an ordinary request while they stall")
        result.summary = f"stalled: {counted}; an ordinary request beside: {brief([beside])}"
        result.worst_s = beside.seconds

    async def slow_honest_upload(self, result: CaseResult) -> None:
        raw = Raw("/classify", json_body({"inputs": [self.facts.prose(300)] * 4}), key=API_KEY)
        answer = await self.send(raw, sending=Sending(dribble_s=SLOW_UPLOAD_S, pieces=10))
        result.failures += judge([answer], frozenset({200}), f"body sent over {SLOW_UPLOAD_S:g} s")
        result.summary, result.worst_s = brief([answer]), answer.seconds

    async def abandoned_long_qa(self, raws: list[Raw], result: CaseResult) -> None:
        """Clients that send long QA requests and go away; the next ordinary request gets 200."""
        answers = await asyncio.gather(*(self.send(raw, wait_s=ABANDON_AFTER_S) for raw in raws))
        then = await self.send(self.normal())
        errors = [a for a in answers if a.status >= 500 and a.status != 503]
        if errors:
            result.failures.append(f"{len(errors)} of the abandoning clients got {errors[0].describe()}")
        result.failures += judge([then], frozenset({200}), "the next ordinary request")
        result.summary = f"abandoning clients: {brief(list(answers))}; then {brief([then])}"
        result.worst_s = then.seconds


async def until_live(url: str, limit_s: float) -> float:
    """Seconds until /health/live answers within LIVE_LIMIT_MS (limit_s if it never does)."""
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as client:
        while time.perf_counter() - began < limit_s:
            sent = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/health/live")).status_code == 200 and (
                    time.perf_counter() - sent
                ) * 1000 <= LIVE_LIMIT_MS:
                    return sent - began
            await asyncio.sleep(LIVE_EVERY_S)
    return limit_s


def every_case(hostile: Hostile) -> list[tuple[CaseResult, Callable[[CaseResult], Awaitable[None]]]]:
    """Each case with its expectation, in the order they run; every body is built here, before
    the cases start, so that the load generator is not busy building one while another runs."""
    cases: list[tuple[CaseResult, Callable[[CaseResult], Awaitable[None]]]] = []
    for case in CASES:
        expectation = (
            f"{statuses(case.expected)} within {CASE_LIMIT_S:g} s; without the key "
            f"{statuses(frozenset({401}) | case.before_key)}"
        )

        run = functools.partial(hostile.simple_case, case, case.build(hostile.facts))
        cases.append((CaseResult(case.name, expectation), run))
    deadline = f"{BODY_DEADLINE_S + STALL_SLACK_S:g} s"
    heavy = [
        Raw("/qa", json_body(hostile.traffic.heavy_qa().body), key=API_KEY) for _ in range(ABANDONING_CLIENTS)
    ]
    cases += [
        (
            CaseResult(
                f"stalled_uploads_{STALLED_UPLOADS}",
                f"408 or closed within {deadline}; an ordinary request beside gets 200",
            ),
            lambda r: hostile.stalled_uploads(r, STALLED_UPLOADS, API_KEY),
        ),
        (
            CaseResult(
                f"stalled_uploads_{STALLED_WITHOUT_KEY}_without_key",
                f"401 within {CASE_LIMIT_S:g} s, or 408 or closed within {deadline}",
            ),
            lambda r: hostile.stalled_uploads(r, STALLED_WITHOUT_KEY, None),
        ),
        (
            CaseResult("slow_honest_upload", f"200 within {CASE_LIMIT_S:g} s of the last byte"),
            hostile.slow_honest_upload,
        ),
        (
            CaseResult(
                f"abandoned_long_qa_{ABANDONING_CLIENTS}",
                f"no 5xx but 503; the next ordinary request 200 within {CASE_LIMIT_S:g} s",
                overloads=True,
            ),
            lambda r: hostile.abandoned_long_qa(heavy, r),
        ),
    ]
    return cases


def attribute(outcome: Outcome, results: list[CaseResult]) -> CaseResult | None:
    """The case whose window an ordinary request was sent in (None: between cases)."""
    return next((r for r in results if r.start <= outcome.sent < r.end), None)


def refused_honestly(outcome: Outcome, results: list[CaseResult]) -> bool:
    """A 429/503 with Retry-After while a case put real load on the server: load shedding, not a fault."""
    case = attribute(outcome, results)
    return case is not None and case.overloads and outcome.status in (429, 503) and outcome.retry_after


def not_answered_by_case(during: list[Outcome], results: list[CaseResult]) -> dict[str, dict[str, int]]:
    """The ordinary requests that did not get 200, by the case they were sent during."""
    found: dict[str, Counter[str]] = {}
    for outcome in during:
        if outcome.status == 200:
            continue
        case = attribute(outcome, results)
        label = (
            f"{outcome.status} {outcome.error_type}".strip() if outcome.status else f"lost: {outcome.lost}"
        )
        found.setdefault(case.name if case else "between cases", Counter())[label] += 1
    return {name: dict(sorted(counts.items())) for name, counts in found.items()}


async def warm(url: str, traffic: Traffic) -> list[dict[str, object]]:
    """The models' descriptions, once the long-window path has run (its memory is in the baseline)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        for _ in range(3):
            await client.post("/qa", json=traffic.heavy_qa().body)
        models: list[dict[str, object]] = (await client.get("/v1/models")).json()["models"]
    return models


async def run_cases(
    hostile: Hostile,
    cases: list[tuple[CaseResult, Callable[[CaseResult], Awaitable[None]]]],
    log: Callable[[str], None],
) -> list[CaseResult]:
    """Every case in turn, each in its own window; after each, until the live probe is fast again."""
    server, clock, results = hostile.server, hostile.clock, []
    for result, run in cases:
        if server.process.poll() is not None:
            result.failures.append(f"not run: the server had exited with {server.process.returncode}")
            results.append(result)
            continue
        lag_before = lag_counts(await scrape(server.url))
        result.start = clock.now()
        await run(result)
        await asyncio.sleep(DWELL_S)
        result.stuck_s = await until_live(server.url, RECOVERY_WAIT_S)
        if result.stuck_s >= 1.0:
            result.failures.append(f"the live probe stayed slow {result.stuck_s:.1f} s after the case")
        if server.process.poll() is not None:
            result.failures.append(f"the server exited with {server.process.returncode}")
        result.end = clock.now()
        result.server_lag_s = worst_lag_bound_s(lag_before, lag_counts(await scrape(server.url)))
        log(f"hostile {result.name}: {'ok' if not result.failures else 'FAILED'}: {result.summary}")
        results.append(result)
    return results


async def attack(
    server: RunningServer, models: Path, profile: Profile, capacity_per_s: float, log: Callable[[str], None]
) -> Row:
    traffic = Traffic(seed=23)
    facts = read_facts(models, await warm(server.url, traffic))
    rate = capacity_per_s * profile.hostile_load
    requests = [traffic.next() for _ in range(max(50, int(rate * profile.hostile_baseline_s)))]
    headers = {"Authorization": f"Bearer {API_KEY}"}
    clock = Clock()
    log(f"hostile: the ordinary traffic alone, {len(requests)} requests at {rate:.1f}/s")
    baseline = await steady(server.url, requests, rate, clock, headers=headers)
    pid = server.process.pid
    watcher, live, lag = Watcher(server.url, pid, interval=0.25), LiveProbe(server.url, clock), LoopLag(clock)
    watcher.start()
    lag.start()
    await live.start()
    before = sample_process(pid)
    target = Hostile(server, facts, profile, traffic, clock)
    cases = every_case(target)
    stop = asyncio.Event()
    beside = asyncio.create_task(steady(server.url, requests, rate, clock, until=stop, headers=headers))
    results = await run_cases(target, cases, log)
    stop.set()
    during = await beside
    await asyncio.sleep(2.0)  # what the cases left behind is freed, or not
    alive = server.process.poll() is None
    after = sample_process(pid) if alive else None
    await live.stop()
    await watcher.stop()
    await lag.stop()
    ready = await readiness(server.url) if alive else 0
    measured = Measured(baseline, during, rate, live, watcher, before, after, ready, lag)
    return report(profile, results, measured, server)


async def readiness(url: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as client:
        try:
            return (await client.get("/health/ready")).status_code
        except httpx.HTTPError:
            return 0


@dataclass(frozen=True)
class Measured:
    """What the scenario measured around the cases."""

    baseline: list[Outcome]  # the ordinary traffic alone
    during: list[Outcome]  # the same requests, cycled beside the cases
    rate: float
    live: LiveProbe
    watcher: Watcher
    before: ProcessSample
    after: ProcessSample | None  # None: the server had exited
    ready: int  # /health/ready's status after the cases
    client_lag: LoopLag  # the load generator's own event-loop lag while the cases ran


def report(profile: Profile, results: list[CaseResult], measured: Measured, server: RunningServer) -> Row:
    baseline, during, live, before, after = (
        measured.baseline,
        measured.during,
        measured.live,
        measured.before,
        measured.after,
    )
    q = profile.hostile_percentile
    compared = [o for o in during if not (attribute(o, results) or CaseResult("", "")).overloads]
    base_tail, during_tail = tail_ms(baseline, q), tail_ms(compared, q)
    live_by_case = {r.name: round(live.worst_ms(r.start, r.end), 1) for r in results}
    live_worst = max((seconds for _, seconds in live.samples), default=float("nan")) * 1000
    worst_case = max(results, key=lambda r: r.worst_s)
    rss = [s.rss_mb for s in measured.watcher.samples] + [before.rss_mb] + ([after.rss_mb] if after else [])
    peak = max(rss)
    growth = peak - before.rss_mb
    wrong = [o for o in during if o.status != 200 and not refused_honestly(o, results)]
    log_text = server.log()
    row = Row(
        "hostile",
        {
            "failed_cases": {r.name: "; ".join(r.failures) for r in results if r.failures},
            "cases": {r.name: r.summary for r in results},
            "worst_case_ms": worst_case.worst_s * 1000,
            "worst_case": worst_case.name,
            "live_probes": len(live.samples),
            "live_worst_ms": live_worst,
            "live_worst_case": max(live_by_case, key=lambda name: live_by_case[name]),
            "live_worst_ms_by_case": live_by_case,
            # where the time went: the server's own loop (its lag metric's bucket) or this client's
            "server_loop_lag_le_ms_by_case": {
                r.name: r.server_lag_s * 1000 for r in results if r.server_lag_s > LIVE_EVERY_S
            },
            "client_loop_lag_ms_by_case": {
                r.name: round(measured.client_lag.worst_ms(r.start, r.end), 1)
                for r in results
                if measured.client_lag.worst_ms(r.start, r.end) > LIVE_EVERY_S * 1000
            },
            "rss_mb_before": before.rss_mb,
            "rss_mb_after": after.rss_mb if after else float("nan"),
            "rss_mb_peak": peak,
            "normal_per_s": measured.rate,
            "normal_requests_baseline": len(baseline),
            "normal_requests_during": len(during),
            "normal_p99_ms_baseline": tail_ms(baseline, 99),
            "normal_p99_ms_during": tail_ms(compared, 99),
            f"normal_p{q:g}_ms_baseline": base_tail,
            f"normal_p{q:g}_ms_during": during_tail,
            "normal_not_200_by_case": not_answered_by_case(during, results),
            "client_loop_lag_worst_ms": measured.client_lag.worst_ms(0.0, math.inf),
            "server_tracebacks": log_text.count("Traceback"),
            "server_log": str(server.log_path),
        },
        {f"{r.name}: {r.expectation}": not r.failures for r in results},
    )
    row.checks |= {
        f"live probe always within {LIVE_LIMIT_MS:g} ms": live_worst <= LIVE_LIMIT_MS,
        f"resident memory grew < {RSS_GROWTH_LIMIT_MB:g} MB (peak over before)": growth < RSS_GROWTH_LIMIT_MB,
        "ordinary traffic beside: all 200, none lost (429/503 only under real load)": not wrong,
        f"ordinary traffic beside: p{q:g} within {TAIL_FACTOR:g}x or +{TAIL_SLACK_MS:g} ms of alone": (
            during_tail <= max(base_tail * TAIL_FACTOR, base_tail + TAIL_SLACK_MS)
        ),
        "server alive and ready after": after is not None and measured.ready == 200,
    }
    return row


async def hostile(
    models: Path,
    work: Path,
    env: dict[str, str],
    profile: Profile,
    *,
    capacity_per_s: float,
    log: Callable[[str], None],
) -> Row:
    """The scenario on a server of its own (the API key set, the body deadline short)."""
    with run_server(models, work, env={**env, **SERVER_ENV}, timeout=300) as server:
        return await attack(server, models, profile, capacity_per_s, log)
