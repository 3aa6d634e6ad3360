"""Processes: serving in this one until a signal, or in forked workers that a supervisor replaces when they die."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from citadel.http.server.core import HttpServer
from citadel.http.server.lifespan import ASGIApp
from citadel.tuning import tune_for_serving

__all__ = ["new_event_loop", "run_until_stopped", "run_workers", "serve_forever"]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


Slot = tuple[int, int]
"""A serving worker's place among its node's workers: ``(index, count)``."""


def serve_forever(
    make_app: Callable[[Slot | None], ASGIApp],
    socks: Sequence[socket.socket],
    *,
    slot: Slot | None = None,
    ssl_context: ssl.SSLContext | None = None,
    backlog: int = 2048,
    started: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """Serve the app ``make_app`` builds on ``socks`` (bound) in this process until SIGTERM or SIGINT;
    ``make_app`` is given ``slot``, this worker's place among the node's workers (None: the only process).

    Once the application has started (then ``started`` is called), the garbage collector is tuned for serving
    (``citadel.tuning``): this process is the server's. ``options`` go to ``HttpServer``.
    """
    server: HttpServer | None = None

    async def start() -> None:  # the app is built on the loop that serves it
        nonlocal server
        server = HttpServer(make_app(slot), tls=ssl_context is not None, **options)
        await server.start(*socks, ssl_context=ssl_context, backlog=backlog)

    async def stop() -> None:
        assert server is not None
        await server.stop()

    run_until_stopped(start, stop, started)


def run_until_stopped(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    started: Callable[[], None] | None = None,
) -> None:
    """This process's life on a new event loop: ``start``, then wait for SIGTERM or SIGINT, then ``stop``.

    Once started (then ``started`` is called), the garbage collector is tuned for serving (``citadel.tuning``).
    """

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await start()
        if started is not None:
            started()
        tune_for_serving()
        await stopping.wait()
        await stop()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())


_FAILED_TO_START = 3
"""Exit status of a worker whose application did not start (the supervisor then stops, as the worker would fail
again)."""


def run_workers(
    workers: int,
    make_app: Callable[[Slot | None], ASGIApp],
    listen: Callable[[], Sequence[socket.socket]],
    *,
    ssl_context: ssl.SSLContext | None = None,
    backlog: int = 2048,
    background: Callable[[Callable[[], None]], None] | None = None,
    exited: Callable[[int], None] | None = None,
    **options: Any,
) -> int:
    """Serve in ``workers`` forked processes; replace a worker that dies; return the exit status.

    Each worker opens its own listening sockets with ``listen`` (``listeners``: the kernel then spreads
    connections evenly, where one shared socket lets the least busy worker take most of them) and builds
    its own app with ``make_app`` after the fork, given its slot ``(index, workers)``. SIGTERM or SIGINT
    stops the workers gracefully, then this returns 0. A worker whose application fails to start stops them
    all (status 3).

    ``background``, when given, runs in one more forked process that serves no requests (the application's
    consumers, say), replaced like a worker when it dies; it calls the function it is given once it has
    started, and returns on SIGTERM. ``exited`` is told the id of each child process that has ended.
    """

    signals = {signal.SIGTERM, signal.SIGINT}

    def child(slot: int | None) -> None:
        serves = slot is not None
        code = 0
        up = False

        def mark() -> None:
            nonlocal up
            up = True

        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
            if slot is not None:
                serve_forever(
                    make_app,
                    listen(),
                    slot=(slot, workers),
                    ssl_context=ssl_context,
                    backlog=backlog,
                    started=mark,
                    **options,
                )
            elif background is not None:
                background(mark)
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt | SystemExit):
                what = "failed" if up else "failed to start"
                kind = "worker" if serves else "background process"
                print(f"Citadel: {kind} {os.getpid()} {what}: {exc}", file=sys.stderr, flush=True)
                code = 1 if up else _FAILED_TO_START
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def spawn(slot: int | None) -> int | None:
        """Fork a worker, or the background process (none once stopping); signals wait until both sides have
        their own handlers."""
        if stopping:
            return None
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child, which never returns
                child(slot)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
        return pid

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(alive):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    alive: dict[int, tuple[float, int | None]] = {}  # pid: when it started, its worker slot (None: background)
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        for slot in [*range(workers), *([None] if background is not None else [])]:
            if (pid := spawn(slot)) is not None:
                alive[pid] = (time.monotonic(), slot)
        while alive:
            try:
                pid, raw = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries os.wait
                continue
            found = alive.pop(pid, None)
            if exited is not None:
                exited(pid)
            if found is None or stopping:
                continue
            started, slot = found
            code = os.waitstatus_to_exitcode(raw)
            if code == _FAILED_TO_START:
                status = _FAILED_TO_START
                stop(signal.SIGTERM, None)
                continue
            kind = "worker" if slot is not None else "background process"
            print(f"Citadel: {kind} {pid} exited with status {code}; starting another", file=sys.stderr, flush=True)
            if time.monotonic() - started < 1.0:
                time.sleep(1.0)  # a worker that dies at once should not be replaced in a tight loop
            if (pid := spawn(slot)) is not None:
                alive[pid] = (time.monotonic(), slot)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status
