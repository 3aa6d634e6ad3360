"""Citadel's own HTTP/1.1 server for ASGI applications: asyncio protocols, the ``httptools`` parser (llhttp, the
parser of Node.js) and uvloop when installed.

Why not only granian: on this project's 10,000-connection benchmark, granian cost 0.074 ms of CPU and about
20 KB per connection for an empty answer; this server costs 0.027 ms and about 4 KB, which is the difference
between holding 10,000 virtual users on two cores and not. ``citadel serve --server granian`` still serves with
granian (HTTP/2, its own worker management).

What it does:

* HTTP/1.1 and 1.0, keep-alive, pipelined requests answered in order, ``Expect: 100-continue``, chunked request
  and response bodies, ``HEAD``;
* the ASGI 3 ``http`` and ``lifespan`` scopes (``state`` included); no WebSockets (an upgrade gets 400);
* request bodies are read whole before the application is called, up to ``max_body`` (413 beyond, before the
  body is read); the application sees one ``http.request`` message;
* at most ``max_connections`` open connections; one more is answered 503 and closed;
* idle keep-alive connections are closed after ``keep_alive`` seconds (checked every second, not with a timer per
  connection);
* on SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight finish (at most
  ``shutdown_timeout`` seconds), then the lifespan's shutdown;
* TLS through ``ssl`` (``serve`` pins TLS 1.3);
* ``run_workers`` forks worker processes that share one listening socket and replaces any that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import os
import signal
import socket
import ssl
import sys
import time
import typing
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httptools

from citadel.tuning import tune_for_serving
from citadel.workers import WORKER_SLOT

__all__ = [
    "ASGIApp",
    "HttpServer",
    "accept_queues",
    "bind",
    "listeners",
    "new_event_loop",
    "run_until_stopped",
    "run_workers",
    "serve_forever",
]

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]
Message = MutableMapping[str, Any]

log = logging.getLogger("citadel.http.server")

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_STATUS_LINES = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode("latin-1")) for status in http.HTTPStatus
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED_END = b"0\r\n\r\n"


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


def _plain_problem(status: int, detail: str, *, close: bool = True) -> bytes:
    """A whole response with an RFC 9457 problem body, for what the server refuses before the application sees it."""
    phrase = http.HTTPStatus(status).phrase
    body = b'{"type":"about:blank","title":"%s","status":%d,"detail":"%s"}' % (
        phrase.encode(),
        status,
        detail.replace('"', "'").encode(),
    )
    head = _status_line(status) + b"content-type: application/problem+json\r\ncontent-length: %d\r\n" % len(body)
    return head + (b"connection: close\r\n\r\n" if close else b"\r\n") + body


class _Request:
    """One parsed request waiting for (or being answered by) the application."""

    __slots__ = ("body", "keep_alive", "rejection", "scope")

    def __init__(self, scope: Message | None, body: bytes, keep_alive: bool, rejection: bytes = b"") -> None:
        self.scope = scope
        self.body = body
        self.keep_alive = keep_alive
        self.rejection = rejection  # a whole response to write instead of calling the application


class HttpServer:
    """Serves one ASGI application on sockets of this process's event loop."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_connections: int = 16384,
        max_body: int = 8 << 20,
        keep_alive: float = 75.0,
        shutdown_timeout: float = 10.0,
        tls: bool = False,
    ) -> None:
        """Args:
        max_connections: open connections at once; beyond, a new one gets 503 and is closed.
        max_body: largest request body read, in bytes (413 beyond).
        keep_alive: seconds an idle connection stays open.
        shutdown_timeout: seconds requests in flight get to finish when the server stops.
        tls: the sockets speak TLS (the scope's scheme is ``https``).
        """
        self.app = app
        self.max_connections = max_connections
        self.max_body = max_body
        self.keep_alive = keep_alive
        self.shutdown_timeout = shutdown_timeout
        self.scheme = "https" if tls else "http"
        self.connections: set[_Connection] = set()
        self.state: dict[str, Any] = {}
        self.date = b""
        self.stopping = False
        self._servers: list[asyncio.AbstractServer] = []
        self._ticker: asyncio.Task[None] | None = None
        self._lifespan: _Lifespan | None = None
        self._drained = asyncio.Event()  # set when the server stops and its last connection closes

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(
        self, *socks: socket.socket, ssl_context: ssl.SSLContext | None = None, backlog: int = 2048
    ) -> None:
        """Run the application's lifespan startup, then listen and accept connections on ``socks`` (bound; until
        the application has started, connecting fails rather than waiting).

        Raises:
            RuntimeError: the application's startup failed.
        """
        self._tick()
        self._lifespan = _Lifespan(self.app, self.state)
        await self._lifespan.startup()
        loop = asyncio.get_running_loop()
        for sock in socks:
            sock.listen(backlog)
            server = await loop.create_server(
                lambda: _Connection(self), sock=sock, ssl=ssl_context, backlog=backlog, start_serving=True
            )
            self._servers.append(server)
        self._ticker = loop.create_task(self._tick_forever())

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

    def _tick(self) -> None:
        self.date = b"date: " + formatdate(usegmt=True).encode() + b"\r\n"

    async def _tick_forever(self) -> None:
        """Once a second: refresh the Date header and close connections idle for longer than ``keep_alive``."""
        while True:
            await asyncio.sleep(1.0)
            self._tick()
            oldest = time.monotonic() - self.keep_alive
            for connection in [c for c in self.connections if c.idle_since < oldest]:
                connection.close_if_idle()


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs them through the application one at a time, in order."""

    __slots__ = (
        "body",
        "body_size",
        "client",
        "closing",
        "headers",
        "idle_since",
        "lost",
        "parser",
        "pending",
        "refusal",
        "refused",
        "running",
        "server",
        "server_address",
        "transport",
        "url",
        "writable",
    )

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser: Any = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.refusal = b""
        self.pending: deque[_Request] = deque()
        self.running: _Exchange | None = None
        self.closing = False  # close once the running request is answered
        self.lost = False  # the transport is gone
        self.refused = False  # a refusal is queued: read nothing more
        self.idle_since = time.monotonic()
        self.writable: asyncio.Future[None] | None = None
        self.client: tuple[str, int] | None = None
        self.server_address: tuple[str, int] | None = None

    # -- transport events --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        transport = self.transport
        server = self.server
        if server.stopping or len(server.connections) >= server.max_connections:
            self.closing = True
            transport.write(_plain_problem(503, "the server is at its connection limit or stopping; retry later"))
            transport.close()
            return
        server.connections.add(self)
        peer = transport.get_extra_info("peername")
        own = transport.get_extra_info("sockname")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        self.server_address = (own[0], own[1]) if isinstance(own, tuple) else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.lost = True
        server = self.server
        server.connections.discard(self)
        if server.stopping and not server.connections:
            server._drained.set()
        if self.running is not None:
            self.running.disconnected()
        self.pending.clear()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        # The parser refers back to this protocol: drop it, so that the connection is freed when its last
        # reference goes rather than by a (rare, see citadel.tuning) full pass of the cycle collector.
        self.parser = None

    def data_received(self, data: bytes) -> None:
        if self.refused or self.lost:
            return
        self.idle_since = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # the upgrade request itself was queued (refused, or answered then closed)
            self.refused = True
            assert self.transport is not None
            self.transport.pause_reading()
        except httptools.HttpParserError:
            if not self.refused:
                self._reject(_plain_problem(400, "malformed HTTP request"))

    def pause_writing(self) -> None:
        if self.writable is None or self.writable.done():
            self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    # -- parser callbacks (httptools) ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []
        self.body_size = 0
        self.refusal = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        length = next((value for name, value in self.headers if name == b"content-length"), None)
        upgrade = next((value for name, value in self.headers if name == b"upgrade"), b"")
        if self.parser.should_upgrade() and upgrade.lower() != b"h2c":  # h2c: answered over HTTP/1.1, then closed
            self.refusal = _plain_problem(400, "protocol upgrades (WebSocket) are not served")
        elif length is not None and length.isdigit() and int(length) > self.server.max_body:
            self._too_big()  # answered now: the body is not read
        elif (
            self.running is None
            and not self.pending
            and self.parser.get_http_version() == "1.1"
            and any(name == b"expect" and value.lower() == b"100-continue" for name, value in self.headers)
        ):
            assert self.transport is not None
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self.refused:
            return
        self.body_size += len(body)
        if self.body_size > self.server.max_body:
            self.body = []
            self._too_big()
        else:
            self.body.append(body)

    def _too_big(self) -> None:
        self._reject(_plain_problem(413, f"the request body may be at most {self.server.max_body} bytes"))

    def on_message_complete(self) -> None:
        if self.refused:
            return
        parser = self.parser
        keep_alive = parser.should_keep_alive() and not self.server.stopping and not parser.should_upgrade()
        if self.refusal:
            self._reject(self.refusal)
            return
        request = _Request(self._scope(), b"".join(self.body), keep_alive)
        self.body = []
        if self.running is None and not self.pending:
            self._run(request)
        else:
            self.pending.append(request)
            if len(self.pending) > 8:  # a client pipelining without reading its answers: stop reading from it
                assert self.transport is not None
                self.transport.pause_reading()

    def _scope(self) -> Message:
        url = self.url
        if url[:1] != b"/":  # absolute form (``GET http://host/path``) or ``*``
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path or b"/", parsed.query or b""
        else:
            raw_path, _, query = url.partition(b"?")
            raw_path = raw_path.partition(b"#")[0]
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path, encoding="utf-8", errors="surrogateescape")
        scope: Message = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": self.parser.get_http_version(),
            "method": self.parser.get_method().decode("ascii"),
            "scheme": self.server.scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": self.headers,
            "client": self.client,
            "server": self.server_address,
        }
        if self.server.state:
            scope["state"] = self.server.state.copy()
        return scope

    # -- answering -----------------------------------------------------------------------------------------

    def _run(self, request: _Request) -> None:
        assert self.transport is not None
        if request.scope is None:
            self.transport.write(request.rejection)
            self._finish(False)
            return
        exchange = _Exchange(self, request)
        self.running = exchange
        exchange.task = asyncio.get_running_loop().create_task(exchange.run())  # kept: the loop holds tasks weakly

    def _finish(self, keep_alive: bool) -> None:
        """The running request is answered: go on with the next, or close."""
        self.running = None
        self.idle_since = time.monotonic()
        transport = self.transport
        assert transport is not None
        if not keep_alive or self.closing:
            self.closing = True
            transport.close()
            return
        if self.pending:
            if len(self.pending) <= 8 and not self.refused:
                transport.resume_reading()
            self._run(self.pending.popleft())

    def _reject(self, response: bytes) -> None:
        """Refuse the request being read with ``response`` once the requests before it are answered, then close;
        read nothing more from this connection."""
        assert self.transport is not None
        self.refused = True
        self.transport.pause_reading()
        request = _Request(None, b"", False, response)
        if self.running is None and not self.pending:
            self._run(request)
        else:
            self.pending.append(request)

    def shut_down(self) -> None:
        """The server stops: close now if idle, else after the running request (which then says so)."""
        self.closing = True
        if self.running is not None:
            self.running.keep_alive = False
        self.close_if_idle()

    def close_if_idle(self) -> None:
        if self.running is None and self.transport is not None:
            self.closing = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _Exchange:
    """The ASGI ``receive`` and ``send`` of one request."""

    __slots__ = (
        "body",
        "chunked",
        "connection",
        "disconnect",
        "done",
        "head",
        "keep_alive",
        "request",
        "started",
        "task",
    )

    def __init__(self, connection: _Connection, request: _Request) -> None:
        self.connection = connection
        self.request = request
        self.body: bytes | None = request.body
        self.keep_alive = request.keep_alive
        self.started = False
        self.done = False
        self.chunked = False
        self.head = b""
        self.disconnect: asyncio.Event | None = None  # set when the client goes or the answer is complete
        self.task: asyncio.Task[None] | None = None

    def disconnected(self) -> None:
        self.keep_alive = False
        if self.disconnect is not None:
            self.disconnect.set()

    async def run(self) -> None:
        connection = self.connection
        scope = self.request.scope
        assert scope is not None
        try:
            await connection.server.app(scope, self.receive, self.send)
        except Exception:  # the application failed: answer 500 if nothing was sent, else cut the answer short
            log.exception("the application failed on %s %s", scope["method"], scope["path"])
            self.keep_alive = False
            if not self.started and not connection.lost:
                assert connection.transport is not None
                connection.transport.write(_plain_problem(500, "an unexpected error occurred"))
            self.done = True
        except BaseException:  # cancelled (the server stops): close, whatever was sent
            self.keep_alive = False
            self.done = True
            raise
        finally:
            if not self.done:  # the application returned without finishing its response
                log.error("the application did not complete its response to %s %s", scope["method"], scope["path"])
                self.keep_alive = False
                if not self.started and not connection.lost:
                    assert connection.transport is not None
                    connection.transport.write(_plain_problem(500, "the application sent no response"))
            connection._finish(self.keep_alive)

    async def receive(self) -> Message:
        body = self.body
        if body is not None:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": False}
        if not self.connection.lost and not self.done:  # wait until the client goes (or the answer is sent)
            if self.disconnect is None:
                self.disconnect = asyncio.Event()
            await self.disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        connection = self.connection
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.head = self._head(message["status"], message.get("headers", ()))
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP request")
        if not self.started or self.done:
            raise RuntimeError("http.response.body sent before http.response.start or after the last body")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        transport = connection.transport
        assert transport is not None
        if self.request.scope is not None and self.request.scope["method"] == "HEAD":
            body = b""
        if not more:
            self.done = True
            if self.disconnect is not None:
                self.disconnect.set()
        if connection.lost or transport.is_closing():
            return
        if self.chunked:
            out = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more:
                out += _CHUNKED_END
        else:
            out = body
        if self.head:
            out = self.head + out
            self.head = b""
        if out:
            transport.write(out)
        if more and connection.writable is not None and not connection.writable.done():
            await connection.writable

    def _head(self, status: int, headers: Any) -> bytes:
        lines = [_status_line(status), self.connection.server.date]
        length = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                length = True
            elif lowered == b"connection" and value.lower() == b"close":
                self.keep_alive = False
                continue
            elif lowered == b"transfer-encoding":
                continue  # the server frames the body itself
            lines.append(b"%b: %b\r\n" % (name, value))
        scope = self.request.scope
        assert scope is not None
        if not length and status >= 200 and status not in (204, 304) and scope["method"] != "HEAD":
            if scope["http_version"] == "1.0":
                self.keep_alive = False  # HTTP/1.0 knows no chunks: closing the connection ends the body
            else:
                self.chunked = True
                lines.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        elif scope["http_version"] == "1.0":
            lines.append(b"connection: keep-alive\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)


class _Lifespan:
    """Runs the application's ``lifespan`` scope. An application that fails before it even asks for the startup
    message has no lifespan, and is served all the same."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.listening = False
        self.started = False

    async def _receive(self) -> Message:
        self.listening = True
        return await self.inbox.get()

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        try:
            await self.app(scope, self._receive, self.outbox.put)
            await self.outbox.put({"type": "lifespan.returned"})  # whoever waits for an answer stops waiting
        except Exception as exc:
            if not self.listening:
                log.info("the application has no lifespan (%s: %s); serving it without", type(exc).__name__, exc)
                await self.outbox.put({"type": "lifespan.unsupported"})
            elif not self.started:
                await self.outbox.put({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
            else:
                log.exception("the application's lifespan failed")
                await self.outbox.put({"type": "lifespan.shutdown.failed", "message": str(exc)})

    async def startup(self) -> None:
        """Start the application.

        Raises:
            RuntimeError: the application reported (or raised) a failure to start.
        """
        self.task = asyncio.get_running_loop().create_task(self._main())
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the application failed to start: {message.get('message', '')}")
        self.started = message["type"] == "lifespan.startup.complete"

    async def shutdown(self) -> None:
        """Stop the application (when it started through its lifespan)."""
        if not self.started or self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        message = await self.outbox.get()
        if message["type"] == "lifespan.shutdown.failed":
            log.error("the application failed to stop: %s", message.get("message", ""))
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


# -- processes -----------------------------------------------------------------------------------------------


def bind(host: str, port: int, *, backlog: int = 2048, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """Return a TCP socket bound to ``host:port`` (IPv6 when ``host`` is an IPv6 address), listening unless
    ``listen`` is false.

    With ``reuse_port``, several processes bind the same port (``SO_REUSEPORT``) and the kernel spreads new
    connections evenly over those that listen.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def accept_queues(connections: int) -> int:
    """How many listening sockets a worker needs so that ``connections`` arriving at once fit in their accept
    queues (the kernel caps each at ``net.core.somaxconn``; a connection that does not fit waits for the
    client's retransmissions, seconds to tens of seconds). At most 8."""
    try:
        cap = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        cap = 4096
    return max(1, min(8, -(-connections // max(cap, 128))))


def listeners(host: str, port: int, count: int, *, backlog: int = 2048) -> list[socket.socket]:
    """``count`` sockets bound to ``host:port`` with ``SO_REUSEPORT`` (not listening yet); the kernel spreads new
    connections over every listening socket of the port, of this process and the others."""
    found: list[socket.socket] = []
    try:
        for _ in range(count):
            found.append(bind(host, port, backlog=backlog, reuse_port=True, listen=False))
    except BaseException:
        for sock in found:
            sock.close()
        raise
    return found


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve_forever(
    make_app: Callable[[], ASGIApp],
    socks: Sequence[socket.socket],
    *,
    ssl_context: ssl.SSLContext | None = None,
    backlog: int = 2048,
    started: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """Serve the app ``make_app`` builds on ``socks`` (bound) in this process until SIGTERM or SIGINT.

    Once the application has started (then ``started`` is called), the garbage collector is tuned for serving
    (``citadel.tuning``): this process is the server's. ``options`` go to ``HttpServer``.
    """
    server: HttpServer | None = None

    async def start() -> None:  # the app is built on the loop that serves it
        nonlocal server
        server = HttpServer(make_app(), tls=ssl_context is not None, **options)
        await server.start(*socks, ssl_context=ssl_context, backlog=backlog)

    async def stop() -> None:
        assert server is not None
        await server.stop()

    run_until_stopped(start, stop, started)


def run_until_stopped(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    started: Callable[[], None] | None = None,
) -> None:
    """This process's life on a new event loop: ``start``, then wait for SIGTERM or SIGINT, then ``stop``.

    Once started (then ``started`` is called), the garbage collector is tuned for serving (``citadel.tuning``).
    """

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await start()
        if started is not None:
            started()
        tune_for_serving()
        await stopping.wait()
        await stop()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())


_FAILED_TO_START = 3
"""Exit status of a worker whose application did not start (the supervisor then stops, as the worker would fail
again)."""


def run_workers(
    workers: int,
    make_app: Callable[[], ASGIApp],
    listen: Callable[[], Sequence[socket.socket]],
    *,
    ssl_context: ssl.SSLContext | None = None,
    backlog: int = 2048,
    background: Callable[[Callable[[], None]], None] | None = None,
    **options: Any,
) -> int:
    """Serve in ``workers`` forked processes; replace a worker that dies; return the exit status.

    Each worker opens its own listening sockets with ``listen`` (``listeners``: the kernel then spreads
    connections evenly, where one shared socket lets the least busy worker take most of them) and builds
    its own app with ``make_app`` after the fork. SIGTERM or SIGINT stops the workers gracefully, then this
    returns 0. A worker whose application fails to start stops them all (status 3).

    ``background``, when given, runs in one more forked process that serves no requests (the application's
    consumers, say), replaced like a worker when it dies; it calls the function it is given once it has
    started, and returns on SIGTERM.
    """

    signals = {signal.SIGTERM, signal.SIGINT}

    def child(slot: int | None) -> None:
        serves = slot is not None
        code = 0
        up = False

        def mark() -> None:
            nonlocal up
            up = True

        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
            if serves:
                os.environ[WORKER_SLOT] = f"{slot}/{workers}"
                serve_forever(make_app, listen(), ssl_context=ssl_context, backlog=backlog, started=mark, **options)
            elif background is not None:
                background(mark)
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt | SystemExit):
                what = "failed" if up else "failed to start"
                kind = "worker" if serves else "background process"
                print(f"Citadel: {kind} {os.getpid()} {what}: {exc}", file=sys.stderr, flush=True)
                code = 1 if up else _FAILED_TO_START
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def spawn(slot: int | None) -> int | None:
        """Fork a worker, or the background process (none once stopping); signals wait until both sides have
        their own handlers."""
        if stopping:
            return None
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child, which never returns
                child(slot)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
        return pid

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(alive):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    alive: dict[int, tuple[float, int | None]] = {}  # pid: when it started, its worker slot (None: background)
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        for slot in [*range(workers), *([None] if background is not None else [])]:
            if (pid := spawn(slot)) is not None:
                alive[pid] = (time.monotonic(), slot)
        while alive:
            try:
                pid, raw = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries os.wait
                continue
            found = alive.pop(pid, None)
            if found is None or stopping:
                continue
            started, slot = found
            code = os.waitstatus_to_exitcode(raw)
            if code == _FAILED_TO_START:
                status = _FAILED_TO_START
                stop(signal.SIGTERM, None)
                continue
            kind = "worker" if slot is not None else "background process"
            print(f"Citadel: {kind} {pid} exited with status {code}; starting another", file=sys.stderr, flush=True)
            if time.monotonic() - started < 1.0:
                time.sleep(1.0)  # a worker that dies at once should not be replaced in a tight loop
            if (pid := spawn(slot)) is not None:
                alive[pid] = (time.monotonic(), slot)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status
