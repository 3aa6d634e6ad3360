"""One client connection: reads requests with the ``httptools`` parser (llhttp, the parser of Node.js), holds
the client to the server's ``Limits``, and runs its requests through the application one at a time, in order.

A connection is always in one phase, and each phase has its clock (checked by ``HttpServer`` a few times a
second, never with a timer per connection): reading a request's head (``header_timeout``), reading its body
(``min_body_rate``), idle between requests (``keep_alive_timeout``), or lingering after a refusal (reading and
dropping what the client still sends, so that closing does not reset the connection before the client has
read why). Clocks stop while the server itself stops reading: the client is not to blame for that.

Reading stops while the answers the client has not taken pass ``WRITE_HIGH_WATER``, while
``max_connection_memory`` bytes of requests wait for their turn, or while ``MAX_PIPELINED`` requests wait; it
resumes once answers catch up. A client that takes none of its answers for ``send_timeout`` is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
import typing
from collections import deque
from typing import Any

import httptools

from citadel.http.server.exchange import Exchange, Request
from citadel.http.server.heads import check_head, check_trailer
from citadel.http.server.lifespan import ASGI_VERSION, Message
from citadel.http.server.limits import WRITE_HIGH_WATER
from citadel.http.server.protocol import Host
from citadel.http.server.responses import CONTINUE, Refused, refusal

__all__ = ["MAX_PIPELINED", "Connection"]

log = logging.getLogger("citadel.http.server")

MAX_PIPELINED = 8
"""Requests read ahead of their answers, at most; reading pauses beyond."""

LINGER = 2.0
"""Seconds a refused connection keeps reading (and dropping) what the client still sends before it closes."""

_WAIT, _HEAD, _BODY, _IDLE, _LINGER = range(5)  # _WAIT: a new connection, no request begun yet


class Connection(asyncio.Protocol):
    """One client connection (see the module's docstring)."""

    # fmt: off
    __slots__ = (
        "admitted", "blank", "body", "body_size", "buffered", "client", "client_key", "closing", "completed",
        "head_bytes", "header_bytes", "header_count", "headers", "limits", "lost", "parser", "pending", "phase",
        "reading", "refused", "running", "scope", "server", "server_address", "since", "transport", "url", "writable",
        "write_paused_at",
    )
    # fmt: on

    def __init__(self, server: Host[Connection]) -> None:
        self.server = server
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.parser: Any = httptools.HttpRequestParser(self)
        self.phase = _WAIT  # a connection that sends nothing gets the header timeout too
        self.blank = 0  # empty lines before the request line (RFC 9112 section 2.2 allows one)
        self.since = time.monotonic()  # when the phase's clock started
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.header_count = 0
        self.head_bytes = 0  # bytes of an unfinished head, counted from whole reads (a lower bound)
        self.completed = 0  # requests read whole on this connection
        self.scope: Message | None = None
        self.body: list[bytes] = []
        self.body_size = 0
        self.pending: deque[Request] = deque()
        self.buffered = 0  # bytes held by ``pending``
        self.running: Exchange | None = None
        self.closing = False  # close once the running request is answered
        self.lost = False  # the transport is gone
        self.refused = False  # a refusal is queued: parse nothing more
        self.reading = True  # the transport reads (the server has not paused it)
        self.write_paused_at = 0.0  # since when the transport's buffer is above its high-water mark; 0: it is not
        self.writable: asyncio.Future[None] | None = None
        self.client: tuple[str, int] | None = None
        self.client_key: str | None = None  # the key this connection is counted under, per client address
        self.server_address: tuple[str, int] | None = None
        self.admitted = False

    # -- transport events --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        own = transport.get_extra_info("sockname")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        self.server_address = (own[0], own[1]) if isinstance(own, tuple) else None
        answer = self.server.admit(self)
        if answer:
            self.closing = True
            self.refused = True
            self.transport.write(answer)
            self.transport.close()
            return
        self.admitted = True
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.admitted:
            return
        self.closing = True
        self.lost = True
        self.server.release(self)
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
            return  # lingering after a refusal: what the client still sends is dropped
        phase = self.phase
        if phase in (_IDLE, _WAIT) and data[:1] in (b"\r", b"\n"):
            self.blank += len(data) - len(data.lstrip(b"\r\n"))
            if self.blank > 2:
                self.refuse(400, "at most one empty line may come before a request")
                return
        in_head = phase in (_HEAD, _WAIT)
        completed = self.completed
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # the upgrade request itself was queued (refused, or answered then closed)
            self._stop_reading()
            return
        except httptools.HttpParserCallbackError as exc:
            reason = exc.__context__
            if isinstance(reason, Refused):
                self.refuse(reason.status, reason.detail)
            else:
                log.error("the server failed to read a request", exc_info=reason)
                self.refuse(500, "the server failed to read the request")
            return
        except httptools.HttpParserError:
            if not self.refused:
                self.refuse(400, "malformed HTTP request")
            return
        if self.phase == _HEAD and not self.refused:  # a head still unfinished: bound what it has sent so far
            if in_head and self.completed == completed:  # every byte of ``data`` belongs to this head
                self.head_bytes += len(data)
            limits = self.limits
            if max(self.head_bytes, len(self.url) + self.header_bytes) > (
                limits.max_request_line + limits.max_header_bytes
            ):
                self.refuse(431, f"the request's headers may be at most {limits.max_header_bytes} bytes")

    def pause_writing(self) -> None:
        self.write_paused_at = time.monotonic()
        if self.writable is None or self.writable.done():
            self.writable = asyncio.get_running_loop().create_future()
        self._flow()

    def resume_writing(self) -> None:
        self.write_paused_at = 0.0
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        if self.running is None and self.pending:
            self._run(self.pending.popleft())
        self._flow()

    # -- parser callbacks (httptools) ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.phase = _HEAD
        self.blank = 0
        self.since = time.monotonic()
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.header_count = 0
        self.head_bytes = 0
        self.body = []
        self.body_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_request_line:
            raise Refused(414, f"the request target may be at most {self.limits.max_request_line} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        self.header_bytes += len(name) + len(value) + 4  # with ": " and CRLF, as on the wire
        limits = self.limits
        if self.header_count > limits.max_headers:
            raise Refused(431, f"a request may have at most {limits.max_headers} header lines")
        if self.header_bytes > limits.max_header_bytes:
            raise Refused(431, f"the request's headers may be at most {limits.max_header_bytes} bytes")
        if self.phase != _HEAD:  # after the head, these are chunked trailers: counted, checked, never passed on
            check_trailer(name)
        elif value[-1:] == b" " or value[-1:] == b"\t":  # trailing whitespace is not part of a value
            self.headers.append((name.lower(), value.rstrip(b" \t")))
        else:
            self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.phase = _BODY
        self.since = time.monotonic()
        head = check_head(parser, self.url, self.headers, self.limits)
        self.scope = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": parser.get_http_version(),
            "method": parser.get_method().decode("ascii"),
            "scheme": self.server.scheme,
            "path": head.path,
            "raw_path": head.raw_path,
            "query_string": head.query,
            "root_path": "",
            "headers": self.headers,
            "client": self.client,
            "server": self.server_address,
        }
        if self.server.state:
            self.scope["state"] = self.server.state.copy()
        if head.expects_continue and self.running is None and not self.pending:
            assert self.transport is not None
            self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.limits.max_body:
            self.body = []
            raise Refused(413, f"the request body may be at most {self.limits.max_body} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        keep_alive = parser.should_keep_alive() and not self.server.stopping and not parser.should_upgrade()
        size = len(self.url) + self.header_bytes + self.body_size
        request = Request(self.scope, b"".join(self.body), keep_alive, size)
        self.scope = None
        self.body = []
        self.completed += 1
        self.phase = _IDLE
        self.since = time.monotonic()
        if self.running is None and not self.pending and not self.write_paused_at:
            self._run(request)
        else:
            self.pending.append(request)
            self.buffered += size
            self._flow()

    # -- clocks ------------------------------------------------------------------------------------------

    def check_clocks(self, now: float) -> None:
        """Enforce the phase's clock at ``now`` (called a few times a second by the server)."""
        if self.lost:
            return
        limits = self.limits
        if self.write_paused_at and now - self.write_paused_at > limits.send_timeout:
            self.abort()  # the client reads none of its answers: nothing more can reach it
            return
        phase = self.phase
        if phase == _LINGER:
            if now - self.since > LINGER:
                self.close()
        elif not self.reading or self.refused:
            return  # the server paused reading: the client is not to blame
        elif phase == _IDLE:
            if self.running is None and not self.pending and now - self.since > limits.keep_alive_timeout:
                self.close()
        elif phase in (_HEAD, _WAIT):
            if now - self.since > limits.header_timeout:
                self.refuse(408, f"the request's headers did not arrive within {limits.header_timeout:g} seconds")
        else:
            late = now - self.since - limits.header_timeout
            if late > 0 and self.body_size < limits.min_body_rate * late:
                self.refuse(408, f"the request body arrived slower than {limits.min_body_rate} bytes per second")

    # -- answering -----------------------------------------------------------------------------------------

    def _run(self, request: Request) -> None:
        assert self.transport is not None
        self.buffered -= request.size
        if request.scope is None:
            self.transport.write(request.refusal)
            self._linger()
            return
        exchange = Exchange(self, request)
        self.running = exchange
        exchange.task = asyncio.get_running_loop().create_task(exchange.run())

    def finished(self, keep_alive: bool) -> None:
        """The running request is answered: go on with the next, or close."""
        self.running = None
        if self.phase == _IDLE:
            self.since = time.monotonic()
        if not keep_alive or self.closing:
            self.close()
            return
        if self.pending and not self.write_paused_at:
            self._run(self.pending.popleft())
        self._flow()

    def _flow(self) -> None:
        """Read while answers keep up and little waits; pause reading otherwise (and resume once they do)."""
        if self.lost or self.refused or self.transport is None:
            return
        wanted = (
            not self.write_paused_at
            and len(self.pending) < MAX_PIPELINED
            and self.buffered + self.body_size <= self.limits.max_connection_memory
        )
        if wanted and not self.reading:
            self.reading = True
            if self.phase != _IDLE:  # the client's clock restarts: it could not send while we did not read
                self.since = time.monotonic()
            self.transport.resume_reading()
        elif not wanted and self.reading:
            self.reading = False
            self.transport.pause_reading()

    def refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` once the requests read before are answered, then close; parse nothing more."""
        if self.refused or self.lost:
            return
        self.server.refused[status] += 1
        self.refused = True
        request = Request(None, b"", False, 0, refusal(status, detail))
        if self.running is None and not self.pending:
            self._run(request)
        else:
            self._stop_reading()
            self.pending.append(request)

    def _stop_reading(self) -> None:
        self.refused = True
        if self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()

    def _linger(self) -> None:
        """After a refusal: end our side, drop what the client still sends, close within ``LINGER`` seconds."""
        transport = self.transport
        assert transport is not None
        self.closing = True
        self.refused = True
        self.phase = _LINGER
        self.since = time.monotonic()
        if not transport.can_write_eof():  # TLS: no half-close
            transport.close()
            return
        transport.write_eof()
        if not self.reading:
            self.reading = True
            transport.resume_reading()

    def shut_down(self) -> None:
        """The server stops: close now if idle, else after the running request (which then says so)."""
        self.closing = True
        if self.running is not None:
            self.running.keep_alive = False
        elif not self.pending:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.closing = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
