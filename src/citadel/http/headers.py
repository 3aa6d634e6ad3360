"""Security headers on every response: precomputed byte pairs, added as a response starts (by the app itself
for its own routes, by the thin ``SecurityHeaders`` wrapper for everything else)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["SecurityHeaders", "security_headers"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_API = [
    *_COMMON,
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
# The docs page runs the app's own scripts and stylesheets (whose icons are data: images) and calls the API of the
# same origin, nothing else.
_DOCS = [
    *_COMMON,
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
]
# The docs page's assets say how long they may be cached (their URL changes with their content).
_ASSETS = [*_COMMON, (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")]
# The console's pages load the app's own stylesheet and script, which polls the app's JSON, and post their forms
# to the app itself, nothing else.
_CONSOLE = [
    *_COMMON,
    (b"cache-control", b"no-store"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
]
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
_CHOICES = {
    (kind, https): [*headers, _HSTS] if https else headers
    for kind, headers in (("api", _API), ("docs", _DOCS), ("assets", _ASSETS), ("console", _CONSOLE))
    for https in (False, True)
}


def security_headers(
    path: str, scheme: str | None, *, docs_path: str = "/docs", console_path: str = "/console"
) -> list[tuple[bytes, bytes]]:
    """Return the security headers of a response to ``path`` (a shared list: copy it to change it)."""
    if path.endswith(docs_path):
        kind = "docs"
    elif "/assets/" in path and (f"{docs_path}/assets/" in path or f"{console_path}/assets/" in path):
        kind = "assets"
    elif console_path in path and (path.endswith(console_path) or f"{console_path}/" in path):
        kind = "console"
    else:
        kind = "api"
    return _CHOICES[kind, scheme == "https"]


class SecurityHeaders:
    """Wrap an ASGI app so that every HTTP response carries the security headers (HSTS over HTTPS)."""

    def __init__(self, app: ASGIApp, *, docs_path: str = "/docs") -> None:
        self.app = app
        self.docs_path = docs_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"], scope.get("scheme"), docs_path=self.docs_path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
