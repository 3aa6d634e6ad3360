"""What every console endpoint shares: reading a request's query string and form body with limits, refusing bad
input with a page that says why (a 4xx, never a 500), and answering HTML, JSON or a redirect.

Numbers from the client (positions, ids, limits) are read by ``number``: digits only, bounded before they are
converted, so that a long or negative value is a 400 and not an exception deeper down.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.types import Receive, Scope

from citadel.context import Actor
from citadel.http.raw import RawHeaders, Reply, header_map, query_pairs
from citadel.topology import MAX_POSITION

__all__ = [
    "HTML",
    "MAX_FORM",
    "Call",
    "Refusal",
    "number",
    "optional_number",
    "read_form",
    "redirect",
    "text",
    "timestamp",
]

HTML = b"text/html; charset=utf-8"
MAX_FORM = 64 * 1024
"""The largest form body the console reads: its forms send a few ids or one token."""
MAX_TEXT = 512
"""The longest text parameter (a stream name, an event type) the console accepts."""


class Refusal(Exception):
    """A request the console refuses: ``status`` (a 4xx, or 503 when the store cannot be read) and why."""

    def __init__(self, status: int, message: str, headers: RawHeaders | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


@dataclass
class Call:
    """One request to the console: its scope, parameters, form fields, actor, and the console's base URL."""

    scope: Scope
    params: dict[str, list[str]]
    actor: Actor
    base: str
    form: dict[str, list[str]] = field(default_factory=dict)

    def param(self, name: str) -> str:
        """The last value of query parameter ``name`` ('' when absent)."""
        values = self.params.get(name)
        return values[-1] if values else ""

    def field(self, name: str) -> str:
        """The last value of form field ``name`` ('' when absent)."""
        values = self.form.get(name)
        return values[-1] if values else ""


def grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Parameters by name, every value of a repeated one kept in order."""
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        found.setdefault(name, []).append(value)
    return found


def query_of(scope: Scope) -> dict[str, list[str]]:
    """The request's query parameters.

    Raises:
        Refusal: 400, the query string is malformed.
    """
    try:
        return grouped(query_pairs(scope.get("query_string", b"")))
    except ValueError as exc:
        raise Refusal(400, str(exc)) from None


async def read_form(scope: Scope, receive: Receive) -> tuple[dict[str, list[str]], bytes]:
    """Read a URL-encoded form body of at most ``MAX_FORM`` bytes; return its fields and the raw body.

    Raises:
        Refusal: 415 for another content type, 413 for a larger body, 400 for one that cannot be read.
    """
    content_type = header_map(scope).get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type != b"application/x-www-form-urlencoded":
        raise Refusal(415, "the console's forms send application/x-www-form-urlencoded")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal(400, "the client went away before sending the whole form")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM:
            raise Refusal(413, f"a console form is at most {MAX_FORM} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    try:
        return grouped(query_pairs(body)), body
    except ValueError as exc:
        raise Refusal(400, str(exc).replace("query string", "form")) from None


def number(value: str, what: str, *, low: int = 0, high: int = MAX_POSITION) -> int:
    """``value`` as a whole number from ``low`` to ``high``.

    Raises:
        Refusal: 400, it is not one (the message names ``what`` and the bounds).
    """
    digits = value.strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits.lstrip("0")) > len(str(high)):
        raise Refusal(400, f"{what} must be a whole number from {low} to {high}")
    found = int(digits)
    if not low <= found <= high:
        raise Refusal(400, f"{what} must be a whole number from {low} to {high}")
    return found


def optional_number(value: str, what: str, default: int, *, low: int = 0, high: int = MAX_POSITION) -> int:
    """``number``, or ``default`` for a blank value."""
    return default if not value.strip() else number(value, what, low=low, high=high)


def text(value: str, what: str) -> str:
    """``value`` stripped, when it is short and printable.

    Raises:
        Refusal: 400, it is too long or holds control characters.
    """
    value = value.strip()
    if len(value) > MAX_TEXT or not value.isprintable():
        raise Refusal(400, f"{what} must be printable text of at most {MAX_TEXT} characters")
    return value


def timestamp(value: str, what: str) -> float | None:
    """An ISO 8601 date or date and time (UTC unless it names an offset) as seconds since the epoch; None when
    blank.

    Raises:
        Refusal: 400, it is not such a date.
    """
    value = text(value, what)
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Refusal(400, f"{what} must be a date such as 2025-01-31 or 2025-01-31T09:30") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def redirect(location: str) -> Reply:
    """A 303 to ``location`` (after a form: the browser then gets the page, and a reload does not post again)."""
    return 303, b"", HTML, [(b"location", location.encode("latin-1"))]
