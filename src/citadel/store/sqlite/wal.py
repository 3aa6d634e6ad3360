"""Copying SQLite's write-ahead log back into the database file, from a thread of its own.

A commit that overwrites or deletes rows zeroes their old bytes in the page it writes (``secure_delete``), but
the log keeps the older images of that page, with the old bytes, until it is copied back and started over. So
after a commit that forgets data keys the log is *scrubbed*: a truncating checkpoint copies every frame back and
empties the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable

__all__ = ["Checkpointer"]

log = logging.getLogger("citadel.store")


class Checkpointer:
    """Checkpoints the write-ahead log from a thread of its own, which holds no interpreter lock meanwhile.

    With ``passive``, a passive checkpoint every ``INTERVAL`` seconds, so that the writer on the event loop never
    does one (SQLite would otherwise do it inside a commit, every 1,000 pages): it never blocks writers or readers.
    ``scrub`` asks for a truncating one, which waits for readers and holds writers back while it runs; it is
    tried again until it succeeds.
    """

    INTERVAL = 0.05
    SCRUB_WAIT_MS = 200
    """How long one truncating checkpoint waits for readers and writers before it is tried again later."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, passive: bool = True) -> None:
        self._connect = connect
        self._passive = passive
        self._stopping = threading.Event()
        self._asked = threading.Event()
        self._lock = threading.Lock()
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="citadel-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._asked.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._settle()  # the last connection to close checkpoints and removes the log itself

    def scrub(self) -> asyncio.Future[None]:
        """Ask for the log to be copied back and emptied; the future resolves once it was, after this call."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._thread is None:
            future.set_result(None)
            return future
        with self._lock:
            self._waiting.append((loop, future))
        self._asked.set()
        return future

    def _run(self) -> None:
        try:
            db = self._connect()
            db.execute("PRAGMA busy_timeout = 0")
        except sqlite3.Error as exc:  # the log then waits for the next connection to close: nothing is lost
            log.warning("the SQLite checkpointer cannot open the database: %s", exc)
            return
        try:
            while not self._stopping.is_set():
                self._asked.wait(self.INTERVAL if self._passive else None)
                if self._stopping.is_set():
                    break
                if self._asked.is_set():
                    self._asked.clear()
                    with self._lock:
                        waiting, self._waiting = self._waiting, []
                    if self._truncate(db):
                        self._settle(waiting)
                        continue
                    with self._lock:  # readers or writers kept it from finishing: again after a pause
                        self._waiting[:0] = waiting
                    self._stopping.wait(self.INTERVAL)
                    self._asked.set()
                elif self._passive:
                    with contextlib.suppress(sqlite3.Error):  # busy (another checkpoint runs): next time
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            db.close()

    def _truncate(self, db: sqlite3.Connection) -> bool:
        try:
            db.execute(f"PRAGMA busy_timeout = {self.SCRUB_WAIT_MS}")
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error:
            return False
        finally:
            db.execute("PRAGMA busy_timeout = 0")
        return not busy

    def _settle(self, waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] | None = None) -> None:
        if waiting is None:
            with self._lock:
                waiting, self._waiting = self._waiting, []
        for loop, future in waiting:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits for the answer
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
