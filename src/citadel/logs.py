"""Log lines as operators read them: one line per record, as ``key=value`` text or as a JSON object.

Every line has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``; a record logged with
``extra={"citadel": {...}}`` adds those fields (the HTTP access log's route, status, correlation id and so on,
see ``citadel.http.access_log``), and a record with an exception adds ``exc``, its stack trace, escaped so that
the line stays one line. ``configure_logs`` installs the chosen format on the root logger, to standard error.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Literal, TextIO

import msgspec

__all__ = ["FIELDS", "LOG_FORMATS", "FieldsRecord", "JSONFormatter", "TextFormatter", "configure_logs", "fields_of"]

LOG_FORMATS = ("text", "json")
FIELDS = "citadel"
"""The record attribute (set with ``extra={"citadel": {...}}``) holding a line's own fields."""

_encode = msgspec.json.Encoder().encode


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """Return the fields ``record`` carries beyond the standard ones (empty when none)."""
    found = getattr(record, FIELDS, None)
    return found if isinstance(found, dict) else {}


class FieldsRecord(logging.LogRecord):
    """A record of ``fields`` with no caller, thread or process names: what a line per request needs, built
    without the stack walk and the lookups of a standard record (the names it lacks read as empty)."""

    def __init__(self, name: str, level: int, message: str, fields: dict[str, Any]) -> None:
        self.__dict__.update(_EMPTY)  # formatters read a record's names from its __dict__
        self.name = name
        self.levelno = level
        self.levelname = logging.getLevelName(level)
        self.msg = message
        self.created = time.time()
        self.msecs = (self.created - int(self.created)) * 1000
        setattr(self, FIELDS, fields)


_EMPTY: dict[str, Any] = dict.fromkeys(("pathname", "filename", "module", "funcName", "threadName", "processName"), "")
_EMPTY |= dict.fromkeys(("exc_info", "exc_text", "stack_info", "thread", "process", "taskName"), None)
_EMPTY |= {"args": (), "lineno": 0, "relativeCreated": 0.0}


_stamped = (-1, "")  # the last second formatted, reused by the lines of that second; one tuple, read at once


def _time(record: logging.LogRecord) -> str:
    global _stamped
    seconds = int(record.created)
    second, stamp = _stamped
    if seconds != second:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _stamped = (seconds, stamp)
    return f"{stamp}.{int((record.created - seconds) * 1000):03d}Z"


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info:
        if not record.exc_text:
            record.exc_text = formatter.formatException(record.exc_info)
        return record.exc_text
    return record.exc_text or None


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON object: ``time``, ``level``, ``logger``, ``message``, its fields, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(fields_of(record))
        trace = _exception(self, record)
        if trace:
            line["exc"] = trace
        return _encode(line).decode()


class TextFormatter(logging.Formatter):
    """Formats a record as one line of ``key=value`` pairs; a value with spaces, quotes, ``=`` or line breaks
    is quoted as a JSON string."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"time={_time(record)}",
            f"level={record.levelname}",
            f"logger={record.name}",
            f"message={_value(record.getMessage())}",
        ]
        parts += [f"{key}={_value(value)}" for key, value in fields_of(record).items()]
        trace = _exception(self, record)
        if trace:
            parts.append(f"exc={_value(trace)}")
        return " ".join(parts)


_PLAIN = re.compile(r'[^\s"=\\]+').fullmatch


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"  # no exponent: durations of microseconds read as 0.000093, not 9.3e-05
    text = value if isinstance(value, str) else str(value)
    return text if _PLAIN(text) else _encode(text).decode()


_installed: list[logging.Handler] = []


def configure_logs(
    *, level: str = "info", log_format: Literal["text", "json"] = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record of ``level`` and above to ``stream`` (standard error) in ``log_format``; replaces the
    handler an earlier call installed. Returns the handler.

    Raises:
        ValueError: ``log_format`` is not ``text`` or ``json``, or ``level`` is not a level's name.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: choose text or json")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for previous in _installed:
        root.removeHandler(previous)
    _installed[:] = [handler]
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
