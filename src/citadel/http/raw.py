"""Requests and replies at the ASGI level: what the generated endpoints read and answer, without Starlette's
``Request`` and ``Response`` objects on the way (they cost more than most of a query's own work).

A ``Reply`` is ``(status, body, content type, headers)``, headers as the lowercase byte pairs ASGI sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from citadel.http.problems import MEDIA_TYPE, Problem

__all__ = [
    "JSON",
    "PROBLEM",
    "RawHeaders",
    "Reply",
    "encode_headers",
    "header_map",
    "json_reply",
    "problem_reply",
    "query_pairs",
    "respond",
]

RawHeaders = list[tuple[bytes, bytes]]
Reply = tuple[int, bytes, bytes, RawHeaders]
"""``(status, body, content type, extra headers)``; the headers list may be shared, ``respond`` copies it."""

JSON = b"application/json"
PROBLEM = MEDIA_TYPE.encode()
_encoder = msgspec.json.Encoder()


def json_reply(value: Any, status: int = 200, headers: RawHeaders | None = None) -> Reply:
    """Return ``value`` as a JSON reply."""
    return status, _encoder.encode(value), JSON, headers if headers is not None else []


def problem_reply(problem: Problem, headers: RawHeaders | None = None) -> Reply:
    """Return a problem as an ``application/problem+json`` reply."""
    return problem.status, _encoder.encode(problem), PROBLEM, headers if headers is not None else []


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


def query_pairs(query_string: bytes) -> list[tuple[str, str]]:
    """Return the parameters of a query string in order, blank values kept (as Starlette parses them)."""
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    pairs = []
    for piece in text.split("&"):
        if piece:  # nothing to unquote: split as parse_qsl would
            name, _, value = piece.partition("=")
            pairs.append((name, value))
    return pairs
