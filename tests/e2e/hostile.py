"""A hostile client's tools: raw sockets to a real ``citadel serve`` process, each test from a loopback address
of its own (all of 127.0.0.0/8 reaches the server), so that per-address limits of one test never touch another.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from test_serve_process import CITADEL, ROOT, Server, environment, free_port, stop, wait_until_healthy

_sources = itertools.count(2)


def source() -> str:
    """A loopback address no other test of this run uses."""
    n = next(_sources)
    return f"127.0.{n // 250}.{n % 250 + 2}"


@dataclass(frozen=True)
class Served:
    """A running ``citadel serve``: its address, process id, log and store."""

    server: Server
    pid: int
    host: str
    port: int
    store: Path

    def rss_kb(self) -> int:
        """The server process's resident memory."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def connect(self, address: str | None = None, timeout: float = 10.0) -> socket.socket:
        """A new TCP connection to the server, from ``address`` (a loopback address of its own by default)."""
        where = (address or source(), 0)
        return socket.create_connection((self.host, self.port), timeout=timeout, source_address=where)

    def healthy(self) -> bool:
        """Whether a well-formed request on a new connection is answered 200."""
        with self.connect() as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n")
            return read_all(sock).startswith(b"HTTP/1.1 200 ")


@contextlib.contextmanager
def serving(folder: Path, *options: str, **env: str) -> Iterator[Served]:
    """Run ``citadel serve examples.shop:app`` on SQLite with ``options`` until the block ends."""
    port = free_port()
    store = folder / "shop.db"
    server = Server(f"http://127.0.0.1:{port}", folder / f"server-{port}.log")
    command = [CITADEL, "serve", "examples.shop:app", "--port", str(port), "--store", f"sqlite:///{store}", *options]
    with server.output.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment(folder) | env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_healthy(process, server)
        yield Served(server, process.pid, "127.0.0.1", port, store)
    finally:
        stop(process)


def read_all(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """What the server sends until it closes the connection (at most ``limit`` bytes; a reset ends it too)."""
    chunks: list[bytes] = []
    size = 0
    with contextlib.suppress(ConnectionResetError):
        while size < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    """The status code of the first answer in ``answer`` (0 when there is none)."""
    if not answer.startswith(b"HTTP/1."):
        return 0
    return int(answer.split(b" ", 2)[1])


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closes ``sock`` within ``seconds``, and what it sent before."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    received = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def send_until_refused(sock: socket.socket, first: bytes, filler: bytes, most: int) -> tuple[int, bytes]:
    """Send ``first``, then ``filler`` over and over (at most ``most`` bytes in all) until the server answers
    or closes; return the bytes sent and the answer."""
    sock.setblocking(False)
    sent = 0
    pending = first
    answer = b""
    deadline = time.monotonic() + 30
    while sent < most and time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
        try:
            sent += sock.send(pending)
            pending = filler
        except BlockingIOError:
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            break
    sock.setblocking(True)
    sock.settimeout(5)
    with contextlib.suppress(TimeoutError):
        answer += read_all(sock, 65536)
    return sent, answer


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
