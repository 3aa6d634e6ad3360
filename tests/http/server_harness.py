"""A harness for the tests of Citadel's own HTTP/1.1 server: small ASGI apps, a server on a free port, and a
client that writes raw bytes and parses the raw answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from citadel.http.server import HttpServer, Limits, bind

Scope = dict[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """Answers with what it saw: method, path, raw path, query, body, a header, the lifespan's state."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    message = await receive()
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(0.2)
    if path == "/fail":
        raise RuntimeError("the application broke")
    if path == "/stream":  # no content-length: the server frames it (chunked)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/wait-for-disconnect":
        seen = await receive()
        disconnects.append(seen["type"])
        return
    body = json.dumps(
        {
            "method": scope["method"],
            "path": path,
            "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(),
            "body": message["body"].decode(),
            "more_body": message["more_body"],
            "scheme": scope["scheme"],
            "http_version": scope["http_version"],
            "x_test": dict(scope["headers"]).get(b"x-test", b"").decode(),
            "state": scope.get("state", {}).get("greeting"),
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


disconnects: list[str] = []


@contextlib.asynccontextmanager
async def serving(app: App = echo, **limits: Any) -> AsyncIterator[tuple[HttpServer, int]]:
    """Serve ``app`` on a free loopback port with ``Limits(**limits)`` until the block ends."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = HttpServer(app, limits=Limits(**limits))
    await server.start(sock)
    try:
        yield server, port
    finally:
        await server.stop()
        sock.close()


async def exchange(port: int, raw: bytes, *, until_closed: bool = True, timeout: float = 5.0) -> bytes:
    """Write ``raw`` on a new connection and return what comes back (until the server closes it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    try:
        if until_closed:
            return await asyncio.wait_for(reader.read(), timeout)
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def responses(raw: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Split a stream of HTTP/1.1 responses framed by content-length or chunked encoding."""
    found = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        if status == 100:
            found.append((status, headers, b""))
            continue
        if headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                size_line, _, raw = raw.partition(b"\r\n")
                size = int(size_line, 16)
                chunk, raw = raw[:size], raw[size + 2 :]
                if size == 0:
                    break
                body += chunk
        else:
            length = int(headers.get(b"content-length", b"0"))
            body, raw = raw[:length], raw[length:]
        found.append((status, headers, body))
    return found
