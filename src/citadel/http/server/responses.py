"""The bytes the server writes itself: status lines, and whole answers to what it refuses before any
application sees it (RFC 9457 problem documents, then the connection closes)."""

from __future__ import annotations

import http

__all__ = ["CHUNKED_END", "CONTINUE", "Refused", "refusal", "status_line"]

_STATUS_LINES = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode("latin-1")) for status in http.HTTPStatus
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
CHUNKED_END = b"0\r\n\r\n"


class Refused(Exception):
    """Raised inside a parser callback to stop parsing and answer ``status`` (then close)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def status_line(status: int) -> bytes:
    """Return the status line of ``status`` (with its reason phrase when it has a registered one)."""
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


def refusal(status: int, detail: str, *, retry_after: int | None = None) -> bytes:
    """Return a whole ``status`` answer whose problem document says ``detail``, ending the connection.

    ``detail`` is the server's own text, never an echo of what the client sent.
    """
    phrase = http.HTTPStatus(status).phrase
    body = b'{"type":"about:blank","title":"%s","status":%d,"detail":"%s"}' % (
        phrase.encode(),
        status,
        detail.replace("\\", "/").replace('"', "'").encode(),
    )
    head = status_line(status) + b"content-type: application/problem+json\r\ncontent-length: %d\r\n" % len(body)
    if retry_after is not None:
        head += b"retry-after: %d\r\n" % retry_after
    return head + b"connection: close\r\n\r\n" + body
