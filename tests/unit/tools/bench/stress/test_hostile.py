"""The hostile scenario's parts: requests written by hand, answers read back, and how a case's
answers, probes and the traffic beside it are judged, on local sockets and hand-made outcomes."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tools.bench.stress.hostile import (
    CaseResult,
    Clock,
    LiveProbe,
    attribute,
    judge,
    lag_counts,
    not_answered_by_case,
    refused_honestly,
    worst_lag_bound_s,
)
from tools.bench.stress.load import Outcome
from tools.bench.stress.rawhttp import CLOSED, LITERAL, NO_ANSWER, Answer, Raw, Sending, exchange, json_body

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def test_a_lone_surrogate_goes_out_as_its_json_escape() -> None:
    assert json_body({"inputs": "a\ud800b"}) == b'{"inputs":"a\\ud800b"}'


def test_the_literal_placeholder_is_replaced_by_the_bytes_given() -> None:
    assert json_body({"top_k": LITERAL}, b"1" + b"0" * 50) == b'{"top_k":1' + b"0" * 50 + b"}"


def test_the_head_declares_what_it_is_told() -> None:
    head = Raw("/classify", b"abc", key="k", declared=1000).head().decode()
    assert "Content-Length: 1000\r\n" in head
    assert "Authorization: Bearer k\r\n" in head
    assert head.endswith("\r\n\r\n")
    assert "Authorization" not in Raw("/classify", b"abc").head().decode()


def test_a_chunked_body_is_framed_and_terminated() -> None:
    raw = Raw("/classify", b"x" * 70_000, chunked=True)
    assert "Transfer-Encoding: chunked" in raw.head().decode()
    assert raw.wire_body() == b"10000\r\n" + b"x" * 65536 + b"\r\n1170\r\n" + b"x" * 4464 + b"\r\n0\r\n\r\n"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_an_early_refusal_is_read_although_the_body_was_not(serve) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps({"error": {"type": "payload_too_large", "message": "too big"}}).encode()
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    port = await serve(refuse)
    answer = await exchange("127.0.0.1", port, Raw("/classify", b"", declared=10**12), wait_s=5)
    assert (answer.status, answer.detail) == (413, "payload_too_large")


async def test_a_stalled_upload_the_server_never_answers_is_given_up_on(serve) -> None:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client goes

    port = await serve(hold)
    raw = Raw("/classify", b'{"inputs":"hello"}')
    answer = await exchange("127.0.0.1", port, raw, wait_s=0.2, sending=Sending(send_bytes=1))
    assert answer.status == NO_ANSWER


async def test_a_close_without_an_answer_is_closed(serve) -> None:
    received: list[bytes] = []

    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())  # the half-close ends the read
        writer.close()

    port = await serve(close)
    raw = Raw("/classify", b'{"inputs":', declared=1000)
    answer = await exchange("127.0.0.1", port, raw, wait_s=5, sending=Sending(then="half_close"))
    assert answer.status == CLOSED
    assert received[0].endswith(b'\r\n\r\n{"inputs":')


async def test_a_dribbled_body_arrives_whole(serve) -> None:
    received: list[bytes] = []

    async def echo_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        received.append(await reader.readexactly(200))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    port = await serve(echo_length)
    sending = Sending(dribble_s=0.05, pieces=7)
    answer = await exchange("127.0.0.1", port, Raw("/classify", b"y" * 200), wait_s=5, sending=sending)
    assert answer.status == 200
    assert received == [b"y" * 200]


def test_judge_names_what_came_back_and_what_was_expected() -> None:
    allowed = frozenset({413, 422})
    assert judge([Answer(422, 0.01), Answer(413, 1.9)], allowed, "with the key") == []
    [wrong] = judge([Answer(500, 0.03, "internal_error")], allowed, "with the key")
    assert wrong == "with the key: 500 (internal_error) after 30 ms; expected 413/422 within 2 s"
    [late] = judge([Answer(422, 3.5)], allowed, "with the key")
    assert "422 after 3500 ms" in late
    [hung] = judge([Answer(NO_ANSWER, 10.0)], allowed, "without the key")
    assert hung.startswith("without the key: no answer gave up after 10000 ms")
    assert judge([Answer(CLOSED, 0.001)], frozenset({CLOSED, 400}), "x") == []


def case(name: str, start: float, end: float, *, overloads: bool = False) -> CaseResult:
    return CaseResult(name, "", start=start, end=end, overloads=overloads)


def test_the_traffic_beside_is_charged_to_the_case_it_was_sent_during() -> None:
    cases = [case("stalled", 1.0, 5.0), case("storm", 6.0, 8.0, overloads=True)]
    during = [
        Outcome(0.5, 0.05, 200),
        Outcome(2.0, 0.001, 503, error_type="overloaded", retry_after=True),
        Outcome(5.5, 30.0, 0, lost="timeout"),
        Outcome(7.0, 0.001, 429, error_type="queue_full", retry_after=True),
    ]
    assert attribute(during[1], cases) is cases[0]
    assert attribute(during[2], cases) is None
    assert not_answered_by_case(during, cases) == {
        "stalled": {"503 overloaded": 1},
        "between cases": {"lost: timeout": 1},
        "storm": {"429 queue_full": 1},
    }
    # load shedding under real load is honest; the same refusal beside a stalled upload is not
    assert [refused_honestly(o, cases) for o in during[1:]] == [False, False, True]


def test_a_probe_counts_for_every_case_it_was_waiting_during() -> None:
    probe = LiveProbe("http://127.0.0.1:1", Clock(), samples=[(0.0, 0.002), (1.0, 3.0), (4.1, 0.004)])
    assert probe.worst_ms(0.0, 0.5) == 2.0
    assert probe.worst_ms(2.0, 3.0) == 3000.0  # sent before the case, still waiting in it
    assert probe.worst_ms(4.05, 5.0) == 4.0


def test_the_server_loop_lag_of_a_case_is_the_bound_of_its_slowest_wake_up() -> None:
    def scrape(counts: list[int]) -> str:
        bounds = ["0.1", "0.25", "0.5", "+Inf"]
        return "\n".join(
            f'bertserve_event_loop_lag_seconds_bucket{{le="{b}"}} {c}'
            for b, c in zip(bounds, counts, strict=True)
        )

    before = lag_counts(scrape([10, 10, 10, 10]))
    assert worst_lag_bound_s(before, lag_counts(scrape([15, 15, 15, 15]))) == 0.1
    assert (
        worst_lag_bound_s(before, lag_counts(scrape([15, 15, 16, 16]))) == 0.5
    )  # one wake-up 0.25-0.5 s late
    assert worst_lag_bound_s(before, lag_counts(scrape([15, 15, 16, 17]))) == math.inf
    assert math.isnan(worst_lag_bound_s(before, {}))  # a server without the metric
