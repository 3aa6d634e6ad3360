"""Flow control and admission of Citadel's server, in process over loopback TCP: a client that reads nothing, a
client that sends more than the server will hold, trailers, and the connection limits per client address."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from citadel.http.server import HttpServer, Limits, bind
from tests.http.server_harness import echo

BIG = b"x" * (1 << 20)


@contextlib.asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[tuple[HttpServer, int]]:
    sock = bind("127.0.0.1", 0)
    server = HttpServer(app, **options)
    await server.start(sock)
    try:
        yield server, sock.getsockname()[1]
    finally:
        await server.stop()
        sock.close()


def lifespan_or(answer: Any) -> Any:
    """An app that acknowledges the lifespan and runs ``answer(scope, receive, send)`` for each request."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await answer(scope, receive, send)

    return app


async def tiny_window(port: int, address: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose receive buffer is small, so that unread answers pile up on the server's side."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((address, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def test_no_next_pipelined_request_starts_while_the_client_reads_none_of_its_answers() -> None:
    calls = 0

    async def big(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal calls
        calls += 1
        await receive()
        headers = [(b"content-length", b"%d" % len(BIG))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BIG})

    async with serving(lifespan_or(big)) as (server, port):
        reader, writer = await tiny_window(port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n" * 50)
        await asyncio.sleep(0.5)
        started_unread = calls
        (connection,) = server.connections
        assert not connection.reading
        assert started_unread < 10, started_unread
        received = 0
        while received < 50 * len(BIG):  # once the client reads, every answer comes
            received += len(await asyncio.wait_for(reader.read(1 << 20), 5))
        assert calls == 50
        writer.close()


async def test_a_client_that_reads_nothing_is_dropped_after_the_send_timeout() -> None:
    async def big(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:  # a stream without end: only the client's reading would let it go on
            await send({"type": "http.response.body", "body": BIG, "more_body": True})

    async with serving(lifespan_or(big), limits=Limits(send_timeout=0.5)) as (server, port):
        _, writer = await tiny_window(port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        for _ in range(60):
            await asyncio.sleep(0.05)
            if not server.connections:
                break
        assert not server.connections
        writer.close()


async def test_reading_stops_while_the_requests_waiting_hold_more_than_the_connection_memory() -> None:
    go = asyncio.Event()
    answered = 0

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal answered
        await receive()
        await go.wait()
        answered += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limits = Limits(max_body=100_000, max_connection_memory=130_000)
    request = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 90000\r\n\r\n" + b"b" * 90_000
    async with serving(lifespan_or(slow), limits=limits) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request * 6)
        await asyncio.sleep(0.5)
        (connection,) = server.connections
        assert not connection.reading
        assert connection.buffered + connection.body_size <= 130_000 + 256 * 1024  # one read past the mark at most
        go.set()
        answers = b""
        while answers.count(b"HTTP/1.1 204") < 6:
            answers += await asyncio.wait_for(reader.read(65536), 5)
        assert answered == 6
        writer.close()


async def test_chunked_trailers_are_dropped_before_the_app_sees_the_headers() -> None:
    async with serving(echo) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /t HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            b"2\r\nhi\r\n0\r\nx-test: from-the-trailer\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert b'"x_test": ""' in answer
    assert b'"body": "hi"' in answer


async def test_a_trusted_proxy_is_not_limited_per_client_address_and_others_are() -> None:
    limits = Limits(max_connections_per_client=2)
    async with serving(echo, limits=limits, trusted_proxies=["127.0.0.1"]) as (server, port):
        proxied = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        direct = [await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.7.7", 0)) for _ in range(3)]
        await asyncio.sleep(0.2)
        assert len(server.connections) == 6
        assert dict(server.per_client) == {"127.0.7.7": 2}
        assert server.refused[429] == 1
        for _, writer in proxied + direct:
            writer.close()
        await asyncio.sleep(0.2)
        assert not server.per_client
