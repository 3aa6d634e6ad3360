"""The shapes the HTTP layer hands around: a reply as ASGI sends it, and the endpoint that makes one.

They live apart from what makes replies (``raw``) and what routes requests to endpoints (``routing``), so that
the access log and the metrics name them without importing either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope

__all__ = ["Endpoint", "RawHeaders", "Reply"]

RawHeaders = list[tuple[bytes, bytes]]
"""Headers as the lowercase byte pairs ASGI sends."""
Reply = tuple[int, bytes, bytes, RawHeaders]
"""``(status, body, content type, extra headers)``; the headers list may be shared, ``raw.respond`` copies it."""
Endpoint = Callable[[Scope, Receive], Awaitable[Reply]]
"""What a route runs: the request's scope and body channel in, a reply out."""
