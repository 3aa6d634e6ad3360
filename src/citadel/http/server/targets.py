"""The request target (RFC 9112 section 3.2) as the ASGI scope wants it: the raw path, the query string, and
the path percent-decoded as UTF-8.

A path whose percent-encoding is broken (``%zz``, a trailing ``%f``) or whose decoded bytes are not UTF-8 is
refused (400) here, before any application sees it: the application would otherwise get a path that cannot
be encoded again, or one with characters silently replaced.
"""

from __future__ import annotations

import httptools

__all__ = ["BadTarget", "split_target"]

_HEX = frozenset(b"0123456789abcdefABCDEF")


class BadTarget(ValueError):
    """The request target cannot be served; the message says why, without echoing it."""


def split_target(url: bytes, method: bytes) -> tuple[bytes, bytes, str]:
    """Return ``(raw path, query string, decoded path)`` of a request target.

    Raises:
        BadTarget: the target is not origin-form, absolute-form or (for OPTIONS) ``*``, or its path's
            percent-encoding or UTF-8 is invalid.
    """
    if url[:1] == b"/":
        raw_path, _, query = url.partition(b"#")[0].partition(b"?")
    elif url == b"*":
        if method != b"OPTIONS":
            raise BadTarget("the target * is only for OPTIONS")
        return b"*", b"", "*"
    else:  # absolute form: ``GET http://host/path?query``
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            raise BadTarget("the request target is not a path or an absolute URL") from None
        if not parsed.schema:
            raise BadTarget("the request target is not a path or an absolute URL")
        raw_path, query = parsed.path or b"/", parsed.query or b""
    if b"%" not in raw_path:
        return raw_path, query, raw_path.decode("ascii")  # llhttp lets only ASCII through in a target
    return raw_path, query, _percent_decoded(raw_path)


def _percent_decoded(raw: bytes) -> str:
    pieces = raw.split(b"%")
    decoded = bytearray(pieces[0])
    for piece in pieces[1:]:
        if len(piece) < 2 or piece[0] not in _HEX or piece[1] not in _HEX:
            raise BadTarget("the path's percent-encoding is invalid")
        decoded.append(int(piece[:2], 16))
        decoded += piece[2:]
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise BadTarget("the path is not UTF-8 once percent-decoded") from None
