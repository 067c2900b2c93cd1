"""Uploads and departed clients hold no capacity, and the key is checked before a body is read:
against a real server, with raw sockets for the requests a client library will not send."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import RunningServer, run_server

KEY = "s3cret"
AUTH = {"authorization": f"Bearer {KEY}"}
INFLIGHT_CAP = 32
BODY_READ_TIMEOUT_S = 3.0
MAX_QUEUE_WAIT_S = 0.5
READ_TIMEOUT_S = 30.0  # a safety net: a test that waits this long has failed


@pytest.fixture(scope="module")
def server(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A fixed in-flight cap of 32, a 3 s body deadline, 0.5 s "behind" limit; tiny-qa holds every
    request in its queue for 20 s (waiting for companions), so QA requests stay in flight."""
    env = {
        "BERTSERVE_MODELS": '["tiny-classify", "tiny-qa"]',
        "BERTSERVE_PRECISION": "fp32",
        "BERTSERVE_API_KEY": KEY,
        "BERTSERVE_PROTECT_METADATA": "true",
        "BERTSERVE_MAX_INFLIGHT_REQUESTS": str(INFLIGHT_CAP),
        "BERTSERVE_INFLIGHT_HORIZON_S": "0",
        "BERTSERVE_BODY_READ_TIMEOUT_S": str(BODY_READ_TIMEOUT_S),
        "BERTSERVE_BATCH__MAX_QUEUE_WAIT_S": str(MAX_QUEUE_WAIT_S),
        "BERTSERVE_MODEL_BATCH": json.dumps(
            {
                "tiny-qa": {
                    "max_delay_ms": 20_000,
                    "always_wait": True,
                    "max_batch_size": 256,
                    "max_batch_tokens": 32_768,  # more than 32 requests of two windows
                    "max_queue_wait_s": 30,
                }
            }
        ),
    }
    with run_server(tiny_models, tmp_path_factory.mktemp("uploads"), env=env) as running:
        yield running


def connect(server: RunningServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=READ_TIMEOUT_S)
    return sock


def head(path: str, length: int, *, key: str | None = KEY) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: test",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def request(path: str, body: dict[str, object], *, key: str | None = KEY) -> bytes:
    encoded = json.dumps(body).encode()
    return head(path, len(encoded), key=key) + encoded


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed before an answer: {data!r}"
        data += piece
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    while len(body) < int(headers["content-length"]):
        piece = sock.recv(65536)
        assert piece, "connection closed inside the body"
        body += piece
    return int(status_line.split()[1]), headers, body


@contextlib.contextmanager
def stalled_uploads(
    server: RunningServer, count: int, path: str = "/classify"
) -> Iterator[list[socket.socket]]:
    """`count` connections that send their headers and one byte of a 100-byte body, then nothing."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = connect(server)
            sock.sendall(head(path, 100) + b"{")
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def settled(server: RunningServer) -> None:
    """Returns once the server has read what was sent before: it answers in the order it reads."""
    assert httpx.get(f"{server.url}/health/live").status_code == 200


def test_stalled_uploads_do_not_refuse_a_normal_request(server: RunningServer) -> None:
    with stalled_uploads(server, 140):  # more than the 32 in-flight places, fewer than 256 upload places
        settled(server)
        response = httpx.post(f"{server.url}/classify", json={"inputs": "still served"}, headers=AUTH)
        assert response.status_code == 200, response.text


def test_a_stalled_upload_gets_408_and_its_connection_is_closed(server: RunningServer) -> None:
    with stalled_uploads(server, 1) as (sock,):
        status, headers, body = read_response(sock)
        assert status == 408 and json.loads(body)["error"]["type"] == "request_timeout"
        assert headers["connection"] == "close"
        assert sock.recv(1) == b""  # closed by the server


def test_a_slow_honest_upload_is_served_not_refused_as_behind(server: RunningServer) -> None:
    body = json.dumps({"inputs": "a body that takes its time"}).encode()
    pieces = [body[:8], body[8:16], body[16:24], body[24:]]
    with contextlib.closing(connect(server)) as sock:
        sock.sendall(head("/classify", len(body)))
        for piece in pieces:  # over more than MAX_QUEUE_WAIT_S, well within the body deadline
            time.sleep(MAX_QUEUE_WAIT_S / 2)
            sock.sendall(piece)
        status, _, answer = read_response(sock)
    assert status == 200, answer


@pytest.mark.parametrize("path", ["/classify", "/v2/models/tiny-classify/infer"])
def test_without_the_key_a_stalled_body_gets_401_at_once(server: RunningServer, path: str) -> None:
    with contextlib.closing(connect(server)) as sock:
        sock.sendall(head(path, 100, key=None) + b"{")  # the other 99 bytes never come
        status, headers, body = read_response(sock)
    assert status == 401, body  # not 408: the body was never waited for
    assert headers["www-authenticate"] == "Bearer"
    assert "API key" in json.dumps(json.loads(body))


def test_v2_metadata_needs_the_key_and_the_v2_health_routes_do_not(server: RunningServer) -> None:
    url = f"{server.url}/v2"
    for path in ("", "/models/tiny-classify", "/models/tiny-classify/versions/1"):
        refused = httpx.get(f"{url}{path}")
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{url}{path}", headers=AUTH).status_code == 200, path
    for path in (
        "/health/live",
        "/health/ready",
        "/models/tiny-classify/ready",
        "/models/tiny-classify/versions/1/ready",
    ):
        assert httpx.get(f"{url}{path}").status_code == 200, path


def metric(server: RunningServer, line_start: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    return sum(values)


def wait_for(condition: str, check: object, timeout_s: float = READ_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not {condition} after {timeout_s} s"
        time.sleep(0.05)


def test_departed_clients_free_their_places_at_once_and_their_items_are_dropped(
    server: RunningServer,
) -> None:
    context = " ".join(f"Sentence {i} is about Paris and Berlin." for i in range(70))  # two windows
    long_qa = request("/qa", {"inputs": {"question": "Where?", "context": context}})
    tokenized = metric(server, 'bertserve_tokenize_seconds_count{model="tiny-qa"}')
    dropped = metric(server, 'bertserve_rejected_total{model="tiny-qa",reason="client_gone"}')
    abandoned = [connect(server) for _ in range(INFLIGHT_CAP)]
    with contextlib.closing(connect(server)) as next_client:
        next_client.sendall(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")  # open, as in a pool
        assert read_response(next_client)[0] == 200
        for sock in abandoned:
            sock.sendall(long_qa)
        wait_for(
            "all QA requests queued",
            lambda: (
                metric(server, 'bertserve_tokenize_seconds_count{model="tiny-qa"}')
                == tokenized + INFLIGHT_CAP
            ),
        )
        queued = metric(server, 'bertserve_queue_items{model="tiny-qa"}')
        assert metric(server, "bertserve_inflight_requests") == INFLIGHT_CAP
        # Stopped, the server reads the closes and the next request in one go, as a busy server does.
        server.process.send_signal(signal.SIGSTOP)
        try:
            for sock in abandoned:
                sock.close()
            next_client.sendall(request("/classify", {"inputs": "right after the storm"}))
        finally:
            server.process.send_signal(signal.SIGCONT)
        status, _, body = read_response(next_client)
    assert status == 200, body
    wait_for("the queue emptied", lambda: metric(server, 'bertserve_queue_items{model="tiny-qa"}') == 0)
    assert (
        metric(server, 'bertserve_rejected_total{model="tiny-qa",reason="client_gone"}') - dropped == queued
    )
