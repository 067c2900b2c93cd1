"""The server's log lines: text (the default) or one JSON object per line, each carrying the request id,
the trace and span ids and the model of the request it was written for (context variables that the
middleware and the routes set)."""

from __future__ import annotations

import contextvars
import copy
import enum
import json
import logging
import time
from typing import Any, NamedTuple


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


class TraceIds(NamedTuple):
    """A request's trace id and span id, as hex, for its log lines."""

    trace_id: str
    span_id: str


request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
trace_ids_var: contextvars.ContextVar[TraceIds | None] = contextvars.ContextVar("trace_ids", default=None)
model_var: contextvars.ContextVar[str] = contextvars.ContextVar("model", default="")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
ACCESS_ARGS = ("client", "method", "path", "http_version", "status")
"""What uvicorn's access log line is made of (its record's args, in order)."""


class RequestIdFilter(logging.Filter):
    """Adds the current request's `request_id` ('-' outside one), `trace_ids` and `model` to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "trace_ids"):
            record.trace_ids = trace_ids_var.get()
        if not hasattr(record, "model"):
            record.model = model_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message and request_id (null
    outside a request), then trace_id, span_id and model when known, the exception's text if any, and
    for uvicorn's access log its parts (client, method, path, http_version, status)."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", "-")
        entry: dict[str, Any] = {
            "time": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if request_id == "-" else request_id,
        }
        trace_ids: TraceIds | None = getattr(record, "trace_ids", None)
        if trace_ids is not None:
            entry["trace_id"], entry["span_id"] = trace_ids
        if model := getattr(record, "model", ""):
            entry["model"] = model
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            entry.update(zip(ACCESS_ARGS, record.args, strict=True))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def iso_utc(created: float) -> str:
    """A record's time as ISO 8601 in UTC, to the millisecond: 2026-01-31T12:00:00.123Z."""
    seconds = int(created)
    milliseconds = int((created - seconds) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{milliseconds:03d}Z"


def configure_logging(level: str, log_format: LogFormat = LogFormat.text) -> None:
    """Root logging with the request id in every line, for the server process; in JSON, Python's
    warnings become records too, so that every line of the output is JSON."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format is LogFormat.json else logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(log_format is LogFormat.json)


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any] | None:
    """uvicorn's logging setup: in text its own, its access lines with the request id; in JSON none,
    so that its records (the access log included) reach the root handler like every other line."""
    if log_format is LogFormat.json:
        return None
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"request": {"()": RequestIdFilter}}
    config["handlers"]["access"]["filters"] = ["request"]
    config["formatters"]["access"]["fmt"] = ACCESS_TEXT_FORMAT
    return config


ACCESS_TEXT_FORMAT = '%(levelprefix)s [%(request_id)s] %(client_addr)s - "%(request_line)s" %(status_code)s'
