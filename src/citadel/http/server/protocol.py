"""What the server's parts need of each other: a connection of the server that accepted it (``Host``), an exchange
of the connection it answers on (``Channel``).

``core`` makes connections and ``connection`` makes exchanges; a connection and an exchange name these protocols
rather than the class that made them, so imports go one way: ``core`` → ``connection`` → ``exchange`` →
``protocol``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Protocol, TypeVar

from citadel.http.server.lifespan import ASGIApp
from citadel.http.server.limits import Limits

__all__ = ["Channel", "Host"]

C = TypeVar("C", contravariant=True)


class Host(Protocol[C]):
    """The server that accepted a connection of type ``C`` (``HttpServer``): the application, the limits, the
    scope's scheme and state, the current ``Date`` header line, and the count of connections and refusals."""

    app: ASGIApp
    limits: Limits
    scheme: str
    state: dict[str, Any]
    date: bytes
    stopping: bool
    refused: Counter[int]

    def admit(self, connection: C) -> bytes:
        """Count a new connection in, or return the answer that refuses it (then it is not counted)."""
        ...

    def release(self, connection: C) -> None:
        """Count a closed connection out."""
        ...


class Channel(Protocol):
    """The connection an exchange answers on (``Connection``): its server, its transport (None before it is made),
    whether the client has gone, and the future that is pending while the client reads too slowly."""

    server: Host[Any]
    transport: asyncio.Transport | None
    lost: bool
    writable: asyncio.Future[None] | None

    def finished(self, keep_alive: bool) -> None:
        """The running request is answered: go on with the next, or close."""
        ...
