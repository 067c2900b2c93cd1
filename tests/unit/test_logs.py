"""Log lines on hand-made records: the JSON formatter's keys, the request context it reads, and uvicorn's
logging setup in each format."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from app.logs import (
    JsonFormatter,
    LogFormat,
    RequestIdFilter,
    TraceIds,
    iso_utc,
    model_var,
    request_id_var,
    trace_ids_var,
    uvicorn_log_config,
)

IDS = TraceIds("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


def record(
    message: str = "hello %s",
    args: Any = ("world",),
    *,
    name: str = "bertserve.service",
    level: int = logging.INFO,
    exc_info: Any = None,
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, exc_info)


def formatted(entry: logging.LogRecord) -> dict[str, Any]:
    """The record as a filtered handler writes it in JSON: one line, one object."""
    RequestIdFilter().filter(entry)
    line = JsonFormatter().format(entry)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def in_request(request_id: str, ids: TraceIds | None, model: str, entry: logging.LogRecord) -> dict[str, Any]:
    """`formatted(entry)` as it runs inside a request whose context the middleware and route set."""

    def run() -> dict[str, Any]:
        request_id_var.set(request_id)
        trace_ids_var.set(ids)
        model_var.set(model)
        return formatted(entry)

    return contextvars.copy_context().run(run)


def test_outside_a_request_a_line_has_the_base_keys_and_a_null_request_id() -> None:
    entry = record()
    entry.created = 1767225600.25  # 2026-01-01T00:00:00.250Z
    assert formatted(entry) == {
        "time": "2026-01-01T00:00:00.250Z",
        "level": "INFO",
        "logger": "bertserve.service",
        "message": "hello world",
        "request_id": None,
    }


def test_inside_a_request_a_line_carries_its_ids_and_model() -> None:
    line = in_request("req-1", IDS, "sst2", record(level=logging.WARNING))
    assert line["request_id"] == "req-1"
    assert (line["trace_id"], line["span_id"]) == IDS
    assert line["model"] == "sst2"
    assert line["level"] == "WARNING"
    assert "trace_id" not in in_request("req-2", None, "", record())  # no trace, no model: no keys


def test_an_exception_and_non_ascii_text_stay_on_one_line() -> None:
    try:
        raise ValueError("bad\ninput")
    except ValueError:
        entry = record("failed on «%s»", ("héllo",), level=logging.ERROR, exc_info=sys.exc_info())
    line = formatted(entry)
    assert line["message"] == "failed on «héllo»"
    assert "Traceback" in line["exception"] and "ValueError: bad\ninput" in line["exception"]


def test_the_access_line_gets_its_parts_as_keys() -> None:
    args = ("127.0.0.1:5000", "POST", "/classify", "1.1", 200)
    entry = record('%s - "%s %s HTTP/%s" %d', args, name="uvicorn.access")
    line = in_request("req-9", IDS, "sst2", entry)
    assert line["message"] == '127.0.0.1:5000 - "POST /classify HTTP/1.1" 200'
    assert line["request_id"] == "req-9" and line["trace_id"] == IDS.trace_id
    assert (line["client"], line["method"], line["path"], line["status"]) == (
        "127.0.0.1:5000",
        "POST",
        "/classify",
        200,
    )


@pytest.mark.parametrize("created", [0.0, 1767225600.999, 1767225600.0005, 4102444799.5])
def test_times_are_iso_8601_utc(created: float) -> None:
    text = iso_utc(created)
    assert text.endswith("Z") and len(text) == len("2026-01-01T00:00:00.000Z")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.tzinfo == UTC
    assert abs(parsed.timestamp() - created) < 0.001


def test_uvicorn_writes_through_the_root_handler_in_json_and_its_own_in_text() -> None:
    assert uvicorn_log_config(LogFormat.json) is None
    text = uvicorn_log_config(LogFormat.text)
    assert text is not None
    assert "%(request_id)s" in text["formatters"]["access"]["fmt"]
    assert text["handlers"]["access"]["filters"] == ["request"]
    assert text["filters"]["request"]["()"] is RequestIdFilter
