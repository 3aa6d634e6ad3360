"""Hostile clients for ``bench/http_server.py``: the same six probes, sent over raw sockets from the bench process
to each server before its load run, so that the load then runs on a server that has already met them.

The probes: a request line that never ends, 5,000 header lines, a target that is not UTF-8 (``/%ff``), a chunked
body whose trailer carries credentials, requests pipelined on a connection whose answers are never read (from a
socket with a tiny receive buffer), and slowloris connections that dribble a header line a second. Each is
bounded in time (a probe can never hang the bench) and summed up as a short cell: the status the server answered,
whether it closed the connection, and how much the resident memory of its processes grew meanwhile. After each,
a plain request on a new connection must still get a 200; the cell says when it does not.
"""

from __future__ import annotations

import re
import select
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from machine import tree_rss_kb

HOST = "127.0.0.1"
GET = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
MiB = 1 << 20


class Peer:
    """One raw, non-blocking connection to the server under probe; every wait in it is bounded."""

    def __init__(self, port: int, *, receive_buffer: int = 0) -> None:
        self.sock = socket.socket()
        if receive_buffer:  # set before connecting, so the window the server sees stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(5)
        self.sock.connect((HOST, port))
        self.sock.setblocking(False)
        self.received = bytearray()
        self.closed = False
        """The server closed the connection (an end of stream, a reset, or a failed send)."""

    def read(self) -> None:
        """Take what the socket holds now."""
        try:
            data = self.sock.recv(MiB)
        except BlockingIOError:
            return
        except OSError:
            self.closed = True
            return
        self.closed = not data
        self.received += data

    def send(self, data: bytes, deadline: float, *, reading: bool = True) -> int:
        """Send ``data`` until it is all sent, the server answers or closes (``reading``), or ``deadline``;
        return how many bytes went."""
        view, sent = memoryview(data), 0
        while sent < len(data) and not self.closed and time.monotonic() < deadline:
            if reading and self.received:
                break
            wait = max(0.0, min(0.2, deadline - time.monotonic()))
            readable, writable, _ = select.select([self.sock] if reading else [], [self.sock], [], wait)
            if readable:
                self.read()
            if writable and not self.closed:
                try:
                    sent += self.sock.send(view[sent : sent + 256 * 1024])
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed = True
        return sent

    def status(self, deadline: float) -> int | None:
        """The status of the first answer, waiting for its status line at most until ``deadline``."""
        while b"\r\n" not in self.received and not self.closed and time.monotonic() < deadline:
            if select.select([self.sock], [], [], max(0.0, min(0.2, deadline - time.monotonic())))[0]:
                self.read()
        found = re.match(rb"HTTP/1\.[01] (\d{3})", bytes(self.received[:16]))
        return int(found.group(1)) if found else None

    def closes_within(self, seconds: float) -> bool:
        """Whether the server closes the connection within ``seconds`` (what it sends meanwhile is read)."""
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            if select.select([self.sock], [], [], max(0.0, min(0.2, deadline - time.monotonic())))[0]:
                self.read()
        return self.closed

    def close(self) -> None:
        self.sock.close()


