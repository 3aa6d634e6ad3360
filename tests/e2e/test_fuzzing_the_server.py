"""Random bytes, request lines, headers and bodies thrown at a real ``citadel serve examples.shop:app`` (hypothesis
draws them): whatever arrives, the server never answers 500, never dies, and answers the next well-formed
request on a new connection.

Each example is written on a new connection, which the client then half-closes: a request left unfinished
ends there instead of waiting for the header deadline.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hostile import Served, pid_alive, read_all, serving
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

ROUTES = [
    b"/users/register-user", b"/orders/create-order", b"/billing/pay-invoice", b"/content/item", b"/orders/order",
    b"/billing/invoice", b"/ready", b"/health", b"/docs", b"/schema/openapi.json", b"/nowhere",
]  # fmt: skip
ODD_TARGETS = [b"*", b"/%ff", b"/%zz", b"/%c3%28", b"/%", b"/%00", b"/..", b"http://shop/health", b"x", b""]
METHODS = [b"GET", b"POST", b"HEAD"]
ODD_METHODS = [b"PUT", b"OPTIONS", b"DELETE", b"CONNECT", b"PRI", b"G\x00T", b"get", b""]
ODD_VERSIONS = [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1 ", b"http/1.1", b"HTTP/1.10", b""]
NAMES = [
    b"content-length", b"transfer-encoding", b"authorization", b"x-correlation-id", b"idempotency-key",
    b"citadel-wait", b"expect", b"connection", b"upgrade", b"host", b"content-type", b"forwarded",
    b"x-forwarded-for", b"cookie",
]  # fmt: skip
ODD_NAMES = [b"x y", b"", b"x\x00", b"content-length ", b"\xff"]
VALUES = [
    b"chunked", b"100-continue", b"close", b"keep-alive", b"websocket", b"Bearer x.y.z", b"-1", b"9" * 5000, b"nan",
    b"1e9", b"inf", b"\xff\xfe", b"a" * 300, b"%ff",
]  # fmt: skip
PARAMETERS = [b"order_id", b"invoice_id", b"content_id", b"user_id", b"min_position", b"x", b"%zz", b""]
PARAMETER_VALUES = [b"%ff", b"%", b"9" * 5000, b"orders:5", b"users:99", b"-3", b"1e9", b"%c3%28", b"+", b"a%2"]
BODIES = [b"{}", b'{"email": "a@b.c", "name": "x"}', b'{"email": 1}', b"[", b"null", b'{"items": [{}]}']


def _either(draw: st.DrawFn, usual: list[bytes], odd: st.SearchStrategy[bytes], odds: int = 4) -> bytes:
    """Mostly one of the usual values, one time in ``odds`` an odd one: most examples are nearly well-formed,
    so that what is odd about them reaches the part of the server or application that must refuse it."""
    return draw(odd) if draw(st.integers(1, odds)) == 1 else draw(st.sampled_from(usual))


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A request that may be well-formed, or broken anywhere."""
    method = _either(draw, METHODS, st.sampled_from(ODD_METHODS) | st.binary(max_size=8), odds=8)
    target = _either(draw, ROUTES, st.sampled_from(ODD_TARGETS) | st.binary(max_size=24), odds=5)
    pairs = [
        (
            _either(draw, PARAMETERS, st.binary(max_size=8), odds=8),
            _either(draw, [*PARAMETER_VALUES, b"01a2b3", b"5", b""], st.binary(max_size=24), odds=6),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    if pairs:
        target += b"?" + b"&".join(name + b"=" + value for name, value in pairs)
    version = _either(draw, [b"HTTP/1.1", b"HTTP/1.0"], st.sampled_from(ODD_VERSIONS), odds=10)
    headers = [
        (
            _either(draw, NAMES, st.sampled_from(ODD_NAMES) | st.binary(max_size=12), odds=8),
            _either(draw, VALUES, st.binary(max_size=40), odds=4),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    body = _either(draw, BODIES, st.binary(max_size=512))
    if draw(st.integers(1, 4)) > 1:  # usually framed right
        headers.append((b"content-length", b"%d" % len(body)))
    head = method + b" " + target + b" " + version + b"\r\nhost: shop\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("fuzz"), "--max-connections-per-client", "0") as running:
        yield running


def throw(served: Served, data: bytes) -> bytes:
    """Write ``data`` on a new connection, half-close it, and return the whole answer."""
    with served.connect(timeout=15) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_all(sock)


def assert_no_500(served: Served, data: bytes) -> None:
    answer = throw(served, data)
    statuses = [int(line.split(b" ", 2)[1]) for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert all(status < 500 or status in (503, 505) for status in statuses), (data[:300], answer[:500])
    assert pid_alive(served.pid)
    assert served.healthy(), served.server.log()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_get_a_500(served: Served, data: bytes) -> None:
    assert_no_500(served, data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=requests())
def test_random_requests_never_get_a_500(served: Served, data: bytes) -> None:
    assert_no_500(served, data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.lists(requests(), min_size=2, max_size=5))
def test_random_pipelined_requests_never_get_a_500(served: Served, data: list[bytes]) -> None:
    assert_no_500(served, b"".join(data))
