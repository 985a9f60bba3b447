"""Logging: plain text (the default) or one JSON object per line (OUIPOST_LOG_FORMAT=json).

A JSON line holds `timestamp` (ISO 8601 UTC with milliseconds and `Z`), `level`, `logger`,
`message`, and when they are known: `request_id` (the request being answered: set by
`request_id_middleware`, or given by the access logger), `job_id` and `job_kind` (the job a worker
is running), and `exception` (the formatted traceback). The context comes from context variables,
so a line logged anywhere below a handler or a job carries it without being passed along.

Secrets are kept out where they enter: the access logger drops query strings that carry codes,
states, tokens or signatures, and no code logs keys, passwords or tokens.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

# The request or job this task works for; task-local (each request and each job runs in its own task
# or sets and resets these around its work).
CURRENT_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
CURRENT_JOB: contextvars.ContextVar[tuple[int, str] | None] = contextvars.ContextVar("job", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (tracebacks are inside the object, newlines escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or CURRENT_REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        job = CURRENT_JOB.get()
        if job is not None:
            entry["job_id"], entry["job_kind"] = job
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, log_format: str) -> None:
    """Send every logger's records to stderr at `level`, as text or JSON lines (`log_format`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Called again (commands run in one process, tests): replace our handler, keep others' (pytest's).
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


_HANDLER_NAME = "ouipost.stderr"
