"""Hostile clients against a real ``citadel serve examples.shop:app`` (Citadel's server, one worker, SQLite), over raw
sockets: each limit of ``citadel.http.server.Limits`` refuses what goes beyond it with the documented answer,
memory stays bounded, and a well-formed request on a new connection is still answered afterwards.

The server runs with short clocks (one second for headers and idle connections, two for a client that reads
nothing) so that the tests of the clocks take seconds; the sizes keep their defaults.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import Served, closed_within, read_all, send_until_refused, serving, source, status_of

pytestmark = pytest.mark.slow

PER_CLIENT = 40
OPTIONS = (
    "--header-timeout", "1", "--keep-alive-timeout", "1", "--send-timeout", "2", "--min-body-rate", "1000",
    "--max-connections-per-client", str(PER_CLIENT),
)  # fmt: skip
REGISTER = b'{"email": "mallory@example.com", "name": "Mallory"}'


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("hostile"), *OPTIONS) as running:
        yield running


@pytest.fixture(autouse=True)
def still_answers(served: Served) -> Iterator[None]:
    """After every probe, the server answers a well-formed request on a new connection."""
    yield
    assert served.healthy(), served.server.log()


def test_a_request_line_that_never_ends_gets_414_and_bounded_memory(served: Served) -> None:
    before = served.rss_kb()
    with served.connect() as sock:
        sent, answer = send_until_refused(sock, b"GET /", b"a" * 65536, 16 << 20)
    assert status_of(answer) == 414, answer[:200]
    assert b"application/problem+json" in answer
    assert served.rss_kb() - before < 8 * 1024, f"sent {sent} bytes"


def test_five_thousand_headers_get_431(served: Served) -> None:
    headers = b"".join(b"x-h%d: v\r\n" % i for i in range(5000))
    with served.connect() as sock:
        _, answer = send_until_refused(sock, b"GET /health HTTP/1.1\r\nhost: shop\r\n" + headers + b"\r\n", b"", 1)
    assert status_of(answer) == 431


def test_more_header_lines_than_the_limit_get_431_even_when_small(served: Served) -> None:
    headers = b"".join(b"x%d: v\r\n" % i for i in range(101))  # about 800 bytes: only the count is over
    with served.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: shop\r\n" + headers + b"\r\n")
        assert status_of(read_all(sock)) == 431


def test_a_header_value_larger_than_the_header_limit_gets_431_while_it_is_still_arriving(served: Served) -> None:
    with served.connect() as sock:
        _, answer = send_until_refused(sock, b"GET /health HTTP/1.1\r\nx-big: ", b"v" * 4096, 8 << 20)
    assert status_of(answer) == 431, answer[:200]


def test_an_8_mib_correlation_id_is_refused_and_nothing_is_stored(served: Served) -> None:
    size = served.store.stat().st_size
    head = b"POST /users/register-user HTTP/1.1\r\nhost: shop\r\ncontent-length: %d\r\nx-correlation-id: " % len(
        REGISTER
    )
    with served.connect() as sock:
        _, answer = send_until_refused(sock, head, b"c" * 65536, 8 << 20)
    assert status_of(answer) == 431
    assert served.store.stat().st_size - size < 64 * 1024


def test_slowloris_connections_are_closed_with_408_at_the_header_deadline(served: Served) -> None:
    socks = [served.connect(address) for address in [source() for _ in range(10)] for _ in range(30)]
    try:
        for sock in socks:
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: shop\r\n")
        started = time.monotonic()
        answers: list[int] = []
        open_socks = list(socks)
        while open_socks and time.monotonic() - started < 5.0:
            for sock in list(open_socks):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(b"x-dribble: 1\r\n")
            time.sleep(0.3)
            for sock in list(open_socks):
                closed, answer = closed_within(sock, 0.01)
                if closed:
                    open_socks.remove(sock)
                    answers.append(status_of(answer))
        assert not open_socks, f"{len(open_socks)} of 300 dribbling connections still open after 5 s"
        assert answers.count(408) >= 290, sorted(set(answers))  # a rare reset may hide an answer
    finally:
        for sock in socks:
            sock.close()


def test_a_body_slower_than_the_minimum_rate_gets_408(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"POST /users/register-user HTTP/1.1\r\nhost: shop\r\ncontent-length: 100000\r\n\r\n")
        started = time.monotonic()
        closed = False
        answer = b""
        while not closed and time.monotonic() - started < 6.0:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"x" * 10)
            closed, received = closed_within(sock, 0.3)
            answer += received
    assert closed
    assert status_of(answer) == 408


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: shop\r\n\r\n")
        closed, answer = closed_within(sock, 4.0)
    assert status_of(answer) == 200
    assert closed


def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(served: Served) -> None:
    with served.connect() as sock:
        closed, answer = closed_within(sock, 4.0)
    assert closed
    assert status_of(answer) == 408


def test_connections_beyond_the_limit_per_client_address_get_429(served: Served) -> None:
    address = source()
    socks = [served.connect(address) for _ in range(PER_CLIENT + 1)]
    try:
        with served.connect() as other:  # another address is not affected
            other.sendall(b"GET /health HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n")
            assert status_of(read_all(other)) == 200
        # The kernel spreads connections over the worker's listening sockets, so which one is refused varies:
        # one gets 429 at once, the others are admitted (and, sending nothing, get 408 at the header deadline).
        answers = [read_all(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    statuses = sorted(status_of(answer) for answer in answers)
    assert statuses == [408] * PER_CLIENT + [429]
    assert b"retry-after: 1" in next(answer for answer in answers if status_of(answer) == 429)


def test_a_client_pipelining_without_reading_is_cut_off_with_bounded_memory(served: Served) -> None:
    before = served.rss_kb()
    request = b"GET /schema/openapi.json HTTP/1.1\r\nhost: shop\r\n\r\n"
    with served.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        started = time.monotonic()
        while time.monotonic() - started < 3.0:  # as much as the server will take
            try:
                sock.send(request * 64)
            except BlockingIOError:
                time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                break
        grown = served.rss_kb() - before
        sock.setblocking(True)
        closed, _ = closed_within(sock, 10.0)
    assert grown < 32 * 1024, f"the server grew by {grown} KiB"
    assert closed


def test_a_declared_body_over_the_limit_gets_413_without_100_continue(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(
            b"POST /users/register-user HTTP/1.1\r\nhost: shop\r\ncontent-length: 2000000\r\n"
            b"expect: 100-continue\r\n\r\n"
        )
        answer = read_all(sock)
    assert status_of(answer) == 413
    assert b"100 Continue" not in answer


def test_a_chunked_trailer_never_becomes_a_request_header(served: Served) -> None:
    body = b"%x\r\n%s\r\n0\r\nauthorization: Bearer forged\r\n\r\n" % (len(REGISTER), REGISTER)
    with served.connect() as sock:
        sock.sendall(
            b"POST /users/register-user HTTP/1.1\r\nhost: shop\r\ntransfer-encoding: chunked\r\n"
            b"connection: close\r\n\r\n" + body
        )
        answer = read_all(sock)
    assert status_of(answer) == 200, answer  # anonymous may register; a forged token would have been 401


@pytest.mark.parametrize("path", [b"/%ff", b"/%zz", b"/users/%c3%28", b"/%"])
def test_a_path_with_broken_percent_encoding_or_utf8_gets_400(served: Served, path: bytes) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nhost: shop\r\n\r\n")
        answer = read_all(sock)
    assert status_of(answer) == 400, answer


def test_the_server_process_survives_every_probe(served: Served, tmp_path: Path) -> None:
    assert served.healthy()
    assert "Traceback" not in served.server.log()


def test_a_min_position_of_5000_digits_gets_422(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /content/item?content_id=x&min_position=" + b"9" * 5000 + b" HTTP/1.1\r\nhost: shop\r\n\r\n")
        answer = sock.recv(65536)
    assert status_of(answer) == 422
    assert b"min_position" in answer


def test_an_anonymous_wait_far_ahead_is_refused_before_it_waits(served: Served) -> None:
    with served.connect(timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(
            b"GET /billing/invoice?order_id=x&min_position=999999999 HTTP/1.1\r\nhost: shop\r\ncitadel-wait: 20\r\n\r\n"
        )
        answer = sock.recv(65536)  # the socket's timeout of 5 s fails the test long before the 20 s wait
    assert status_of(answer) == 401, (answer, time.monotonic() - started)
