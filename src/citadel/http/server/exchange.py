"""One request and its answer: the ASGI ``receive`` and ``send`` the application is called with.

The request's body has been read whole before the application runs (it is bounded by ``max_body``), so
``receive`` hands it over in one message. ``send`` frames the answer: ``content-length`` when the application
gives one, chunks otherwise (or the connection's close, for HTTP/1.0). A streamed answer waits while the
client reads too slowly, so an application cannot make the server buffer what the client does not take.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from citadel.http.server.lifespan import Message
from citadel.http.server.protocol import Channel
from citadel.http.server.responses import CHUNKED_END, refusal, status_line

__all__ = ["ClientDisconnected", "Exchange", "Request"]

log = logging.getLogger("citadel.http.server")


class ClientDisconnected(OSError):
    """Raised by ``send`` when the application streams on to a client that is gone (as ASGI 2.4 asks)."""


class Request:
    """One request read whole, waiting for (or being answered by) the application; or, without a scope, a
    refusal to write in its turn."""

    __slots__ = ("body", "keep_alive", "refusal", "scope", "size")

    def __init__(self, scope: Message | None, body: bytes, keep_alive: bool, size: int, answer: bytes = b"") -> None:
        self.scope = scope
        self.body = body
        self.keep_alive = keep_alive
        self.size = size  # bytes it holds while it waits: what ``max_connection_memory`` counts
        self.refusal = answer


class Exchange:
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

    def __init__(self, connection: Channel, request: Request) -> None:
        self.connection = connection
        self.request = request
        self.body: bytes | None = request.body
        self.keep_alive = request.keep_alive
        self.started = False
        self.done = False
        self.chunked = False
        self.head = b""
        self.disconnect: asyncio.Event | None = None  # set when the client goes or the answer is complete
        self.task: asyncio.Task[None] | None = None  # kept here: the loop holds tasks weakly

    def disconnected(self) -> None:
        self.keep_alive = False
        if self.disconnect is not None:
            self.disconnect.set()

    async def run(self) -> None:
        """Call the application; answer 500 if it fails before answering; hand the connection back."""
        connection = self.connection
        scope = self.request.scope
        assert scope is not None
        try:
            await connection.server.app(scope, self.receive, self.send)
        except ClientDisconnected:  # it streamed to a client that had gone: nothing to answer, nothing failed
            self.done = True
        except Exception:  # the application failed: answer 500 if nothing was sent, else cut the answer short
            log.exception("the application failed on %s %r", scope["method"], scope["path"])
            self._fail("an unexpected error occurred")
        except BaseException:  # cancelled (the server stops): close, whatever was sent
            self.keep_alive = False
            self.done = True
            raise
        finally:
            if not self.done:  # the application returned without finishing its response
                log.error("the application did not complete its answer to %s %r", scope["method"], scope["path"])
                self._fail("the application sent no response")
            connection.finished(self.keep_alive)

    def _fail(self, detail: str) -> None:
        self.keep_alive = False
        connection = self.connection
        if not self.started and not connection.lost and connection.transport is not None:
            connection.transport.write(refusal(500, detail))
        self.done = True

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
            if more:
                raise ClientDisconnected("the client has gone")
            return
        if self.chunked:
            out = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more:
                out += CHUNKED_END
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
        lines = [status_line(status), self.connection.server.date]
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
