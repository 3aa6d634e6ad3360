"""``citadel serve`` behind a real HAProxy (Debian's package, started here on a free port): with the proxy among
``trusted_proxies``, each client behind it has its own rate-limit bucket, found from ``X-Forwarded-For``; a client
cannot choose its bucket by sending that header itself, through the proxy or straight to the server."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import Served, read_all, serving, source, status_of
from test_serve_process import free_port

pytestmark = pytest.mark.slow

BURST = 5
LIMITS = {
    "CITADEL_RATE_LIMIT_RATE": "0.001",
    "CITADEL_RATE_LIMIT_BURST": str(BURST),
    "CITADEL_RATE_LIMIT_ADDRESS_RATE": "100000",
    "CITADEL_RATE_LIMIT_ADDRESS_BURST": "100000",
}
CONFIG = """
global
    maxconn 256
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option forwardfor
frontend clients
    bind 127.0.0.1:{port}
    default_backend citadel
backend citadel
    server citadel 127.0.0.1:{upstream}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("proxied"), "--trusted-proxies", "127.0.0.1", **LIMITS) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """HAProxy in front of the server; its port."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.fail("these tests need HAProxy: apt-get install haproxy (.ci/run installs it)")
    port = free_port()
    folder = tmp_path_factory.mktemp("haproxy")
    config, log = folder / "haproxy.cfg", folder / "haproxy.log"
    config.write_text(CONFIG.format(port=port, upstream=served.port))
    with log.open("wb") as output:
        process = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"HAProxy did not start: {log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ask(port: int, address: str, *headers: bytes) -> int:
    """An anonymous query on a new connection from ``address`` to ``port``; its status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(address, 0)) as sock:
        extra = b"".join(header + b"\r\n" for header in headers)
        sock.sendall(
            b"GET /content/item?content_id=none HTTP/1.1\r\nhost: shop\r\n" + extra + b"connection: close\r\n\r\n"
        )
        return status_of(read_all(sock))


def test_each_client_behind_the_proxy_has_its_own_bucket(proxy: int) -> None:
    first, second = source(), source()
    assert [ask(proxy, first) for _ in range(BURST + 1)] == [404] * BURST + [429]
    assert ask(proxy, second) == 404  # the proxy's other clients are not limited by the first one


def test_a_client_cannot_pick_its_bucket_with_a_forwarded_header_through_the_proxy(proxy: int) -> None:
    client = source()
    statuses = [ask(proxy, client, b"x-forwarded-for: 203.0.113.%d" % n) for n in range(BURST + 2)]
    assert statuses == [404] * BURST + [429, 429]


def test_a_client_cannot_pick_its_bucket_with_a_forwarded_header_sent_straight_to_the_server(served: Served) -> None:
    client = source()
    statuses = [
        ask(served.port, client, b"x-forwarded-for: 203.0.113.%d" % n, b"forwarded: for=198.51.100.%d" % n)
        for n in range(BURST + 2)
    ]
    assert statuses == [404] * BURST + [429, 429]


def test_ipv6_clients_behind_the_proxy_are_counted_by_their_64(served: Served) -> None:
    # The test speaks as the trusted proxy (from 127.0.0.1): five hosts of one /64, then one of another.
    hosts = [b"2001:db8:7:1::%x" % n for n in range(1, BURST + 2)]
    statuses = [ask(served.port, "127.0.0.1", b"x-forwarded-for: " + host) for host in hosts]
    assert statuses == [404] * BURST + [429]
    assert ask(served.port, "127.0.0.1", b"x-forwarded-for: 2001:db8:7:2::1") == 404
