"""Requests and replies at the ASGI level: what the generated endpoints read and answer, without Starlette's
``Request`` and ``Response`` objects on the way (they cost more than most of a query's own work).

A ``Reply`` (``citadel.http.types``) is ``(status, body, content type, headers)``, headers as the lowercase byte
pairs ASGI sends.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

import msgspec

from citadel.context import is_safe_id
from citadel.http.problems import MEDIA_TYPE, Problem, from_exception, problem
from citadel.http.types import RawHeaders, Reply

__all__ = [
    "JSON",
    "PROBLEM",
    "RawHeaders",
    "Reply",
    "encode_headers",
    "failure_reply",
    "header_map",
    "json_reply",
    "malformed_url",
    "problem_reply",
    "query_pairs",
    "respond",
    "safe_id",
    "unreadable_path",
]

JSON = b"application/json"
PROBLEM = MEDIA_TYPE.encode()
_encoder = msgspec.json.Encoder()


def json_reply(value: Any, status: int = 200, headers: RawHeaders | None = None) -> Reply:
    """Return ``value`` as a JSON reply."""
    return status, _encoder.encode(value), JSON, headers if headers is not None else []


def problem_reply(problem: Problem, headers: RawHeaders | None = None) -> Reply:
    """Return a problem as an ``application/problem+json`` reply."""
    return problem.status, _encoder.encode(problem), PROBLEM, headers if headers is not None else []


def failure_reply(exc: BaseException, limits: RawHeaders) -> Reply:
    """Return the problem reply of ``exc``, with the rate-limit headers ``limits`` unless it sets its own."""
    found, extra = from_exception(exc)
    if not extra:
        return problem_reply(found, limits)
    raw = encode_headers(extra)
    replaced = {name for name, _ in raw}
    return problem_reply(found, [*(h for h in limits if h[0] not in replaced), *raw])


def malformed_url(detail: str) -> Reply:
    """Return the 400 reply to a path or query string that cannot be read as text."""
    return problem_reply(problem(400, "malformed-url", "Malformed URL", detail))


def encode_headers(headers: Mapping[str, str]) -> RawHeaders:
    """Return ``headers`` as ASGI byte pairs (names lowercased, latin-1 as Starlette encodes them)."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


async def respond(
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]], reply: Reply, extra: Sequence[tuple[bytes, bytes]]
) -> None:
    """Send ``reply`` whole, with ``extra`` headers (the security headers) after its own."""
    status, body, content_type, headers = reply
    raw = [*headers, (b"content-length", b"%d" % len(body)), (b"content-type", content_type), *extra]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def header_map(scope: Mapping[str, Any]) -> dict[bytes, bytes]:
    """Return the request's headers by lowercase name; of repeated headers, the first (as Starlette's ``get``)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name not in found:
            found[name] = value
    return found


def safe_id(value: bytes | None) -> str | None:
    """Return a header's value as text if ``is_safe_id`` allows it; None when it is absent or not allowed."""
    if value is None:
        return None
    text = value.decode("latin-1")
    return text if is_safe_id(text) else None


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_BAD_RAW_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def query_pairs(query_string: bytes) -> list[tuple[str, str]]:
    """Return the parameters of a query string in order, blank values kept, as Starlette parses them; except
    that a malformed percent-escape, or escaped bytes that are not UTF-8, is refused instead of kept or replaced.

    Raises:
        ValueError: the query string cannot be read (the message says why).
    """
    text = query_string.decode("latin-1")
    if "%" in text:
        if _BAD_ESCAPE.search(text):
            raise ValueError("the query string has a malformed percent-escape (% must be followed by two hex digits)")
        try:
            return [(_unquote(name), _unquote(value)) for name, value in _split(text)]
        except UnicodeDecodeError:
            raise ValueError("the query string has percent-escaped bytes that are not UTF-8") from None
    if "+" in text:
        return [(name.replace("+", " "), value.replace("+", " ")) for name, value in _split(text)]
    return _split(text)


def _split(text: str) -> list[tuple[str, str]]:
    pairs = []
    for piece in text.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((name, value))
    return pairs


def _unquote(text: str) -> str:
    return unquote(text.replace("+", " "), errors="strict")


def unreadable_path(scope: Mapping[str, Any]) -> str | None:
    """Return why the request's path cannot be read as text, or None when it can.

    A path is unreadable with a malformed percent-escape, or bytes that are not UTF-8 once decoded. Servers pass
    what they made of such a path (one replaces the bytes, another keeps them as surrogates), so the raw path,
    when the server gives it, decides.
    """
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes):
        try:
            scope["path"].encode()
        except UnicodeEncodeError:
            return "the path is not UTF-8"
        return None
    if b"%" not in raw and raw.isascii():
        return None
    if _BAD_RAW_ESCAPE.search(raw):
        return "the path has a malformed percent-escape (% must be followed by two hex digits)"
    try:
        unquote_to_bytes(raw).decode()
    except UnicodeDecodeError:
        return "the path is not UTF-8 once percent-decoded"
    return None
