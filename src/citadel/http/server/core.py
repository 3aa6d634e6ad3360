"""``HttpServer``: serves one ASGI application on listening sockets of this process's event loop.

It starts the application's lifespan before accepting anyone, admits connections within ``max_connections``
and ``max_connections_per_client`` (a trusted proxy's connections count for no single client), checks every
connection's clocks a few times a second, and on ``stop`` lets requests in flight finish before the
application stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import Counter
from collections.abc import Iterable
from email.utils import formatdate
from typing import Any

from citadel.http.clients import TrustedProxies, client_key
from citadel.http.server.connection import Connection
from citadel.http.server.lifespan import ASGIApp, Lifespan
from citadel.http.server.limits import Limits
from citadel.http.server.responses import refusal

__all__ = ["HttpServer"]


class HttpServer:
    """Serves one ASGI application on sockets of this process's event loop."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Limits | None = None,
        trusted_proxies: Iterable[str] = (),
        shutdown_timeout: float = 10.0,
        tls: bool = False,
    ) -> None:
        """Args:
        limits: what one client may do (``Limits``' defaults when None).
        trusted_proxies: addresses or networks of reverse proxies; their connections are not limited per client
            address (each carries many clients).
        shutdown_timeout: seconds requests in flight get to finish when the server stops.
        tls: the sockets speak TLS (the scope's scheme is ``https``).

        Raises:
            ConfigurationError: a trusted proxy is not an address or network.
        """
        self.app = app
        self.limits = limits if limits is not None else Limits()
        self.proxies = TrustedProxies(trusted_proxies)
        self.shutdown_timeout = shutdown_timeout
        self.scheme = "https" if tls else "http"
        self.connections: set[Connection] = set()
        self.per_client: Counter[str] = Counter()
        self.refused: Counter[int] = Counter()
        """Refusals by status, since the server started (connections refused at the door included)."""
        self.state: dict[str, Any] = {}
        self.date = b""
        self.stopping = False
        self._servers: list[asyncio.AbstractServer] = []
        self._ticker: asyncio.Task[None] | None = None
        self._lifespan: Lifespan | None = None
        self._drained = asyncio.Event()  # set when the server stops and its last connection closes
        self._second = 0

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(
        self, *socks: socket.socket, ssl_context: ssl.SSLContext | None = None, backlog: int = 2048
    ) -> None:
        """Run the application's lifespan startup, then listen and accept connections on ``socks`` (bound; until
        the application has started, connecting fails rather than waiting).

        Raises:
            RuntimeError: the application's startup failed.
        """
        self._tick(time.time())
        self._lifespan = Lifespan(self.app, self.state)
        await self._lifespan.startup()
        loop = asyncio.get_running_loop()
        for sock in socks:
            sock.listen(backlog)
            server = await loop.create_server(
                lambda: Connection(self), sock=sock, ssl=ssl_context, backlog=backlog, start_serving=True
            )
            self._servers.append(server)
        self._ticker = loop.create_task(self._watch())

    async def stop(self) -> None:
        """Stop accepting, finish requests in flight (within ``shutdown_timeout``), run the lifespan shutdown."""
        self.stopping = True
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.shut_down()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self.shutdown_timeout)
        running = [c.running.task for c in self.connections if c.running is not None and c.running.task is not None]
        for connection in list(self.connections):
            connection.abort()
        for task in running:  # what did not finish in time is cancelled before the application stops
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._lifespan is not None:
            await self._lifespan.shutdown()

    # -- admission -----------------------------------------------------------------------------------------

    def admit(self, connection: Connection) -> bytes:
        """Count a new connection in, or return the answer that refuses it (then it is not counted)."""
        limits = self.limits
        if self.stopping or len(self.connections) >= limits.max_connections:
            self.refused[503] += 1
            return refusal(503, "the server is at its connection limit or stopping; retry later", retry_after=1)
        host = connection.client[0] if connection.client is not None else None
        if limits.max_connections_per_client and not (host is not None and self.proxies.trusts(host)):
            key = client_key(host)
            if self.per_client[key] >= limits.max_connections_per_client:
                self.refused[429] += 1
                return refusal(
                    429,
                    f"at most {limits.max_connections_per_client} connections per client address; reuse one",
                    retry_after=1,
                )
            self.per_client[key] += 1
            connection.client_key = key
        self.connections.add(connection)
        return b""

    def release(self, connection: Connection) -> None:
        """Count a closed connection out."""
        self.connections.discard(connection)
        key = connection.client_key
        if key is not None:
            connection.client_key = None
            left = self.per_client[key] - 1
            if left > 0:
                self.per_client[key] = left
            else:
                del self.per_client[key]
        if self.stopping and not self.connections:
            self._drained.set()

    # -- clocks --------------------------------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        second = int(now)
        if second != self._second:
            self._second = second
            self.date = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"

    async def _watch(self) -> None:
        """A few times a second: refresh the Date header, and enforce every connection's clocks."""
        interval = self.limits.sweep_interval
        while True:
            await asyncio.sleep(interval)
            self._tick(time.time())
            now = time.monotonic()
            for connection in list(self.connections):
                connection.check_clocks(now)
