"""The SQLite writer that runs batches on a thread of its own (``ThreadWriter``; see ``writer``)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from citadel.errors import StoreError
from citadel.store.sqlite.group_commit import GroupCommitWriter
from citadel.store.sqlite.transaction import WriteJob
from citadel.store.sqlite.wal import Checkpointer

__all__ = ["ThreadWriter"]


class _Stop(WriteJob):
    __slots__ = ()


class ThreadWriter(GroupCommitWriter):
    """Writes on a thread of its own: while one batch commits, the next one queues up; jobs submitted during
    one turn of the event loop are handed over together, and the thread is woken once per batch."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], **options: Any) -> None:
        super().__init__(connect, **options)
        self._queue: queue.SimpleQueue[list[WriteJob]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer thread; jobs' futures resolve on ``loop``.

        Raises:
            StoreError: the writer's connection could not be opened.
        """
        self._loop = loop
        self._thread = threading.Thread(target=self._main, name="citadel-sqlite-writer", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise StoreError(f"cannot open the SQLite writer: {self._start_error}") from self._start_error
        self._checkpointer = Checkpointer(self._connect, passive=False)  # to scrub: SQLite checkpoints passively
        self._checkpointer.start()

    def submit(self, job: WriteJob) -> asyncio.Future[Any]:
        """Queue a job; the returned future resolves with its result after its transaction commits."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            raise StoreError("the event store is not open; call `await store.open()` first")
        job.future = self._loop.create_future()
        if not self._pending:
            self._loop.call_soon(self._hand_over)
        self._pending.append(job)
        return job.future

    def _hand_over(self) -> None:
        jobs, self._pending = self._pending, []
        self._queue.put(jobs)

    async def close(self) -> None:
        """Write the queued jobs and stop the thread."""
        await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        """Finish queued jobs and stop the thread (blocks until it has)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put([_Stop()])
            self._thread.join()
        self._thread = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

    def _main(self) -> None:
        try:
            db = self._connect()
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        tx = self._new_transaction(db)
        self._started.set()
        try:
            while True:
                jobs = self._take()
                stop = isinstance(jobs[-1], _Stop)
                if stop:
                    jobs.pop()
                if not self._group_commit:
                    for job in jobs:
                        self._run_batch(tx, [job])
                elif jobs:
                    self._run_batch(tx, jobs)
                if stop:
                    return
        finally:
            db.close()

    def _take(self) -> list[WriteJob]:
        jobs = self._queue.get()
        get = self._queue.get_nowait
        while len(jobs) < self._max_batch and not isinstance(jobs[-1], _Stop):
            try:
                jobs.extend(get())
            except queue.Empty:
                break
        return jobs

    def _deliver(self, jobs: list[WriteJob], head: int | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed while we committed
            loop.call_soon_threadsafe(self._resolve, jobs, head)
