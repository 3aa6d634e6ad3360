"""What the server lets one client do: sizes, counts and times, each with a default a public server can keep.

Every limit answers a hostile client with a refusal it can read (a status line and a problem document) and
closes the connection, so nothing it sent lingers in memory:

=============================  ==========  =====================================================================
limit                          refusal     what it bounds
=============================  ==========  =====================================================================
``max_request_line``           414         the request target, in bytes
``max_header_bytes``           431         the header block (names, values and their separators), in bytes
``max_headers``                431         the number of header lines (chunked trailers count too)
``header_timeout``             408         seconds from a request's first byte (or the connection's start) to
                                           the end of its headers
``min_body_rate``              408         bytes per second a body must average once ``header_timeout``
                                           seconds of it have passed
``max_body``                   413         a request body, in bytes (refused before it is read, and before
                                           ``100 Continue``)
``keep_alive_timeout``         close       seconds an idle connection stays open between requests
``send_timeout``               close       seconds the server waits for a client that reads none of its answers
``max_connections``            503         open connections of one worker
``max_connections_per_client`` 429         open connections of one client address (an IPv6 client: its /64)
``max_connection_memory``      pause       bytes of requests one connection may have read ahead of its answers;
                                           beyond (by at most one read of the socket), the server stops reading
                                           from it until answers catch up
=============================  ==========  =====================================================================
"""

from __future__ import annotations

import math

import msgspec

from citadel.errors import ConfigurationError

__all__ = ["WRITE_HIGH_WATER", "Limits"]

WRITE_HIGH_WATER = 64 * 1024
"""Bytes of answers buffered for a connection beyond which the server stops reading from it and starts no
next pipelined request (uvicorn's flow control uses the same mark): a client that does not read cannot make
the server hold its answers."""


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The limits of one server (see the module's table). Zero means "no limit" only where documented."""

    max_request_line: int = 8 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    min_body_rate: int = 1024
    max_body: int = 1 << 20
    keep_alive_timeout: float = 30.0
    send_timeout: float = 30.0
    max_connections: int = 16384
    max_connections_per_client: int = 256
    """0: no limit per client (for a load test from one address, or a server only a proxy reaches)."""
    max_connection_memory: int = 2 << 20

    def __post_init__(self) -> None:
        for name in ("max_request_line", "max_header_bytes", "max_headers", "max_body", "max_connections"):
            _whole(self, name, minimum=1)
        _whole(self, "min_body_rate", minimum=0)
        _whole(self, "max_connections_per_client", minimum=0)
        _whole(self, "max_connection_memory", minimum=1)
        for name in ("header_timeout", "keep_alive_timeout", "send_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
                raise ConfigurationError(f"{name} is {value!r}; give a number of seconds greater than 0")
        one_request = self.max_body + self.max_request_line + self.max_header_bytes
        if self.max_connection_memory < one_request:
            raise ConfigurationError(
                f"max_connection_memory ({self.max_connection_memory}) must hold one whole request: raise it to at "
                f"least {one_request} (max_body + max_request_line + max_header_bytes), or lower max_body"
            )

    @property
    def sweep_interval(self) -> float:
        """Seconds between two checks of every connection's clocks: a second, or less for short timeouts."""
        shortest = min(self.header_timeout, self.keep_alive_timeout, self.send_timeout)
        return max(0.05, min(1.0, shortest / 4))


def _whole(limits: Limits, name: str, *, minimum: int) -> None:
    value = getattr(limits, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} is {value!r}; give a whole number >= {minimum}")
