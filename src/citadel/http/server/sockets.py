"""Listening sockets: one bound address, or several sockets on one port that the kernel balances."""

from __future__ import annotations

import socket
from pathlib import Path

__all__ = ["accept_queues", "bind", "listeners"]


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
