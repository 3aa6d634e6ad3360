"""What makes a request's head unservable (RFC 9110 and 9112), checked once the parser has read it whole, so that
no application ever sees an ambiguous request: a second ``Host`` or ``Content-Type`` (which one did a proxy
in front of us route on?), chunked framing on HTTP/1.0, an HTTP version other than 1.x, a protocol upgrade,
a declared body over the limit. llhttp itself refuses ``Content-Length`` with ``Transfer-Encoding``, bad
chunk sizes and malformed lines.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from citadel.http.server.limits import Limits
from citadel.http.server.responses import Refused
from citadel.http.server.targets import BadTarget, split_target

__all__ = ["Head", "check_head", "check_trailer"]

_SINGLE = frozenset({b"host", b"content-length", b"content-type", b"authorization"})
"""Fields a request may carry once: with two, the server and a proxy in front of it could each believe another."""

_NOT_IN_TRAILERS = frozenset({b"content-length", b"host", b"te", b"trailer", b"transfer-encoding"})
"""Fields that frame or route a request (RFC 9110 section 6.5.1): a request hiding one in a trailer is refused.
Every other trailer field (an ``Authorization`` too) is dropped unread."""


class Head(NamedTuple):
    """The parts of a checked head the server needs."""

    raw_path: bytes
    query: bytes
    path: str
    expects_continue: bool


def check_head(parser: Any, url: bytes, headers: list[tuple[bytes, bytes]], limits: Limits) -> Head:
    """Return the parts of a complete head the server uses.

    Raises:
        Refused: the head cannot be served (400, 413 or 505), with a detail that echoes nothing the client sent.
    """
    version = parser.get_http_version()
    if version != "1.1" and version != "1.0":
        raise Refused(505, "only HTTP/1.1 and HTTP/1.0 are served")
    try:
        raw_path, query, path = split_target(url, parser.get_method())
    except BadTarget as exc:
        raise Refused(400, str(exc)) from None
    length: bytes | None = None
    chunked = expects_continue = False
    upgrade = b""
    seen: list[bytes] = []
    for name, value in headers:
        if name in _SINGLE:
            if name in seen:
                raise Refused(400, f"a request may carry only one {name.decode()} field")
            seen.append(name)
            if name == b"content-length":
                length = value
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"expect":
            expects_continue = value.lower() == b"100-continue"
        elif name == b"upgrade":
            upgrade = value
    if chunked and version == "1.0":
        raise Refused(400, "an HTTP/1.0 request cannot have a transfer coding")
    if parser.should_upgrade() and upgrade.lower() != b"h2c":  # h2c: answered over HTTP/1.1, then closed
        raise Refused(400, "protocol upgrades (WebSocket) are not served")
    if length is not None and (len(length) > 18 or int(length) > limits.max_body):  # llhttp checked the digits
        raise Refused(413, f"the request body may be at most {limits.max_body} bytes")
    return Head(raw_path, query, path, expects_continue and version == "1.1")


def check_trailer(name: bytes) -> None:
    """Refuse a chunked trailer field that would frame or route the request.

    Raises:
        Refused: 400.
    """
    if name.lower() in _NOT_IN_TRAILERS:
        raise Refused(400, f"a trailer may not carry {name.lower().decode()}")
