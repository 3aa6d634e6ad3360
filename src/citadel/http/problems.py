"""RFC 9457 problem details: every error the HTTP layer returns, and which status each error class gets.

Bad input is never a 500 and never shows a stack trace: malformed JSON is 400, a body or parameters that do
not match the message are 422 (with ``errors`` naming each field), an unknown route or entity is 404, a
refused or conflicting command is 409. Only a failure of our own is a 500, with no detail: an unexpected
exception, or a wiring mistake (``ConfigurationError``; ``UnknownMessage``, since a route exists only for a
message the application handles, so one raised behind it is a handler using a type nothing handles). Either
is logged at ERROR with its stack trace and the request's fields (``access_log``), in the log only.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from starlette.responses import Response

from citadel.errors import (
    AccessDenied,
    CitadelError,
    ConcurrencyError,
    ConfigurationError,
    DomainError,
    IdempotencyConflict,
    InvalidCommand,
    InvalidMessage,
    NotCaughtUp,
    NotFound,
    PayloadForgotten,
    PositionNotWritten,
    RateLimited,
    ServiceUnavailable,
    StoreError,
    Unauthenticated,
    UnknownMessage,
)
from citadel.http.access_log import request_fields
from citadel.logs import FIELDS

__all__ = [
    "MEDIA_TYPE",
    "FieldError",
    "Problem",
    "field_problem",
    "from_exception",
    "problem",
    "problem_response",
    "validation_problem",
]

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("citadel.http")


class FieldError(msgspec.Struct, omit_defaults=True):
    """One invalid field: where (a JSON path such as ``$.items[0].quantity``) and what is wrong."""

    loc: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None


_encoder = msgspec.json.Encoder()


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    """Return a problem as an ``application/problem+json`` response."""
    return Response(_encoder.encode(problem), problem.status, headers=headers, media_type=MEDIA_TYPE)


def _type(slug: str) -> str:
    return f"urn:citadel:problem:{slug}"


_MISSING = re.compile(r"missing required field `([^`]+)`")


def validation_problem(exc: InvalidMessage | msgspec.ValidationError, what: str) -> Problem:
    """A 422 problem for a body or parameters that do not match their message type."""
    text = str(exc)
    message, _, at = text.partition(" - at `")
    loc = at.rstrip("`") if at else "$"
    missing = _MISSING.search(message)
    if missing:
        loc = f"{loc}.{missing.group(1)}"
    if isinstance(exc, InvalidMessage) and exc.path:
        loc = exc.path
    return field_problem(loc, message.removeprefix(f"invalid {what}: "), what)


def field_problem(loc: str, message: str, what: str) -> Problem:
    """A 422 problem for one invalid field of a request for ``what``: at ``loc`` (a JSON path, or a header's
    name), ``message`` says what is wrong."""
    return Problem(
        _type("validation-error"),
        "Invalid request",
        422,
        f"the request does not match {what}",
        [FieldError(loc, message)],
    )


_BY_CLASS: list[tuple[type[BaseException], int, str, str]] = [
    (NotFound, 404, "not-found", "Not found"),
    (PayloadForgotten, 410, "forgotten", "Gone"),
    (InvalidCommand, 422, "invalid-command", "Invalid command"),
    (DomainError, 409, "conflict", "Refused"),
    (ConcurrencyError, 409, "concurrency-conflict", "Concurrent modification"),
    (IdempotencyConflict, 422, "idempotency-key-reused", "Idempotency key reused"),
    (Unauthenticated, 401, "unauthenticated", "Unauthenticated"),
    (RateLimited, 429, "rate-limited", "Too many requests"),
    (AccessDenied, 403, "forbidden", "Forbidden"),
    (PositionNotWritten, 422, "position-not-written", "Position not written"),
    (InvalidMessage, 422, "validation-error", "Invalid request"),
    (StoreError, 503, "unavailable", "Service unavailable"),
    (NotCaughtUp, 503, "not-caught-up", "Not caught up"),
    (ServiceUnavailable, 503, "unavailable", "Service unavailable"),
]


def from_exception(exc: BaseException) -> tuple[Problem, dict[str, str]]:
    """Map an exception to its problem and extra headers; unknown exceptions become a bare 500."""
    for cls, status, slug, title in _BY_CLASS:
        if isinstance(exc, cls):
            headers = {"Retry-After": "1"} if status == 503 else {}
            if status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="citadel"'
            if isinstance(exc, RateLimited):
                headers.update(exc.headers)
            detail = "the store is unavailable, retry shortly" if isinstance(exc, StoreError) else str(exc)
            return Problem(_type(slug), title, status, detail), headers
    if isinstance(exc, (ConfigurationError, UnknownMessage)):
        log.error("the application is wired wrongly: %s", exc, exc_info=exc, extra=_failure())
    elif not isinstance(exc, CitadelError):
        log.exception("unexpected error while handling a request", exc_info=exc, extra=_failure())
    return Problem(_type("internal-error"), "Internal error", 500, "an unexpected error occurred; it was logged"), {}


def _failure() -> dict[str, Any]:
    """The fields of a failure's log line: the request's (see ``access_log``), answered with 500."""
    return {FIELDS: {**request_fields(), "status": 500}}


def problem(status: int, slug: str, title: str, detail: str) -> Problem:
    """A problem of any status, with the type ``urn:citadel:problem:<slug>``."""
    return Problem(_type(slug), title, status, detail)
