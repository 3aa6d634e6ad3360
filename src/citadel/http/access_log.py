"""The access log: one line per request on logger ``citadel.http.access``, at INFO.

Its fields, when known: ``method``, ``route`` (the route's template, not the requested path), ``status``,
``duration_s``, ``correlation_id``, ``actor`` (the subject), ``message_type`` (the stable name of a command or
query), and ``problem`` (the problem type of an error reply). The line is built only when the logger is enabled
for INFO. While a request is served its fields are the current request's (``request_fields``), so the line of a
failure (``citadel.http.problems``: an unexpected error, at ERROR with its stack trace) carries them too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.types import Receive, Scope

from citadel.logs import FieldsRecord

if TYPE_CHECKING:
    from citadel.context import DispatchContext
    from citadel.http.types import Endpoint, Reply

__all__ = ["access_log", "log_request", "log_requests", "noted", "request_fields"]

access_log = logging.getLogger("citadel.http.access")

_PROBLEM = b"application/problem+json"  # raw.PROBLEM; not imported: problems imports this module


class _ProblemType(msgspec.Struct):
    type: str = ""


_problem_type = msgspec.json.Decoder(_ProblemType).decode


class _Request:
    """What is known of the request being served: its route, and once dispatched, its context."""

    __slots__ = ("context", "message_type", "method", "route")

    def __init__(self, route: str, method: str, message_type: str | None) -> None:
        self.route = route
        self.method = method
        self.message_type = message_type
        self.context: DispatchContext | None = None

    def fields(self) -> dict[str, Any]:
        found: dict[str, Any] = {"method": self.method, "route": self.route}
        if self.context is not None:
            found["correlation_id"] = self.context.correlation_id
            found["actor"] = self.context.actor.subject
        if self.message_type is not None:
            found["message_type"] = self.message_type
        return found


_current: ContextVar[_Request | None] = ContextVar("citadel_request", default=None)


def noted(context: DispatchContext) -> DispatchContext:
    """Note ``context`` (its actor and correlation id) as the current request's, for its log lines; return it."""
    request = _current.get()
    if request is not None:
        request.context = context
    return context


def request_fields() -> dict[str, Any]:
    """Return the log fields of the request being served; empty outside one."""
    request = _current.get()
    return {} if request is None else request.fields()


def log_request(method: str, route: str, status: int, extra: dict[str, Any] | None = None) -> None:
    """Log one request's line (if the access log is enabled for INFO), with ``extra`` fields."""
    if access_log.isEnabledFor(logging.INFO):
        fields = {"method": method, "route": route, "status": status, **(extra or {})}
        _emit(fields)


def _emit(fields: dict[str, Any]) -> None:
    message = f"{fields['method']} {fields['route']} {fields['status']}"
    access_log.handle(FieldsRecord(access_log.name, logging.INFO, message, fields))


def log_requests(endpoint: Endpoint, route: str, method: str, message_type: str | None, *, lines: bool) -> Endpoint:
    """Return ``endpoint``, serving each request as the current one (see ``request_fields``) and, with
    ``lines``, logging its line (a failure that escapes the endpoint as status 500, as the server answers it)."""
    clock = time.perf_counter

    async def logged(scope: Scope, receive: Receive) -> Reply:
        started = clock()
        request = _Request(route, method, message_type)
        token = _current.set(request)
        try:
            reply = await endpoint(scope, receive)
        except Exception:
            if lines and access_log.isEnabledFor(logging.INFO):
                _line(request, 500, None, clock() - started)
            raise
        finally:
            _current.reset(token)
        if lines and access_log.isEnabledFor(logging.INFO):
            _line(request, reply[0], reply, clock() - started)
        return reply

    return logged


def _line(request: _Request, status: int, reply: Reply | None, seconds: float) -> None:
    fields = request.fields()
    fields["status"] = status
    fields["duration_s"] = round(seconds, 6)
    if reply is not None and reply[2] == _PROBLEM:
        with contextlib.suppress(msgspec.DecodeError):
            fields["problem"] = _problem_type(reply[1]).type
    _emit(fields)