class MemoryWatch:
    """The peak growth of a process tree's resident memory while a probe runs (sampled every 0.1 s)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.baseline = self.peak = tree_rss_kb(root)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.1):
            self.peak = max(self.peak, tree_rss_kb(self.root))

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_kb(self.root))

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 1024


def answered(status: int | None, closed: bool) -> str:
    return f"{status or 'no answer'} {'closed' if closed else 'open'}"


def size(count: int) -> str:
    return f"{count / MiB:.1f} MiB" if count >= MiB else f"{count // 1024} KiB"


def one_shot(port: int, request: bytes, *, budget: float = 10.0) -> str:
    """Send ``request`` (reading any early answer), then report the answer and whether the connection closes."""
    peer = Peer(port)
    try:
        deadline = time.monotonic() + budget
        sent = peer.send(request, deadline)
        status = peer.status(min(deadline, time.monotonic() + 3))
        cell = answered(status, peer.closes_within(1.0))
        return cell if status or sent == len(request) else f"{cell} after {size(sent)}"
    finally:
        peer.close()


def endless_request_line(port: int, total: int = 16 * MiB, budget: float = 20.0) -> str:
    """``GET /aaaa…`` without an end, up to ``total`` bytes, stopping when the server answers or closes."""
    peer = Peer(port)
    try:
        deadline = time.monotonic() + budget
        sent = peer.send(b"GET /", deadline)
        chunk = b"a" * (256 * 1024)
        while sent < total and not peer.closed and not peer.received and time.monotonic() < deadline:
            sent += peer.send(chunk, deadline)
        status = peer.status(min(deadline + 3, time.monotonic() + 3))
        cell = answered(status, peer.closes_within(1.0))
        return cell if status else f"{cell} after {size(sent)}"
    finally:
        peer.close()


def many_headers(port: int, count: int = 5000) -> str:
    lines = b"".join(b"X-Probe-%d: v\r\n" % i for i in range(count))
    return one_shot(port, b"GET / HTTP/1.1\r\nHost: bench\r\n" + lines + b"\r\n")


def undecodable_target(port: int) -> str:
    return one_shot(port, b"GET /%ff HTTP/1.1\r\nHost: bench\r\n\r\n")


def trailer_credentials(port: int) -> str:
    head = b"POST / HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\nTrailer: Authorization\r\n\r\n"
    return one_shot(port, head + b"5\r\nhello\r\n0\r\nAuthorization: Bearer x\r\n\r\n")


def unread_pipeline(port: int, seconds: float = 10.0) -> str:
    """``GET /`` pipelined for ``seconds`` on one connection with a tiny receive buffer, never reading."""
    peer = Peer(port, receive_buffer=4096)
    try:
        started = time.monotonic()
        burst, sent = GET * 512, 0
        while not peer.closed and time.monotonic() - started < seconds:
            sent += peer.send(burst, started + seconds, reading=False)
        closed_after = time.monotonic() - started if peer.closed else None
        status = peer.status(time.monotonic() + 3)
        took = f"took {size(sent)}"
        if closed_after is not None:
            return f"{status or 'no answer'} closed at {closed_after:.0f} s, {took}"
        return f"{answered(status, peer.closed)}, {took}"
    finally:
        peer.close()


def slowloris(port: int, connections: int = 300, seconds: float = 15.0) -> str:
    """``connections`` connections, each sending a request line, then one header line a second, never ending."""
    started = time.monotonic()
    peers: list[Peer] = []
    refused = 0
    for _ in range(connections):
        try:
            peers.append(Peer(port))
        except OSError:
            refused += 1
    closed_at: dict[Peer, float] = {}
    line = 0
    while time.monotonic() - started < seconds:
        tick = time.monotonic() + 1.0
        for peer in peers:
            if not peer.closed:
                peer.send(b"GET / HTTP/1.1\r\nHost: bench\r\n" if line == 0 else b"X-Drip-%d: x\r\n" % line, tick)
        line += 1
        while (now := time.monotonic()) < min(tick, started + seconds):
            open_socks = {peer.sock: peer for peer in peers if not peer.closed}
            if not open_socks:
                break
            for sock in select.select(list(open_socks), [], [], max(0.0, min(tick, started + seconds) - now))[0]:
                open_socks[sock].read()
        for peer in peers:
            if peer.closed and peer not in closed_at:
                closed_at[peer] = time.monotonic() - started
    statuses = Counter(peer.status(0.0) for peer in peers)
    for peer in peers:
        peer.close()
    status = max(statuses, key=lambda s: statuses[s]) if statuses else None
    still_open = connections - refused - len(closed_at)
    when = f" ~{statistics.median(closed_at.values()):.0f} s" if closed_at else ""
    closed = f"closed{when}, " if closed_at else ""
    cell = f"{status or 'no answer'} {closed}{still_open}/{connections} open"
    return cell + (f", {refused} refused" if refused else "")


class Probe(NamedTuple):
    key: str
    label: str
    run: Callable[[int], str]


PROBES = [
    Probe("request_line", "endless request line", endless_request_line),
    Probe("headers", "5,000 headers", many_headers),
    Probe("bad_target", "GET /%ff", undecodable_target),
    Probe("trailer", "trailer Authorization", trailer_credentials),
    Probe("pipeline", "pipelined, unread 10 s", unread_pipeline),
    Probe("slowloris", "slowloris 300 x 15 s", slowloris),
]


def still_serves(port: int) -> bool:
    """Whether a plain ``GET /`` on a new connection gets a 200 within a few seconds."""
    try:
        peer = Peer(port)
    except OSError:
        return False
    try:
        peer.send(GET, time.monotonic() + 3)
        return peer.status(time.monotonic() + 5) == 200
    finally:
        peer.close()


def run_probes(port: int, server_pid: int) -> dict[str, str]:
    """Every probe against the server listening on ``port`` (``server_pid`` is its process tree's root); return a
    cell per probe, plus the tree's resident memory before and after them all."""
    cells = {"rss": f"{tree_rss_kb(server_pid) / 1024:.0f} MB"}
    for probe in PROBES:
        with MemoryWatch(server_pid) as memory:
            try:
                cell = probe.run(port)
            except OSError as exc:
                cell = f"error: {exc.strerror or exc}"
        cell += f" +{memory.growth_mb:.1f} MB"
        if not still_serves(port):
            cell += " then DOWN"
        cells[probe.key] = cell
    cells["rss"] += f" -> {tree_rss_kb(server_pid) / 1024:.0f} MB"
    return cells
